"""Silence (Caffe's ``SilenceLayer``): consume bottoms, produce nothing (no net outputs).

Its backward gives its bottoms zero gradient, which is what no gradient amounts to.
"""
from __future__ import annotations

from .base import CaffeLayer
from .registry import register


@register("Silence")
class Silence(CaffeLayer):
    """Caffe's Silence layer."""

    bottoms = (1, None)
    tops = (0, 0)

    def top_shapes(self, bottom_shapes):
        return []

    def forward(self, *bottoms):
        return ()

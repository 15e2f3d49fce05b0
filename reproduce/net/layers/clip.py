"""Clip (Caffe's ``ClipLayer``): ``min(max(x, min), max)``.

The gradient passes where ``min <= x <= max`` (both ends included, as Caffe's backward), zero
elsewhere. ``clip_param.min`` and ``max`` are required, as in caffe.proto.
"""
from __future__ import annotations

import torch

from .base import ElementwiseLayer
from .registry import register


@register("Clip")
class Clip(ElementwiseLayer):
    """Caffe's Clip layer."""

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        p = layer_param.clip_param
        if not (p.has("min") and p.has("max")):
            raise self.error("clip_param needs both min and max (required fields)")
        self.min, self.max = float(p.min), float(p.max)

    def forward(self, x):
        # Caffe's max(min, min(x, max)): with min > max every value is min, as in Caffe
        return (torch.clamp(torch.clamp(x, max=self.max), min=self.min),)

"""Threshold (Caffe's ``ThresholdLayer``): ``1`` where ``x > threshold``, else ``0``.

Caffe has no backward for it (``NOT_IMPLEMENTED``): the top here carries no gradient, so
nothing below it learns through it.
"""
from __future__ import annotations

from .base import ElementwiseLayer
from .registry import register


@register("Threshold")
class Threshold(ElementwiseLayer):
    """Caffe's Threshold layer."""

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        self.threshold = float(layer_param.threshold_param.threshold)

    def forward(self, x):
        return ((x.detach() > self.threshold).to(x.dtype),)

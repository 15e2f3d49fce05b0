"""EuclideanLoss (Caffe's ``EuclideanLossLayer``): ``Σ (a − b)² / num / 2``.

Both bottoms must hold ``count(1)`` equal values per item. Backward, as Caffe, reaches both
bottoms: ``±top_diff·(a − b) / num`` (so a target blob computed by the net learns too).
"""
from __future__ import annotations

from .base import CaffeLayer, count
from .registry import register


@register("EuclideanLoss")
class EuclideanLoss(CaffeLayer):
    """Caffe's EuclideanLoss layer."""

    bottoms = (2, 2)
    tops = (0, 1)   # none: Caffe's automatic top

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        self.top_shapes(bottom_shapes)

    def top_shapes(self, bottom_shapes):
        a, b = (tuple(s) for s in bottom_shapes)
        if a[:1] != b[:1]:
            raise self.error(f"the bottoms must have the same num, got {a} and {b}")
        if count(a, 1) != count(b, 1):
            raise self.error(f"inputs must have the same dimension, got {a} and {b}")
        return [()]

    def forward(self, a, b):
        diff = a - b.reshape(a.shape)
        return ((diff * diff).sum() / a.shape[0] / 2,)

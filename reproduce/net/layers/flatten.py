"""Flatten (Caffe's ``FlattenLayer``): merge axes ``axis … end_axis`` (inclusive) into one."""
from __future__ import annotations

from .base import CaffeLayer, count
from .registry import register


@register("Flatten")
class Flatten(CaffeLayer):
    """Caffe's Flatten layer."""

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        self.top_shapes(bottom_shapes)

    def top_shapes(self, bottom_shapes):
        shape = tuple(bottom_shapes[0])
        p = self.layer_param.flatten_param
        start = self.canonical_axis(p.axis, len(shape))
        end = self.canonical_axis(p.end_axis, len(shape))
        return [shape[:start] + (count(shape, start, end + 1),) + shape[end + 1:]]

    def forward(self, x):
        return (x.reshape(self.top_shapes([tuple(x.shape)])[0]),)

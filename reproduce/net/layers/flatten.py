"""Flatten (Caffe's ``FlattenLayer``): merge axes ``axis … end_axis`` (inclusive) into one."""
from __future__ import annotations

import torch

from ..plain import plain
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
        if plain():
            p = self.layer_param.flatten_param
            x = x.clone(memory_format=torch.contiguous_format)  # see Reshape
            return (x.flatten(self.canonical_axis(p.axis, x.dim()),
                              self.canonical_axis(p.end_axis, x.dim())),)
        return (x.reshape(self.top_shapes([tuple(x.shape)])[0]),)

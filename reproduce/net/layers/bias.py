"""Bias (Caffe's ``BiasLayer``): add a broadcast bias to bottom 0.

The bias is a learned blob (one bottom; shape from ``axis``/``num_axes``, ``filler`` default
constant 0) or bottom 1, applied at ``axis`` as Scale applies its factor.
"""
from __future__ import annotations

from . import broadcast
from .base import CaffeLayer
from .registry import register


@register("Bias")
class Bias(CaffeLayer):
    """Caffe's Bias layer (see the module docstring)."""

    bottoms = (1, 2)

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        p = layer_param.bias_param
        self.axis = p.axis
        self.learned = len(bottom_shapes) == 1
        if self.learned:
            shape = broadcast.learned_shape(self, tuple(bottom_shapes[0]), p.axis, p.num_axes)
            self.add_blob(shape, p.filler)
        self.top_shapes(bottom_shapes)

    def top_shapes(self, bottom_shapes):
        bottom = tuple(bottom_shapes[0])
        shape = tuple(self.weight.shape) if self.learned else tuple(bottom_shapes[1])
        broadcast.broadcast_view_shape(self, bottom, shape, self.axis)
        return [bottom]

    def forward(self, x, *operand):
        bias = self.weight if self.learned else operand[0]
        return (x + broadcast.apply(self, x, bias, self.axis),)

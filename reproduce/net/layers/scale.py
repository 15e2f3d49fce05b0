"""Scale (Caffe's ``ScaleLayer``): multiply bottom 0 by a broadcast factor, optionally add a bias.

The factor is either a learned blob (one bottom; shape from ``axis``/``num_axes``, filled
by ``filler``, default constant 1) or bottom 1. With ``bias_term`` a bias of the factor's
shape is added (``bias_filler``, default constant 0). Blob order is Caffe's: one bottom →
``[scale, bias]``; two bottoms → ``[bias]`` only (so that bias is blob 0, ``weight``).
The FCN-8s at-once net uses it, learned and frozen, to scale pool3/pool4.
"""
from __future__ import annotations

from reproduce.caffe.schema import Message

from . import broadcast
from .base import CaffeLayer
from .registry import register


@register("Scale")
class Scale(CaffeLayer):
    """Caffe's Scale layer (see the module docstring)."""

    bottoms = (1, 2)

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        p = layer_param.scale_param
        bottom = tuple(bottom_shapes[0])
        self.axis = p.axis
        self.learned = len(bottom_shapes) == 1
        if self.learned:
            scale_shape = broadcast.learned_shape(self, bottom, p.axis, p.num_axes)
            filler = p.filler if p.has("filler") else Message("FillerParameter", type="constant",
                                                                value=1.0)
            self.add_blob(scale_shape, filler)
        else:
            scale_shape = tuple(bottom_shapes[1])
        self.bias_term = bool(p.bias_term)
        if self.bias_term:
            self.add_blob(scale_shape, p.bias_filler)
        self.top_shapes(bottom_shapes)

    def top_shapes(self, bottom_shapes):
        bottom = tuple(bottom_shapes[0])
        scale_shape = tuple(self.weight.shape) if self.learned else tuple(bottom_shapes[1])
        broadcast.broadcast_view_shape(self, bottom, scale_shape, self.axis)
        return [bottom]

    def forward(self, x, *factor):
        scale = self.weight if self.learned else factor[0]
        top = x * broadcast.apply(self, x, scale, self.axis)
        if self.bias_term:
            bias = self.bias if self.learned else self.weight
            top = top + broadcast.apply(self, x, bias, self.axis)
        return (top,)

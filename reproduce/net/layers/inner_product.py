"""InnerProduct (Caffe's ``InnerProductLayer``): a fully connected layer.

The bottom is flattened from ``axis`` on (``K = count(axis)``), the leading axes are kept:
top shape ``bottom.shape[:axis] + (num_output,)``. The weight blob is ``(num_output, K)``, or
``(K, num_output)`` with ``transpose: true``; the bias is ``(num_output,)``. ``K`` is fixed
at setup, so a net with an InnerProduct only accepts inputs of the size it was built for.
"""
from __future__ import annotations

import torch.nn.functional as F

from .base import CaffeLayer, count
from .registry import register


@register("InnerProduct")
class InnerProduct(CaffeLayer):
    """Caffe's InnerProduct layer (see the module docstring)."""

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        p = layer_param.inner_product_param
        shape = tuple(bottom_shapes[0])
        self.axis = self.canonical_axis(p.axis, len(shape))
        self.num_output = int(p.num_output)
        if self.num_output <= 0:
            raise self.error("num_output must be positive")
        self.K = count(shape, self.axis)
        self.transpose = bool(p.transpose)
        self.bias_term = bool(p.bias_term)
        weight_shape = (self.K, self.num_output) if self.transpose else (self.num_output, self.K)
        self.add_blob(weight_shape, p.weight_filler)
        if self.bias_term:
            self.add_blob((self.num_output,), p.bias_filler)

    def _check(self, shape):
        if count(shape, self.axis) != self.K:
            raise self.error(f"input {tuple(shape)} has {count(shape, self.axis)} features from "
                             f"axis {self.axis}; the layer was set up for {self.K}")

    def top_shapes(self, bottom_shapes):
        shape = tuple(bottom_shapes[0])
        self._check(shape)
        return [shape[:self.axis] + (self.num_output,)]

    def forward(self, x):
        self._check(x.shape)
        flat = x.reshape(*x.shape[:self.axis], self.K)
        weight = self.weight.t() if self.transpose else self.weight
        return (F.linear(flat, weight, self.bias if self.bias_term else None),)

    def extra_repr(self):
        return f"{super().extra_repr()}, {self.K}->{self.num_output}, transpose={self.transpose}"

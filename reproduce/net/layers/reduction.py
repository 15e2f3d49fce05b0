"""Reduction (Caffe's ``ReductionLayer``): reduce every axis from ``axis`` on to one number.

The top keeps the axes before ``axis`` (a scalar for ``axis: 0``, the default). Operations:
SUM ``Σx``, ASUM ``Σ|x|``, SUMSQ ``Σx²``, MEAN ``Σx / dim``, each times ``coeff``. Gradients
are Caffe's: ``coeff``, ``coeff·sign(x)`` (zero at 0), ``2·coeff·x``, ``coeff / dim`` times the
top diff.
"""
from __future__ import annotations

import torch

from .base import CaffeLayer
from .registry import register


@register("Reduction")
class Reduction(CaffeLayer):
    """Caffe's Reduction layer (see the module docstring)."""

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        p = layer_param.reduction_param
        self.operation = p.operation
        self.coeff = float(p.coeff)
        self.axis = self.canonical_axis(int(p.axis), len(bottom_shapes[0]))

    def top_shapes(self, bottom_shapes):
        return [tuple(bottom_shapes[0])[:self.axis]]

    def forward(self, x):
        flat = x.reshape(tuple(x.shape[:self.axis]) + (-1,))
        if self.operation == "ASUM":
            flat = torch.abs(flat)
        elif self.operation == "SUMSQ":
            flat = flat * flat
        top = flat.mean(dim=-1) if self.operation == "MEAN" else flat.sum(dim=-1)
        return (top * self.coeff if self.coeff != 1 else top,)

"""Exp (Caffe's ``ExpLayer``): ``base ^ (shift + scale·x)``; ``base: -1`` (default) means e.

As Caffe computes it: ``outer · exp(inner · x)`` with ``inner = scale·ln(base)`` and
``outer = base ^ shift`` (1 when ``shift`` is 0); backward ``top_diff · top · inner``.
"""
from __future__ import annotations

import math

import torch

from .base import ElementwiseLayer
from .registry import register


def log_base(layer, base: float) -> float:
    """``ln(base)`` (1 for Caffe's ``-1`` = e); a base must otherwise be positive."""
    if base == -1:
        return 1.0
    if base <= 0:
        raise layer.error(f"base must be strictly positive, got {base:g}")
    value = math.log(base)
    if value == 0:
        raise layer.error("base 1 has no logarithm to divide by (Caffe's base_scale is inf)")
    return value


@register("Exp")
class Exp(ElementwiseLayer):
    """Caffe's Exp layer."""

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        p = layer_param.exp_param
        ln_base = log_base(self, float(p.base))
        self.inner = float(p.scale) * ln_base
        self.outer = 1.0 if float(p.shift) == 0 else math.exp(float(p.shift) * ln_base)

    def forward(self, x):
        top = torch.exp(x * self.inner) if self.inner != 1 else torch.exp(x)
        return (top * self.outer if self.outer != 1 else top,)

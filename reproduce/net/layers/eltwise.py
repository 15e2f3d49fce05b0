"""Eltwise (Caffe's ``EltwiseLayer``): SUM (with per-bottom ``coeff``), PROD or MAX of bottoms.

All bottoms must have the same shape. ``coeff`` is given once per bottom or not at all (all
1) and only for SUM. For MAX, Caffe sends the whole gradient to one bottom per element, and
its tie-breaking is lopsided: between bottoms 0 and 1 a tie goes to bottom **1** (``a > b ?
a : b``), while a later bottom must be strictly greater than the running maximum. That
routing is kept here (``torch.maximum`` would split the gradient on ties).
"""
from __future__ import annotations

import torch

from .base import CaffeLayer
from .registry import register


@register("Eltwise")
class Eltwise(CaffeLayer):
    """Caffe's Eltwise layer (see the module docstring)."""

    bottoms = (2, None)

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        p = layer_param.eltwise_param
        self.operation = p.operation
        coeffs = [float(c) for c in p.coeff]
        if coeffs and len(coeffs) != len(bottom_shapes):
            raise self.error(f"takes one coefficient per bottom blob: {len(coeffs)} coeff for "
                             f"{len(bottom_shapes)} bottoms")
        if coeffs and self.operation != "SUM":
            raise self.error("only SUM takes coefficients")
        self.coeffs = coeffs or [1.0] * len(bottom_shapes)
        self.top_shapes(bottom_shapes)

    def top_shapes(self, bottom_shapes):
        shape = tuple(bottom_shapes[0])
        if any(tuple(s) != shape for s in bottom_shapes):
            raise self.error(f"all bottoms must have the same shape, got {list(map(tuple, bottom_shapes))}")
        return [shape]

    def forward(self, *bottoms):
        if self.operation == "SUM":
            top = None
            for coeff, x in zip(self.coeffs, bottoms):
                term = x if coeff == 1.0 else x * coeff
                top = term if top is None else top + term
            return (top,)
        if self.operation == "PROD":
            top = bottoms[0]
            for x in bottoms[1:]:
                top = top * x
            return (top,)
        first, second, *rest = bottoms
        top = torch.where(first > second, first, second)
        for x in rest:
            top = torch.where(x > top, x, top)
        return (top,)

    def extra_repr(self):
        return f"{super().extra_repr()}, {self.operation}, coeff={self.coeffs}"

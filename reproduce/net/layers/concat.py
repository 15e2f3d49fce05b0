"""Concat (Caffe's ``ConcatLayer``): join bottoms along ``axis`` (legacy ``concat_dim``).

``concat_dim`` (non-negative) and ``axis`` (may be negative) must not both be given; all other
axes must agree. One bottom passes through unchanged.
"""
from __future__ import annotations

import torch

from .base import CaffeLayer
from .registry import register


def legacy_axis(layer: CaffeLayer, param, legacy_name: str, ndim: int) -> int:
    """The axis from ``axis`` or from the legacy ``concat_dim``/``slice_dim`` field."""
    if param.has(legacy_name):
        if param.has("axis"):
            raise layer.error(f"either axis or {legacy_name} should be specified; not both")
        axis = int(getattr(param, legacy_name))
        if axis >= ndim:
            raise layer.error(f"{legacy_name} {axis} out of range for a {ndim}-axis blob")
        return axis
    return layer.canonical_axis(param.axis, ndim)


@register("Concat")
class Concat(CaffeLayer):
    """Caffe's Concat layer (see the module docstring)."""

    bottoms = (1, None)

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        self.axis = legacy_axis(self, layer_param.concat_param, "concat_dim",
                                len(bottom_shapes[0]))
        self.top_shapes(bottom_shapes)

    def top_shapes(self, bottom_shapes):
        first = tuple(bottom_shapes[0])
        for shape in bottom_shapes[1:]:
            shape = tuple(shape)
            if len(shape) != len(first) or any(a != b for i, (a, b) in enumerate(zip(first, shape))
                                               if i != self.axis):
                raise self.error(f"bottoms {first} and {shape} differ outside axis {self.axis}")
        total = sum(s[self.axis] for s in bottom_shapes)
        return [first[:self.axis] + (total,) + first[self.axis + 1:]]

    def forward(self, *bottoms):
        return (bottoms[0] if len(bottoms) == 1 else torch.cat(bottoms, dim=self.axis),)

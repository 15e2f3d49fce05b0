"""Permute (SSD's ``PermuteLayer``, a fork layer): reorder the axes.

As the fork (``permute_layer.cpp``), with ``permute_param`` (the fork's field 202): ``order``
lists axes (each below the bottom's axis count, none twice); the axes it leaves out follow in
their own order. Exportable.
"""
from __future__ import annotations

from .base import CaffeLayer
from .registry import register


@register("Permute")
class Permute(CaffeLayer):
    """SSD's Permute layer (see the module docstring)."""

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        axes = len(bottom_shapes[0])
        order: list[int] = []
        for value in layer_param.permute_param.order:
            value = int(value)
            if value >= axes:
                raise self.error(f"order {value} should be less than the input dimension {axes}")
            if value in order:
                raise self.error(f"there are duplicate orders ({value})")
            order.append(value)
        self.order = tuple(order + [i for i in range(axes) if i not in order])

    def top_shapes(self, bottom_shapes):
        return [tuple(bottom_shapes[0][i] for i in self.order)]

    def forward(self, x):
        return (x.permute(self.order).contiguous(),)

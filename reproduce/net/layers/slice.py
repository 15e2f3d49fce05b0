"""Slice (Caffe's ``SliceLayer``): cut bottom along ``axis`` (legacy ``slice_dim``) into tops.

``slice_point`` gives the ``len(tops) - 1`` cut positions (strictly increasing); without it the
axis is split into equal parts, which must divide it exactly. One top passes through.
"""
from __future__ import annotations

from ..plain import plain
from .base import CaffeLayer
from .concat import legacy_axis
from .registry import register


@register("Slice")
class Slice(CaffeLayer):
    """Caffe's Slice layer (see the module docstring)."""

    tops = (1, None)

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        p = layer_param.slice_param
        self.axis = legacy_axis(self, p, "slice_dim", len(bottom_shapes[0]))
        self.points = [int(v) for v in p.slice_point]
        self.num_tops = len(layer_param.top)
        if self.points and len(self.points) != self.num_tops - 1:
            raise self.error(f"{len(self.points)} slice_point values for {self.num_tops} tops "
                             f"(needs {self.num_tops - 1})")
        self.top_shapes(bottom_shapes)

    def _sizes(self, length: int) -> list[int]:
        if not self.points:
            if length % self.num_tops:
                raise self.error(f"axis {self.axis} of size {length} does not split evenly "
                                 f"into {self.num_tops} tops")
            return [length // self.num_tops] * self.num_tops
        bounds = [0, *self.points, length]
        sizes = [b - a for a, b in zip(bounds, bounds[1:])]
        if min(sizes) <= 0:
            raise self.error(f"slice points {self.points} must increase strictly within "
                             f"(0, {length})")
        return sizes

    def top_shapes(self, bottom_shapes):
        shape = tuple(bottom_shapes[0])
        return [shape[:self.axis] + (n,) + shape[self.axis + 1:]
                for n in self._sizes(shape[self.axis])]

    def forward(self, x):
        if self.num_tops == 1:
            return (x,)
        if plain():  # cut positions as slices: the last part's size stays symbolic
            length = x.shape[self.axis]
            if self.points:
                bounds = [0, *self.points, length]
            else:
                part = length // self.num_tops
                bounds = [i * part for i in range(self.num_tops + 1)]
            lead = (slice(None),) * self.axis
            return tuple(x[lead + (slice(a, b),)] for a, b in zip(bounds, bounds[1:]))
        return tuple(x.split(self._sizes(x.shape[self.axis]), dim=self.axis))

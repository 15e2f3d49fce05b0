"""Reshape (Caffe's ``ReshapeLayer``): a new shape for the axes ``axis … axis + num_axes``.

In ``shape``, ``0`` copies the bottom's dimension at that position and one ``-1`` is inferred
from the element count; axes outside the replaced range are kept. ``axis`` may be negative
(``-1`` means after the last axis); ``num_axes: -1`` replaces through the end.
"""
from __future__ import annotations

import torch

from ..plain import plain
from .base import CaffeLayer, count
from .registry import register


@register("Reshape")
class Reshape(CaffeLayer):
    """Caffe's Reshape layer (see the module docstring)."""

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        dims = [int(d) for d in layer_param.reshape_param.shape.dim]
        self.dims = dims
        self.copy_axes = [i for i, d in enumerate(dims) if d == 0]
        inferred = [i for i, d in enumerate(dims) if d == -1]
        if len(inferred) > 1:
            raise self.error("new shape contains multiple -1 dims; at most one may be given")
        if any(d < -1 for d in dims):
            raise self.error(f"invalid dimension in shape {dims}")
        self.inferred_axis = inferred[0] if inferred else -1
        self.top_shapes(bottom_shapes)

    def top_shapes(self, bottom_shapes):
        shape = tuple(bottom_shapes[0])
        p = self.layer_param.reshape_param
        ndim = len(shape)
        start = p.axis if p.axis >= 0 else ndim + p.axis + 1
        if not 0 <= start <= ndim:
            raise self.error(f"axis {p.axis} out of range for a {ndim}-axis blob")
        if p.num_axes < -1:
            raise self.error("num_axes must be >= 0, or -1 for all")
        end = ndim if p.num_axes == -1 else start + p.num_axes
        if end > ndim:
            raise self.error(f"axis + num_axes ({end}) exceeds the bottom's {ndim} axes")
        top = list(shape[:start]) + list(self.dims) + list(shape[end:])
        for i in self.copy_axes:
            if start + i >= ndim:
                raise self.error(f"new shape dim {i} copies bottom axis {start + i}, "
                                 f"which does not exist")
            top[start + i] = shape[start + i]
        if self.inferred_axis >= 0:
            explicit = count(top[:start]) * count(top[start + len(self.dims):])
            explicit *= count([top[start + i] for i in range(len(self.dims))
                               if i != self.inferred_axis])
            if explicit == 0 or count(shape) % explicit:
                raise self.error(f"cannot infer the -1 dim of {self.dims} for a bottom of "
                                 f"shape {shape}")
            top[start + self.inferred_axis] = count(shape) // explicit
        if count(top) != count(shape):
            raise self.error(f"shape {tuple(top)} has {count(top)} elements, the bottom "
                             f"{shape} has {count(shape)}")
        return [tuple(top)]

    def forward(self, x):
        if plain():  # copied axes and the -1 left to torch: sizes stay symbolic
            p = self.layer_param.reshape_param
            shape, ndim = list(x.shape), x.dim()
            start = p.axis if p.axis >= 0 else ndim + p.axis + 1
            end = ndim if p.num_axes == -1 else start + p.num_axes
            middle = [shape[start + i] if d == 0 else d for i, d in enumerate(self.dims)]
            # from a contiguous copy: whether a view would do is a question of sizes being 1
            x = x.clone(memory_format=torch.contiguous_format)
            return (x.reshape(shape[:start] + middle + shape[end:]),)
        return (x.reshape(self.top_shapes([tuple(x.shape)])[0]),)

"""Crop (Caffe's ``CropLayer``): cut bottom 0 to the shape of bottom 1 from ``axis`` on.

Axes before ``axis`` are kept; every axis ``i >= axis`` takes bottom 1's size, starting at
``offset`` — one value for all cropped axes, one value per cropped axis, or none (0). Caffe
checks ``offset + size <= bottom0 size``. Bottom 1 only supplies a shape: no gradient reaches it.
"""
from __future__ import annotations

from ..plain import plain
from .base import CaffeLayer
from .registry import register


@register("Crop")
class Crop(CaffeLayer):
    """Caffe's Crop layer (see the module docstring)."""

    bottoms = (2, 2)

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        p = layer_param.crop_param
        ndim = len(bottom_shapes[0])
        self.axis = self.canonical_axis(p.axis, ndim)
        self.offsets = [int(o) for o in p.offset]
        if len(self.offsets) > 1 and self.axis + len(self.offsets) != ndim:
            raise self.error(f"{len(self.offsets)} offsets given; cropping from axis "
                             f"{self.axis} of a {ndim}-axis blob needs one or {ndim - self.axis}")
        self.top_shapes(bottom_shapes)

    def _slices(self, shape, reference):
        if len(reference) != len(shape):
            raise self.error(f"bottoms have different numbers of axes: {tuple(shape)} "
                             f"and {tuple(reference)}")
        slices = []
        for i, size in enumerate(shape):
            if i < self.axis:
                slices.append(slice(None))
                continue
            offset = (self.offsets[0] if len(self.offsets) == 1 else
                      self.offsets[i - self.axis] if self.offsets else 0)
            if size - offset < reference[i]:
                raise self.error(f"the crop for axis {i} is out of bounds: size {reference[i]} "
                                 f"at offset {offset} of {size}")
            slices.append(slice(offset, offset + reference[i]))
        return tuple(slices)

    def top_shapes(self, bottom_shapes):
        shape, reference = (tuple(s) for s in bottom_shapes)
        self._slices(shape, reference)
        return [shape[:self.axis] + reference[self.axis:]]

    def forward(self, x, reference):
        if plain():
            # constant offsets, the reference's (symbolic) sizes: narrow, whose output has
            # exactly that size (a slice's end would be clamped to a symbolic min)
            for i in range(self.axis, x.dim()):
                offset = (self.offsets[0] if len(self.offsets) == 1 else
                          self.offsets[i - self.axis] if self.offsets else 0)
                x = x.narrow(i, offset, reference.shape[i])
            return (x,)
        return (x[self._slices(tuple(x.shape), tuple(reference.shape))],)

    def extra_repr(self):
        return f"{super().extra_repr()}, axis={self.axis}, offset={self.offsets}"

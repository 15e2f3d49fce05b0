"""ArgMax (Caffe's ``ArgMaxLayer``): the ``top_k`` largest entries' indices (or values).

Without ``axis``, each image's ``count(1)`` values are ranked and the top is ``(num, 1 or 2,
top_k[, 1…])`` — with ``out_max_val`` its channel 0 holds the indices and channel 1 the values.
With ``axis``, the ranking runs along that axis, whose size becomes ``top_k``; with
``out_max_val`` the top holds the values instead of the indices. Ties rank the larger index
first (Caffe sorts ``(value, index)`` pairs with ``std::greater``). Indices are written as
floats. Caffe has no backward (``NOT_IMPLEMENTED``): the top carries no gradient.
"""
from __future__ import annotations

import torch

from ..plain import plain
from .base import CaffeLayer, count
from .registry import register


def rank(values: torch.Tensor, dim: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` largest ``values`` along ``dim``, ties to the larger index: (values, indices)."""
    size = values.shape[dim]
    flipped = torch.flip(values, (dim,))
    if plain():   # ONNX TopK ranks ties to the lower (flipped: larger) index, as needed
        top, index = torch.topk(flipped, k, dim=dim, largest=True, sorted=True)
    else:
        top, index = torch.sort(flipped, dim=dim, descending=True, stable=True)
        top, index = top.narrow(dim, 0, k), index.narrow(dim, 0, k)
    return top, (size - 1 - index)


@register("ArgMax")
class ArgMax(CaffeLayer):
    """Caffe's ArgMax layer (see the module docstring)."""

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        p = layer_param.argmax_param
        self.out_max_val = bool(p.out_max_val)
        self.top_k = int(p.top_k)
        if self.top_k < 1:
            raise self.error("top_k must be at least 1")
        shape = tuple(bottom_shapes[0])
        self.axis = self.canonical_axis(int(p.axis), len(shape)) if p.has("axis") else None
        if self.axis is not None:
            if self.top_k > shape[self.axis]:
                raise self.error(f"top_k {self.top_k} must be at most the size {shape[self.axis]} "
                                 f"of axis {self.axis}")
        elif self.top_k > count(shape, 1):
            raise self.error(f"top_k {self.top_k} must be at most count(1) = {count(shape, 1)}")
        self.top_shapes(bottom_shapes)

    def top_shapes(self, bottom_shapes):
        shape = tuple(bottom_shapes[0])
        if self.axis is not None:
            return [shape[:self.axis] + (self.top_k,) + shape[self.axis + 1:]]
        top = [1] * max(3, len(shape))
        top[0], top[2] = shape[0], self.top_k
        if self.out_max_val:
            top[1] = 2
        return [tuple(top)]

    def forward(self, x):
        x = x.detach()
        if self.axis is not None:
            values, index = rank(x, self.axis, self.top_k)
            return ((values if self.out_max_val else index.to(x.dtype)),)
        values, index = rank(x.reshape(x.shape[0], -1), 1, self.top_k)
        shape = self.top_shapes([tuple(x.shape)])[0]
        top = index.to(x.dtype)
        if self.out_max_val:
            top = torch.stack((top, values), dim=1)
        return (top.reshape(shape),)

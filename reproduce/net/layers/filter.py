"""Filter (Caffe's ``FilterLayer``): keep the items (axis 0) whose selector is non-zero.

Bottoms: K data blobs and, last, the selector (``(N)`` or ``(N, 1, …)``); tops: the K data
blobs restricted to the selected items, in order. The tops' first axis depends on the data:
before any forward it is the bottoms' (Caffe's first Reshape). Backward copies each kept
item's diff back and zeroes the others; the selector gets no gradient (Caffe refuses).
"""
from __future__ import annotations

import torch

from .base import CaffeLayer
from .registry import register


@register("Filter")
class Filter(CaffeLayer):
    """Caffe's Filter layer (see the module docstring)."""

    bottoms = (2, None)
    tops = (1, None)

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        if len(layer_param.top) != len(bottom_shapes) - 1:
            raise self.error(f"needs one top per data bottom: {len(bottom_shapes) - 1} "
                             f"data bottoms, {len(layer_param.top)} tops")
        self.top_shapes(bottom_shapes)

    def top_shapes(self, bottom_shapes):
        selector = tuple(bottom_shapes[-1])
        if any(d != 1 for d in selector[1:]):
            raise self.error(f"selector blob dimensions must be singletons (1) except the "
                             f"first, got {selector}")
        if any(tuple(s)[0] != selector[0] for s in bottom_shapes[:-1]):
            raise self.error("each bottom must have the selector's first dimension")
        return [tuple(s) for s in bottom_shapes[:-1]]

    def forward(self, *bottoms):
        selector = bottoms[-1].detach().reshape(-1)
        keep = torch.nonzero(selector != 0).reshape(-1)
        return tuple(b.index_select(0, keep) for b in bottoms[:-1])

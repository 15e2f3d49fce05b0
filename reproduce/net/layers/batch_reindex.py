"""BatchReindex (Caffe's ``BatchReindexLayer``): ``top[i] = data[permut[i]]`` along axis 0.

Bottom 1 is a 1-axis blob of item indices (floats, truncated to int); items may repeat or be
left out. Backward sums the diffs of every top item into the bottom item it came from; the
indices get no gradient. An index outside ``[0, num)`` raises, as Caffe's CHECKs do.
"""
from __future__ import annotations

import torch

from .base import CaffeLayer
from .registry import register


@register("BatchReindex")
class BatchReindex(CaffeLayer):
    """Caffe's BatchReindex layer."""

    bottoms = (2, 2)

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        self.top_shapes(bottom_shapes)

    def top_shapes(self, bottom_shapes):
        data, permut = (tuple(s) for s in bottom_shapes)
        if len(permut) != 1:
            raise self.error(f"the index bottom must have 1 axis, got {permut}")
        return [(permut[0],) + data[1:]]

    def forward(self, data, permut):
        index = permut.detach().to(torch.int64)
        if index.numel() and not (torch.compiler.is_compiling() or torch.jit.is_tracing()
                                  or torch.onnx.is_in_onnx_export()):
            low, high = int(index.min()), int(index.max())
            if low < 0 or high >= data.shape[0]:
                raise self.error(f"index {low if low < 0 else high} out of the batch's range "
                                 f"[0, {data.shape[0]})")
        return (data.index_select(0, index),)

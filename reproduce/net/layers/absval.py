"""AbsVal (Caffe's ``AbsValLayer``): ``|x|``; gradient ``sign(x)·top_diff`` (zero at 0)."""
from __future__ import annotations

import torch

from .base import ElementwiseLayer
from .registry import register


@register("AbsVal")
class AbsVal(ElementwiseLayer):
    """Caffe's AbsVal layer. Like Caffe (``CHECK_NE(top, bottom)``) it refuses to run in place."""

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        if list(layer_param.top) == list(layer_param.bottom):
            raise self.error("AbsVal does not allow in-place computation")

    def forward(self, x):
        return (torch.abs(x),)

"""Split (Caffe's ``SplitLayer``): copy one bottom to several tops; gradients add up.

Caffe inserts these itself wherever a blob feeds several layers; autograd's accumulation
does that job here, so this layer only exists for nets that name Split explicitly.
"""
from __future__ import annotations

from .base import CaffeLayer
from .registry import register


@register("Split")
class Split(CaffeLayer):
    """Caffe's Split layer."""

    tops = (1, None)

    def top_shapes(self, bottom_shapes):
        return [tuple(bottom_shapes[0])] * len(self.layer_param.top)

    def forward(self, x):
        return (x,) * len(self.layer_param.top)

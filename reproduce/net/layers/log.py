"""Log (Caffe's ``LogLayer``): ``log_base(shift + scale·x)``; ``base: -1`` (default) means e.

As Caffe: ``ln(shift + scale·x) / ln(base)``; backward ``top_diff · scale / ln(base) /
(shift + scale·x)``.
"""
from __future__ import annotations

import torch

from .base import ElementwiseLayer
from .exp import log_base
from .registry import register


@register("Log")
class Log(ElementwiseLayer):
    """Caffe's Log layer."""

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        p = layer_param.log_param
        self.base_scale = 1.0 / log_base(self, float(p.base)) if float(p.base) != -1 else 1.0
        self.scale, self.shift = float(p.scale), float(p.shift)

    def forward(self, x):
        value = x
        if self.scale != 1:
            value = value * self.scale
        if self.shift != 0:
            value = value + self.shift
        top = torch.log(value)
        return (top * self.base_scale if self.base_scale != 1 else top,)

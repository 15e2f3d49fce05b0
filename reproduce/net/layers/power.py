"""Power (Caffe's ``PowerLayer``): ``(shift + scale·x) ^ power``, element-wise.

As in Caffe, ``power: 0`` gives ones (and no gradient) whatever the input.
"""
from __future__ import annotations

import torch

from .base import ElementwiseLayer
from .registry import register


@register("Power")
class Power(ElementwiseLayer):
    """Caffe's Power layer."""

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        p = layer_param.power_param
        self.power, self.scale, self.shift = float(p.power), float(p.scale), float(p.shift)

    def forward(self, x):
        if self.power == 0:
            return (torch.ones_like(x),)
        value = x * self.scale + self.shift if (self.scale, self.shift) != (1.0, 0.0) else x
        return (value if self.power == 1 else torch.pow(value, self.power),)

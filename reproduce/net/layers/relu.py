"""ReLU (Caffe's ``ReLULayer``): ``max(x, 0) + negative_slope·min(x, 0)``.

The gradient is Caffe's ``top_diff·((x > 0) + negative_slope·(x <= 0))``: zero at exactly 0.
Caffe usually runs it in place (top == bottom); the net handles that naming.
"""
from __future__ import annotations

import torch.nn.functional as F

from .base import ElementwiseLayer
from .registry import register


@register("ReLU")
class ReLU(ElementwiseLayer):
    """Caffe's ReLU layer, optionally leaky."""

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        self.negative_slope = float(layer_param.relu_param.negative_slope)

    def forward_banded(self, bottoms, bands):
        # element-wise: a constant region stays constant (its value read back from the blob)
        return self(*bottoms), [bands[0]]

    def forward(self, x):
        if self.negative_slope == 0:
            return (F.relu(x),)
        return (F.leaky_relu(x, self.negative_slope),)

"""TanH (Caffe's ``TanHLayer``): the hyperbolic tangent, element-wise."""
from __future__ import annotations

import torch

from .base import ElementwiseLayer
from .registry import register


@register("TanH")
class TanH(ElementwiseLayer):
    """Caffe's TanH layer."""

    def forward(self, x):
        return (torch.tanh(x),)

"""Swish (Caffe's ``SwishLayer``): ``x · sigmoid(beta·x)``.

Backward (autograd) equals Caffe's ``top_diff · (beta·top + sigmoid(beta·x)·(1 − beta·top))``.
"""
from __future__ import annotations

import torch

from .base import ElementwiseLayer
from .registry import register


@register("Swish")
class Swish(ElementwiseLayer):
    """Caffe's Swish layer."""

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        self.beta = float(layer_param.swish_param.beta)

    def forward(self, x):
        return (x * torch.sigmoid(x * self.beta if self.beta != 1 else x),)

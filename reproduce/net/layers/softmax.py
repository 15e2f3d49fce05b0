"""Softmax (Caffe's ``SoftmaxLayer``): ``exp(x - max) / Σ exp(x - max)`` along ``axis``."""
from __future__ import annotations

import torch

from .base import ElementwiseLayer
from .registry import register


@register("Softmax")
class Softmax(ElementwiseLayer):
    """Caffe's Softmax layer."""

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        self.axis = self.canonical_axis(layer_param.softmax_param.axis, len(bottom_shapes[0]))

    def forward(self, x):
        return (torch.softmax(x, dim=self.axis),)

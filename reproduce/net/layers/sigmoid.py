"""Sigmoid (Caffe's ``SigmoidLayer``): ``1 / (1 + exp(-x))``."""
from __future__ import annotations

import torch

from .base import ElementwiseLayer
from .registry import register


@register("Sigmoid")
class Sigmoid(ElementwiseLayer):
    """Caffe's Sigmoid layer."""

    def forward(self, x):
        return (torch.sigmoid(x),)

"""ELU (Caffe's ``ELULayer``): ``x > 0 ? x : alpha·(exp(x) − 1)``.

Backward is Caffe's: ``top_diff`` where ``x > 0``, else ``top_diff·(top + alpha)``.
"""
from __future__ import annotations

import torch

from .base import ElementwiseLayer
from .registry import register


@register("ELU")
class ELU(ElementwiseLayer):
    """Caffe's ELU layer."""

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        self.alpha = float(layer_param.elu_param.alpha)

    def forward(self, x):
        return (torch.where(x > 0, x, self.alpha * (torch.exp(x) - 1)),)

"""Dropout (Caffe's ``DropoutLayer``): a Bernoulli mask scaled by ``1/(1 - ratio)`` in TRAIN.

In the TRAIN phase every element is kept with probability ``1 - dropout_ratio`` and the kept
ones are multiplied by ``scale = 1 / (1 - dropout_ratio)``; the gradient is masked and scaled
the same way. In the TEST phase the layer is the identity (no rescaling, as Caffe's inverted
dropout needs none). The phase is the layer's Caffe phase, not ``nn.Module.training``.
"""
from __future__ import annotations

import torch

from .base import ElementwiseLayer
from .registry import register


@register("Dropout")
class Dropout(ElementwiseLayer):
    """Caffe's Dropout layer (see the module docstring)."""

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        self.ratio = float(layer_param.dropout_param.dropout_ratio)
        if not 0.0 <= self.ratio < 1.0:
            raise self.error(f"dropout_ratio must be in [0, 1), got {self.ratio}")
        self.scale = 1.0 / (1.0 - self.ratio)

    def forward(self, x):
        if self.phase != "TRAIN":
            return (x,)
        keep = torch.full_like(x, 1.0 - self.ratio)
        mask = torch.bernoulli(keep, generator=self.generator)
        return (x * (mask * self.scale),)

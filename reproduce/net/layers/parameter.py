"""Parameter (Caffe's ``ParameterLayer``): no bottom; its one top is its one blob.

The blob has ``parameter_param.shape`` and starts at zeros (Caffe fills nothing; a caffemodel
gives its values); the top's diff is the blob's gradient.
"""
from __future__ import annotations

import torch

from .base import CaffeLayer
from .registry import register


@register("Parameter")
class Parameter(CaffeLayer):
    """Caffe's Parameter layer."""

    bottoms = (0, 0)

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        shape = tuple(int(d) for d in layer_param.parameter_param.shape.dim)
        if any(d < 0 for d in shape):
            raise self.error(f"negative dimension in parameter_param.shape {shape}")
        self.add_blob_tensor(torch.zeros(shape))

    def top_shapes(self, bottom_shapes):
        return [tuple(self.weight.shape)]

    def forward(self):
        return (self.weight.view(self.weight.shape),)

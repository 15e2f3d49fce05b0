"""PReLU (Caffe's ``PReLULayer``): ``max(x, 0) + a·min(x, 0)`` with learned slopes ``a``.

One slope per channel (axis 1), or one for all with ``channel_shared``; ``prelu_param.filler``
fills them (default constant 0.25). Gradients are Caffe's: ``top_diff·(x > 0 ? 1 : a)`` to the
bottom (``a`` at exactly 0) and ``Σ top_diff·x`` over ``x <= 0`` to the slopes.
"""
from __future__ import annotations

import torch

from reproduce.caffe.schema import Message

from .base import ElementwiseLayer
from .registry import register


@register("PReLU")
class PReLU(ElementwiseLayer):
    """Caffe's PReLU layer (see the module docstring)."""

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        p = layer_param.prelu_param
        shape = tuple(bottom_shapes[0])
        if len(shape) < 2:
            raise self.error(f"bottom must have at least 2 axes, got {shape}")
        self.channel_shared = bool(p.channel_shared)
        filler = p.filler if p.has("filler") else Message("FillerParameter", type="constant",
                                                            value=0.25)
        self.add_blob(() if self.channel_shared else (shape[1],), filler)

    def forward(self, x):
        slope = self.weight
        if not self.channel_shared:
            slope = slope.reshape((1, -1) + (1,) * (x.dim() - 2))
        return (torch.where(x > 0, x, x * slope),)

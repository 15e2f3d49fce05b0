"""Normalize (SSD's ``NormalizeLayer``, a fork layer): L2-normalise, then scale.

As the fork (``normalize_layer.cpp``), with ``norm_param`` (the fork's field 206): for each
item, with ``across_spatial`` (default) the whole ``C×H×W`` block is multiplied by
``1 / sqrt(Σ x² + eps)``; without it each position is divided by ``sqrt(eps + Σ_c x²)``, the sum
over channels. The result is multiplied by the learned scale, blob 0: one value
(``channel_shared``, default; a 0-axis blob) or one per channel, filled by ``scale_filler``
(default constant 1). Exportable.
"""
from __future__ import annotations

import torch

from reproduce.caffe.schema import Message

from .base import CaffeLayer
from .registry import register


@register("Normalize")
class Normalize(CaffeLayer):
    """SSD's Normalize layer (see the module docstring)."""

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        p = layer_param.norm_param
        shape = tuple(bottom_shapes[0])
        if len(shape) < 2:
            raise self.error(f"Number of axes of bottom blob must be >=2, got shape {shape}")
        self.across_spatial, self.channel_shared = bool(p.across_spatial), bool(p.channel_shared)
        self.eps = float(p.eps)
        filler = (p.scale_filler if p.has("scale_filler")
                  else Message("FillerParameter", type="constant", value=1.0))
        self.add_blob(() if self.channel_shared else (shape[1],), filler)

    def top_shapes(self, bottom_shapes):
        return [tuple(bottom_shapes[0])]

    def forward(self, x):
        squares = x * x
        if self.across_spatial:
            norm = torch.sqrt(squares.flatten(1).sum(1) + self.eps)
            top = x * (1.0 / norm).reshape((-1,) + (1,) * (x.dim() - 1))
        else:
            top = x / torch.sqrt(squares.sum(1, keepdim=True) + self.eps)
        scale = self.weight
        if not self.channel_shared:
            scale = scale.reshape((1, -1) + (1,) * (x.dim() - 2))
        return (top * scale,)

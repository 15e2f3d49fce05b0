"""Normalize (SSD's ``NormalizeLayer``, a fork layer): L2-normalise, then scale.

As the fork (``normalize_layer.cpp``), with ``norm_param`` (the fork's field 206): for each
item, with ``across_spatial`` (default) the whole ``C×H×W`` block is multiplied by
``1 / sqrt(Σ x² + eps)``; without it each position is divided by ``sqrt(eps + Σ_c x²)``, the sum
over channels. The result is multiplied by the learned scale, blob 0: one value
(``channel_shared``, default; a 0-axis blob) or one per channel, filled by ``scale_filler``
(default constant 1). Exportable.

Backward as the fork's ``Backward_cpu``: with one scale it is the derivative; with one scale
per channel the fork multiplies its whole bottom diff by each channel's scale,
``s_j (g_j − x_j (x·g)/n²)/n`` (sums over the normalised block), which is not the derivative
of ``s ⊙ x / n`` (that has ``Σ s_c g_c x_c`` for ``x·g``); ours computes the fork's. The scale's
diff is ``Σ g x / n`` per channel (the fork's ``Σ top·g / s``, without its division by ``s``).
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

    def _inverse_norm(self, x):
        """``1 / norm`` (across spatial) or ``norm`` (per position), shaped to broadcast on ``x``."""
        if self.across_spatial:
            norm = torch.sqrt((x * x).flatten(1).sum(1) + self.eps)
            return (1.0 / norm).reshape((-1,) + (1,) * (x.dim() - 1))
        return torch.sqrt((x * x).sum(1, keepdim=True) + self.eps)

    def _normalized(self, x, norm):
        return x * norm if self.across_spatial else x / norm

    def forward(self, x):
        norm = self._inverse_norm(x)
        scale = self.weight
        if self.channel_shared:
            return (self._normalized(x, norm) * scale,)
        scale = scale.reshape((1, -1) + (1,) * (x.dim() - 2))
        if not (torch.is_grad_enabled() and x.requires_grad):
            return (self._normalized(x, norm) * scale,)
        # The fork's Backward_cpu scales the whole bottom diff by each channel's scale:
        # s_j * (g_j - x_j * (x·g) / n²) / n, where the gradient of s ⊙ x / n has Σ s_c g_c x_c
        # in place of x·g. Its result, not the derivative, is the specification: the norm is
        # taken again of a copy of x whose gradient is multiplied by s, and its change (zero in
        # value) is weighted by the unscaled x.
        x_fixed, norm_fixed = x.detach(), norm.detach()
        scaled_path = x_fixed + scale.detach() * (x - x_fixed)   # = x; d/dx_j = s_j
        norm_change = self._normalized(x_fixed, self._inverse_norm(scaled_path)) \
            - self._normalized(x_fixed, norm_fixed)                # = 0
        return (self._normalized(x, norm_fixed) * scale + norm_change,)

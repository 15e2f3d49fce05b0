"""ContrastiveLoss (Caffe's ``ContrastiveLossLayer``): pairs ``(a, b)`` of ``(num, C, 1, 1)``
features and a similarity flag per pair (truncated to int; non-zero = similar).

With ``d² = ‖a − b‖²``: similar pairs add ``d²``; dissimilar ones ``max(margin − d, 0)²``, or
with ``legacy_version`` ``max(margin − d², 0)``; the sum is divided by ``2·num``. Backward is
Caffe's, ``±top_diff / num`` times ``(a − b)`` for similar pairs and, for dissimilar pairs with
a positive margin term, ``−(margin − d) / (d + 1e-4)·(a − b)`` (the ``1e-4`` is Caffe's) or
``−(a − b)`` in the legacy form; ``a`` gets ``+``, ``b`` ``−``; the flags get no gradient.
"""
from __future__ import annotations

import torch

from .base import CaffeLayer
from .registry import register


class _Contrastive(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, similar, margin, legacy):
        num = a.shape[0]
        diff = (a - b).reshape(num, -1)
        dist_sq = (diff * diff).sum(dim=1)
        if legacy:
            mdist = margin - dist_sq
            dissimilar = torch.clamp(mdist, min=0)
            beta = torch.full_like(dist_sq, -1.0)
        else:
            dist = torch.sqrt(dist_sq)
            mdist = margin - dist
            dissimilar = torch.clamp(mdist, min=0) ** 2
            beta = -mdist / (dist + 1e-4)
        loss = torch.where(similar, dist_sq, dissimilar).sum() / num / 2
        coefficient = torch.where(similar, torch.ones_like(beta),
                                  torch.where(mdist > 0, beta, torch.zeros_like(beta)))
        ctx.save_for_backward(diff, coefficient)
        ctx.shape = a.shape
        return loss

    @staticmethod
    def backward(ctx, grad):
        diff, coefficient = ctx.saved_tensors
        alpha = grad / ctx.shape[0]
        da = (alpha * coefficient[:, None] * diff).reshape(ctx.shape)
        return da, -da, None, None, None


@register("ContrastiveLoss")
class ContrastiveLoss(CaffeLayer):
    """Caffe's ContrastiveLoss layer (see the module docstring)."""

    bottoms = (3, 3)
    tops = (0, 1)   # none: Caffe's automatic top

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        p = layer_param.contrastive_loss_param
        self.margin, self.legacy = float(p.margin), bool(p.legacy_version)
        self.top_shapes(bottom_shapes)

    def top_shapes(self, bottom_shapes):
        a, b, y = (tuple(s) + (1,) * (4 - len(s)) for s in bottom_shapes)
        if a[:2] != b[:2] or a[2:] != (1, 1) or b[2:] != (1, 1):
            raise self.error(f"the two feature bottoms must be (num, C, 1, 1) alike, got {a}, {b}")
        if y[0] != a[0] or y[1:] != (1, 1, 1):
            raise self.error(f"the similarity bottom must be (num, 1, 1, 1), got {y}")
        return [()]

    def forward(self, a, b, flags):
        similar = flags.detach().reshape(-1).to(torch.int64) != 0
        return (_Contrastive.apply(a, b.reshape(a.shape), similar, self.margin, self.legacy),)

"""HingeLoss (Caffe's ``HingeLossLayer``): one-vs-all hinge loss of ``num × dim`` scores.

With ``s = −1`` at each item's label and ``+1`` elsewhere, ``m = max(0, 1 + s·x)``; the loss is
``Σ m / num`` (norm L1, default) or ``Σ m² / num`` (L2). Backward: ``s·sign(m)`` or ``2·s·m``,
times ``top_diff / num``; labels (truncated to int) get no gradient.
"""
from __future__ import annotations

import torch

from .base import CaffeLayer, count
from .registry import register


@register("HingeLoss")
class HingeLoss(CaffeLayer):
    """Caffe's HingeLoss layer."""

    bottoms = (2, 2)
    tops = (0, 1)   # none: Caffe's automatic top

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        self.norm = layer_param.hinge_loss_param.norm
        self.top_shapes(bottom_shapes)

    def top_shapes(self, bottom_shapes):
        x, labels = (tuple(s) for s in bottom_shapes)
        if x[:1] != labels[:1] or count(labels) != x[0]:
            raise self.error(f"needs one label per item: scores {x}, labels {labels}")
        return [()]

    def forward(self, x, labels):
        num = x.shape[0]
        flat = x.reshape(num, -1)
        label = labels.detach().reshape(-1, 1).to(torch.int64)
        if not (torch.compiler.is_compiling() or torch.jit.is_tracing()):
            if bool(((label < 0) | (label >= flat.shape[1])).any()):
                raise self.error(f"label out of range [0, {flat.shape[1]})")
        sign = torch.ones_like(flat).scatter(1, label, -1.0)
        margin = torch.relu(1 + sign * flat)
        total = margin.sum() if self.norm == "L1" else (margin * margin).sum()
        return (total / num,)

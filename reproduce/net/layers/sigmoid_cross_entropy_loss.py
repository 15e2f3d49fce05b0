"""SigmoidCrossEntropyLoss (Caffe's ``SigmoidCrossEntropyLossLayer``).

``loss = −Σ [x·(t − (x >= 0)) − log(1 + exp(x − 2x·(x >= 0)))] / normalizer`` over the
positions whose target (truncated to int) is not ``ignore_label``; targets are used as real
values in ``[0, 1]``. The normalizer is ``loss_param.normalization`` (FULL = count, VALID =
the non-ignored count, BATCH_SIZE = num, NONE = 1; at least 1) — and when neither
``normalization`` nor the legacy ``normalize`` is set, Caffe's choice here is BATCH_SIZE (not
the proto's VALID default). Backward: ``(sigmoid(x) − t)·top_diff / normalizer``, zero where
ignored; the targets get no gradient (Caffe refuses).
"""
from __future__ import annotations

import numpy as np
import torch

from .base import CaffeLayer, count
from .registry import register
from .softmax_loss import normalizer, sequential_float_sum


class _SigmoidCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, target, ignore_label, mode):
        flat, t = x.reshape(-1), target.detach().reshape(-1)
        valid = (t.to(torch.int64) != ignore_label) if ignore_label is not None \
            else torch.ones_like(t, dtype=torch.bool)
        positive = (flat >= 0).to(flat.dtype)
        terms = -(flat * (t - positive) - torch.log(1 + torch.exp(flat - 2 * flat * positive)))
        norm = normalizer(mode, x.shape[0], count(x.shape, 1), int(valid.sum()))
        loss = sequential_float_sum(terms[valid]) / np.float32(norm)   # Caffe's float loss
        ctx.save_for_backward(x, target, valid)
        ctx.norm = norm
        return torch.tensor(float(loss), dtype=x.dtype, device=x.device)

    @staticmethod
    def backward(ctx, grad):
        x, target, valid = ctx.saved_tensors
        diff = (torch.sigmoid(x) - target.reshape(x.shape)) * valid.reshape(x.shape)
        return diff * (grad.to(torch.float32) / ctx.norm).to(x.dtype), None, None, None


@register("SigmoidCrossEntropyLoss")
class SigmoidCrossEntropyLoss(CaffeLayer):
    """Caffe's SigmoidCrossEntropyLoss layer (see the module docstring)."""

    bottoms = (2, 2)
    tops = (0, 1)   # none: Caffe's automatic top

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        p = layer_param.loss_param
        self.ignore_label = int(p.ignore_label) if p.has("ignore_label") else None
        if p.has("normalization"):
            self.mode = p.normalization
        elif p.has("normalize"):
            self.mode = "VALID" if p.normalize else "BATCH_SIZE"
        else:
            self.mode = "BATCH_SIZE"
        self.top_shapes(bottom_shapes)

    def top_shapes(self, bottom_shapes):
        x, t = (tuple(s) for s in bottom_shapes)
        if x[:1] != t[:1] or count(x) != count(t):
            raise self.error(f"inputs must have the same num and count, got {x} and {t}")
        return [()]

    def forward(self, x, target):
        return (_SigmoidCE.apply(x, target, self.ignore_label, self.mode),)

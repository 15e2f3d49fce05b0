"""MultinomialLogisticLoss (Caffe's ``MultinomialLogisticLossLayer``): ``−Σ log p[label] / num``.

Bottom 0 holds probabilities (``num × dim``), bottom 1 one label per item (``(num, 1, 1, 1)``).
Each picked probability is floored at ``1e-20`` (Caffe's ``kLOG_THRESHOLD``), in the loss and
in the gradient ``−top_diff / num / max(p, 1e-20)`` at the label (zero elsewhere).
"""
from __future__ import annotations

import torch

from .base import CaffeLayer, count
from .registry import register

LOG_THRESHOLD = 1e-20


class _Multinomial(torch.autograd.Function):
    @staticmethod
    def forward(ctx, prob, label):
        num = prob.shape[0]
        flat = prob.reshape(num, -1)
        picked = flat.gather(1, label).clamp_min(LOG_THRESHOLD)
        ctx.save_for_backward(picked, label)
        ctx.shape = prob.shape
        return -torch.log(picked).sum() / num

    @staticmethod
    def backward(ctx, grad):
        picked, label = ctx.saved_tensors
        num = ctx.shape[0]
        diff = torch.zeros((num, count(ctx.shape, 1)), dtype=picked.dtype, device=picked.device)
        diff.scatter_(1, label, -(grad / num) / picked)
        return diff.reshape(ctx.shape), None


@register("MultinomialLogisticLoss")
class MultinomialLogisticLoss(CaffeLayer):
    """Caffe's MultinomialLogisticLoss layer."""

    bottoms = (2, 2)
    tops = (0, 1)   # none: Caffe's automatic top

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        self.top_shapes(bottom_shapes)

    def top_shapes(self, bottom_shapes):
        prob, labels = (tuple(s) for s in bottom_shapes)
        if prob[:1] != labels[:1] or count(labels) != prob[0]:
            raise self.error(f"needs one label per item (num, 1, 1, 1): probabilities {prob}, "
                             f"labels {labels}")
        return [()]

    def forward(self, prob, labels):
        label = labels.detach().reshape(-1, 1).to(torch.int64)
        dim = count(prob.shape, 1)
        if bool(((label < 0) | (label >= dim)).any()):
            raise self.error(f"label out of range [0, {dim})")
        return (_Multinomial.apply(prob, label),)

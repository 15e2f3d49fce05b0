"""BNLL (Caffe's ``BNLLLayer``): the binomial normal log likelihood ``log(1 + exp(x))``.

Forward is Caffe's overflow-safe form ``x > 0 ? x + log(1 + exp(-x)) : log(1 + exp(x))``;
backward is Caffe's ``top_diff · e / (e + 1)`` with ``e = exp(min(x, 50))`` (its
``kBNLL_THRESHOLD``), written out as an autograd function so the clamp is Caffe's.
"""
from __future__ import annotations

import torch

from .base import ElementwiseLayer
from .registry import register

BNLL_THRESHOLD = 50.0


class _BNLL(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return bnll_value(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        e = torch.exp(torch.clamp(x, max=BNLL_THRESHOLD))
        return grad * (e / (e + 1))


def bnll_value(x: torch.Tensor) -> torch.Tensor:
    """Caffe's forward: ``x + log1p(exp(-x))`` for positive x, ``log1p(exp(x))`` otherwise."""
    return torch.where(x > 0, x + torch.log(1 + torch.exp(-x)), torch.log(1 + torch.exp(x)))


@register("BNLL")
class BNLL(ElementwiseLayer):
    """Caffe's BNLL layer."""

    def forward(self, x):
        if not torch.is_grad_enabled() or not x.requires_grad:
            return (bnll_value(x),)
        return (_BNLL.apply(x),)

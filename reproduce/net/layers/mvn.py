"""MVN (Caffe's ``MVNLayer``): mean-variance normalisation per (image, channel) or per image.

Groups are (num, channels) — or num alone with ``across_channels`` — over the remaining
axes. Forward: ``y = x − mean``; with ``normalize_variance`` (default) ``y /= sqrt(E[(x −
mean)²]) + eps`` (eps added to the standard deviation, as Caffe does). Backward is Caffe's
formula, not the exact derivative: ``(dy − (Σ dy + y·Σ(y·dy)) / dim) / (std + eps)``;
without variance normalisation ``dy − mean(dy)``.
"""
from __future__ import annotations

import torch

from .base import ElementwiseLayer
from .registry import register


class _MVN(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, groups, eps):
        flat = x.reshape(groups, -1)
        centred = flat - flat.mean(dim=1, keepdim=True)
        std = torch.sqrt((centred * centred).mean(dim=1, keepdim=True)) + eps
        top = centred / std
        ctx.save_for_backward(top, std)
        return top.reshape(x.shape)

    @staticmethod
    def backward(ctx, grad):
        top, std = ctx.saved_tensors
        dy = grad.reshape(top.shape)
        dim = top.shape[1]
        inner = (top * dy).sum(dim=1, keepdim=True) * top + dy.sum(dim=1, keepdim=True)
        return ((dy - inner / dim) / std).reshape(grad.shape), None, None


@register("MVN")
class MVN(ElementwiseLayer):
    """Caffe's MVN layer (see the module docstring)."""

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        p = layer_param.mvn_param
        self.normalize_variance = bool(p.normalize_variance)
        self.across_channels = bool(p.across_channels)
        self.eps = float(p.eps)
        if len(bottom_shapes[0]) > 4:
            raise self.error(f"MVN reads num/channels of a blob of at most 4 axes, "
                             f"got {tuple(bottom_shapes[0])}")

    def forward(self, x):
        groups = x.shape[0] if self.across_channels or x.dim() < 2 else x.shape[0] * x.shape[1]
        if self.normalize_variance:
            return (_MVN.apply(x, groups, self.eps),)
        flat = x.reshape(groups, -1)
        return ((flat - flat.mean(dim=1, keepdim=True)).reshape(x.shape),)

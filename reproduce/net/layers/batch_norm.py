"""BatchNorm (Caffe's ``BatchNormLayer``): normalisation only — no learned scale or shift.

Blobs (all zero-initialised, all with ``lr_mult`` forced to 0): 0 = running *sum* of means,
1 = running sum of (unbiased) variances, 2 = the scale factor (one element). Caffe:

* ``use_global_stats`` (default: true in TEST, false in TRAIN): mean = blob0 / blob2,
  variance = blob1 / blob2 (both 0 when blob2 is 0);
* otherwise the batch statistics over every axis but 1 (biased variance ``E[(x-Ex)²]``) are
  used, and the running blobs are updated: ``blob2 = maf·blob2 + 1``,
  ``blob0 = mean + maf·blob0``, ``blob1 = m/(m-1)·var + maf·blob1`` with ``m = count/channels``
  (``maf`` = ``moving_average_fraction``);
* ``y = (x - mean) / sqrt(var + eps)``; the gradient is the exact derivative of that with the
  statistics used (batch statistics included), which is Caffe's backward.
"""
from __future__ import annotations

import torch

from .base import ElementwiseLayer
from .registry import register


@register("BatchNorm")
class BatchNorm(ElementwiseLayer):
    """Caffe's BatchNorm layer (see the module docstring)."""

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        p = layer_param.batch_norm_param
        shape = tuple(bottom_shapes[0])
        self.channels = 1 if len(shape) == 1 else shape[1]
        self.use_global_stats = (bool(p.use_global_stats) if p.has("use_global_stats")
                                 else self.phase == "TEST")
        self.moving_average_fraction = float(p.moving_average_fraction)
        self.eps = float(p.eps)
        for blob_shape in ((self.channels,), (self.channels,), (1,)):
            self.add_blob_tensor(torch.zeros(blob_shape))
        for i, spec in enumerate(layer_param.param[:3]):
            if spec.lr_mult != 0:
                raise self.error("cannot configure batch normalization statistics as layer "
                                 f"parameters (param {i} has lr_mult {spec.lr_mult})")

    def param_specs(self):
        specs = self.layer_param.param
        return [(0.0, float(specs[i].decay_mult) if i < len(specs) else 1.0) for i in range(3)]

    def forward(self, x):
        shape = x.shape
        if len(shape) > 1 and shape[1] != self.channels:
            raise self.error(f"input has {shape[1]} channels, the layer was set up for "
                             f"{self.channels}")
        grouped = x.reshape(shape[0], self.channels, -1)
        if self.use_global_stats:
            factor = self.blob2.detach()[0]
            # a select, not a Python branch on a value: tracers record it for any blob
            inverse = torch.where(factor == 0, torch.zeros_like(factor), 1 / factor)
            mean, var = self.weight.detach() * inverse, self.bias.detach() * inverse
        else:
            mean = grouped.mean(dim=(0, 2))
            var = (grouped - mean[None, :, None]).square().mean(dim=(0, 2))
            self._update_running_stats(mean.detach(), var.detach(), x.numel() // self.channels)
        normalized = (grouped - mean[None, :, None]) / torch.sqrt(var + self.eps)[None, :, None]
        return (normalized.reshape(shape),)

    @torch.no_grad()
    def _update_running_stats(self, mean, var, m):
        maf = self.moving_average_fraction
        self.blob2.mul_(maf).add_(1)
        self.weight.mul_(maf).add_(mean)
        correction = m / (m - 1) if m > 1 else 1.0
        self.bias.mul_(maf).add_(var * correction)

"""Deconvolution (Caffe's ``DeconvolutionLayer``): the transpose of Convolution.

Parameters are read exactly as for Convolution (``convolution_param``), but the weight blob is
``(channels, num_output/group, *kernel)`` — Caffe's layout is PyTorch's ``conv_transpose``
layout, so blobs copy across unchanged. Output size per axis is
``stride·(in - 1) + dilation·(k - 1) + 1 - 2·pad`` (no output padding). The FCN nets use it
with ``bias_term: false`` and a bilinear kernel for upsampling.

That kernel is diagonal — channel ``c`` upsamples only channel ``c``, the other 20 of FCN's 21
× 21 filters are zeros — yet Caffe (one group) multiplies by all of them. When the weight is
exactly diagonal, no gradient is wanted for it and the input is finite, the CPU runs the
same products as ``group = channels`` instead: every term dropped is an exact ``0·x``, so
the sums are Caffe's up to float32 summation order, at 1/channels of the work (FCN-8s's
upscore8 is a fifth of a tiny-width pass at 64×80).
"""
from __future__ import annotations

import math

import torch

from ..plain import plain
from .convolution import _CONV_TRANSPOSE, _ConvolutionBase
from .registry import register


@register("Deconvolution")
class Deconvolution(_ConvolutionBase):
    """Caffe's Deconvolution layer (see the module docstring)."""

    transposed = True

    def output_shape(self, shape):
        g = self.geometry
        spatial = tuple(s * (size - 1) + e - 2 * p
                        for size, p, e, s in zip(shape[2:], g.pad, g.extent, g.stride))
        if min(spatial) <= 0:
            raise self.error(f"input {shape} gives a non-positive output size {spatial}")
        return (shape[0], self.num_output, *spatial)

    def forward(self, *bottoms):
        g = self.geometry
        deconv = _CONV_TRANSPOSE[self.num_spatial]
        bias = self.bias if self.bias_term else None
        weight, group = self.weight, self.group
        diagonal = self._diagonal_weight(bottoms)
        if diagonal is not None:
            weight, group = diagonal, self.channels
        return tuple(deconv(x, weight, bias, g.stride, g.pad, 0, group, g.dilation)
                     for x in bottoms)

    def _diagonal_weight(self, bottoms):
        """The weight as ``(channels, 1, *kernel)`` when it is exactly diagonal (module
        docstring) and that path applies to this call; None otherwise."""
        weight = self.weight
        if (self.group != 1 or self.channels != self.num_output or self.channels == 1
                or weight.device.type != "cpu" or plain()
                or (weight.requires_grad and torch.is_grad_enabled())):
            return None
        with torch.no_grad():
            flat = weight.detach().reshape(self.channels, self.channels, -1)
            # checked on every call: pycaffe scripts write weights through numpy views,
            # which no version counter sees. The largest |w| of each (out, in) filter: any
            # off-diagonal one non-zero (or NaN) keeps every product.
            largest = flat.abs().amax(dim=2)
            largest.diagonal().zero_()
            if bool(largest.any()):
                return None
            # 0·inf is NaN in Caffe's products: keep them all unless the input is finite
            # (a non-finite sum flags inf and NaN; an overflowing one just keeps them too)
            if not all(math.isfinite(float(x.sum())) for x in bottoms):
                return None
            diagonal = flat.diagonal(dim1=0, dim2=1)          # (k·k, channels), a view
            return diagonal.t().reshape(self.channels, 1, *weight.shape[2:])

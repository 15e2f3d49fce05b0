"""Deconvolution (Caffe's ``DeconvolutionLayer``): the transpose of Convolution.

Parameters are read exactly as for Convolution (``convolution_param``), but the weight blob is
``(channels, num_output/group, *kernel)`` — Caffe's layout is PyTorch's ``conv_transpose``
layout, so blobs copy across unchanged. Output size per axis is
``stride·(in - 1) + dilation·(k - 1) + 1 - 2·pad`` (no output padding). The FCN nets use it
with ``bias_term: false`` and a bilinear kernel for upsampling.
"""
from __future__ import annotations

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
        return tuple(deconv(x, self.weight, bias, g.stride, g.pad, 0, self.group, g.dilation)
                     for x in bottoms)

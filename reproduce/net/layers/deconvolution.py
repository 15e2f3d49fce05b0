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

Whether the weight is diagonal is known only from its values, which pycaffe scripts write
through numpy views that no version counter sees: every call compares the weight's bytes
with a copy kept when it was last judged (one ``memcmp``, 10 µs for upscore8's 21×21×16×16,
where judging it again takes 3–12 operators), and judges it again only when they differ.
"""
from __future__ import annotations

import ctypes
import math

import torch

from ..plain import plain
from .convolution import _CONV_TRANSPOSE, _ConvolutionBase
from .registry import register


def _libc_memcmp():
    try:
        memcmp = ctypes.CDLL(None).memcmp
    except (OSError, AttributeError):  # no C library to ask: torch compares instead
        return None
    memcmp.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
    memcmp.restype = ctypes.c_int
    return memcmp


_MEMCMP = _libc_memcmp()


def same_bytes(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two contiguous CPU tensors of one dtype and shape hold the same bytes
    (bitwise: -0.0 is not 0.0, a NaN equals the same NaN)."""
    if _MEMCMP is not None:
        return _MEMCMP(a.data_ptr(), b.data_ptr(), a.numel() * a.element_size()) == 0
    return torch.equal(a.view(torch.uint8), b.view(torch.uint8))


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

    def forward(self, *bottoms, padding=None):
        g = self.geometry
        deconv = _CONV_TRANSPOSE[self.num_spatial]
        bias = self.bias if self.bias_term else None
        weight, group = self.weight, self.group
        diagonal = self._diagonal_weight(bottoms)
        if diagonal is not None:
            weight, group = diagonal, self.channels
        pad = g.pad if padding is None else padding
        return tuple(deconv(x, weight, bias, g.stride, pad, 0, group, g.dilation)
                     for x in bottoms)

    def forward_window(self, x: torch.Tensor, window: tuple[slice, slice]) -> torch.Tensor:
        """The top's rows and columns ``window`` (2-d, unit steps, within the top) alone:
        the input rows and columns that reach them, upsampled without padding, and the
        window cut from that (``reproduce.net.crop_fusion``). Each output sums the same
        products as in ``forward``'s top."""
        g = self.geometry
        starts, reads = [], []
        for axis, (cut, s, p, e) in enumerate(zip(window, g.stride, g.pad, g.extent)):
            size = x.shape[2 + axis]
            first, last = cut.start + p, cut.stop - 1 + p  # in the unpadded output
            lo = max(0, -(-(first - e + 1) // s))
            hi = min(size - 1, last // s)
            reads.append(slice(lo, hi + 1))
            starts.append(first - lo * s)
        (y,) = self.forward(x[:, :, reads[0], reads[1]], padding=(0, 0))
        rows, cols = (slice(start, start + cut.stop - cut.start)
                      for start, cut in zip(starts, window))
        return y[:, :, rows, cols]

    def _diagonal_weight(self, bottoms):
        """The weight as ``(channels, 1, *kernel)`` when it is exactly diagonal (module
        docstring) and that path applies to this call; None otherwise."""
        weight = self.weight
        if (self.group != 1 or self.channels != self.num_output or self.channels == 1
                or weight.device.type != "cpu" or plain()
                or (weight.requires_grad and torch.is_grad_enabled())):
            return None
        with torch.no_grad():
            diagonal = self._judged_diagonal(weight.detach())
            if diagonal is None:
                return None
            # 0·inf is NaN in Caffe's products: keep them all unless the input is finite
            # (a non-finite sum flags inf and NaN; an overflowing one just keeps them too)
            if not all(math.isfinite(float(x.sum())) for x in bottoms):
                return None
            return diagonal

    def _judged_diagonal(self, weight: torch.Tensor) -> torch.Tensor | None:
        """The weight's diagonal as a contiguous ``(channels, 1, *kernel)`` when the weight
        is exactly diagonal, else None; judged again only when its bytes changed since the
        last judgement (module docstring)."""
        kept = self.__dict__.get("_diagonal_judged")
        if (kept is not None and weight.is_contiguous() and kept[0].dtype == weight.dtype
                and kept[0].shape == weight.shape
                and same_bytes(weight, kept[0])):
            return kept[1]
        flat = weight.reshape(self.channels, self.channels, -1)
        # the largest |w| of each (out, in) filter: any off-diagonal one non-zero (or NaN)
        # keeps every product
        largest = flat.abs().amax(dim=2)
        largest.diagonal().zero_()
        diagonal = None
        if not bool(largest.any()):
            diagonal = flat.diagonal(dim1=0, dim2=1).t().contiguous().reshape(
                self.channels, 1, *weight.shape[2:])
        if weight.is_contiguous():
            self.__dict__["_diagonal_judged"] = (weight.clone(), diagonal)
        return diagonal

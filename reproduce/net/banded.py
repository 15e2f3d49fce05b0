"""A 2-d convolution that computes only the non-constant part of its output.

Given the plan from ``constant_band.conv_band``, the output's band is filled with one value
per (image, channel) — the convolution of a patch of the input's band value (or of zeros,
for a band made of padding) — and only the ring and the core are convolved, each from its
own input window. The blob is the same as the dense convolution's up to float32 summation
order; ``tests/test_convolution_paths.py`` checks it against the dense path and the golden tests
against Caffe.

Under autograd the same split serves the weight gradient: the band's share of ``dW`` is one
outer product of the band-summed top diff with the constant patch, instead of one per pixel.
The input gradient is computed densely (every input pixel may receive gradient).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from .constant_band import Band, ConvBand, Rect

if TYPE_CHECKING:
    from .layers.convolution import ConvGeometry

_conv_backward = torch.ops.aten.convolution_backward


def input_window(x: torch.Tensor, rect: Rect, g: ConvGeometry) -> torch.Tensor:
    """The input an output rectangle reads, zero-padded where it reaches past the blob."""
    y0, y1, x0, x1 = rect
    (sh, sw), (ph, pw), (eh, ew) = g.stride, g.pad, g.extent
    top, bottom = y0 * sh - ph, (y1 - 1) * sh - ph + eh
    left, right = x0 * sw - pw, (x1 - 1) * sw - pw + ew
    height, width = x.shape[2:]
    window = x[:, :, max(top, 0):min(bottom, height), max(left, 0):min(right, width)]
    padding = (max(-left, 0), max(right - width, 0), max(-top, 0), max(bottom - height, 0))
    # a contiguous copy: oneDNN convolves a strided view markedly slower than copy + convolve
    return F.pad(window, padding) if any(padding) else window.contiguous(memory_format=_format_of(x))


def band_patch(x: torch.Tensor, band_in: Band | None, plan: ConvBand,
               g: ConvGeometry) -> torch.Tensor:
    """An input patch of one kernel extent holding what every band output sees."""
    n, c = x.shape[:2]
    if plan.from_padding:
        return x.new_zeros((n, c, *g.extent))
    y, x_ = band_in.sample_point()
    return x[:, :, y, x_].reshape(n, c, 1, 1).expand(n, c, *g.extent).contiguous()


def _forward(x, weight, bias, band_in, plan: ConvBand, g: ConvGeometry, groups: int) -> torch.Tensor:
    out = plan.out
    y = torch.empty((x.shape[0], weight.shape[0], out.h.size, out.w.size), dtype=x.dtype,
                    device=x.device, memory_format=_format_of(x))
    for rect in out.explicit_rects():
        y0, y1, x0, x1 = rect
        y[:, :, y0:y1, x0:x1] = F.conv2d(input_window(x, rect, g), weight, bias, g.stride, 0,
                                         g.dilation, groups)
    value = F.conv2d(band_patch(x, band_in, plan, g), weight, bias, 1, 0, g.dilation, groups)
    for y0, y1, x0, x1 in out.band_rects():
        y[:, :, y0:y1, x0:x1] = value
    return y


def _format_of(x: torch.Tensor):
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


class _BandedConv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, band_in, plan, geometry, groups):
        ctx.save_for_backward(x, weight)
        ctx.band_in, ctx.plan, ctx.geometry, ctx.groups = band_in, plan, geometry, groups
        ctx.has_bias = bias is not None
        return _forward(x, weight, bias, band_in, plan, geometry, groups)

    @staticmethod
    def backward(ctx, dy):
        x, weight = ctx.saved_tensors
        g, plan, groups = ctx.geometry, ctx.plan, ctx.groups
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        dx = dw = db = None
        if need_x:
            dx = _conv_backward(dy, x, weight, None, g.stride, g.pad, g.dilation, False, [0, 0],
                                groups, [True, False, False])[0]
        if need_w or need_b:
            mask = [False, need_w, need_b and ctx.has_bias]
            bias_sizes = [weight.shape[0]] if ctx.has_bias else None
            dw = torch.zeros_like(weight) if need_w else None
            db = weight.new_zeros(weight.shape[0]) if mask[2] else None

            def accumulate(top_diff, window):
                _, gw, gb = _conv_backward(top_diff, window, weight, bias_sizes, g.stride, [0, 0],
                                           g.dilation, False, [0, 0], groups, mask)
                if dw is not None:
                    dw.add_(gw)
                if db is not None:
                    db.add_(gb)

            for rect in plan.out.explicit_rects():
                y0, y1, x0, x1 = rect
                accumulate(dy[:, :, y0:y1, x0:x1].contiguous(), input_window(x, rect, g))
            band_sum = sum(dy[:, :, y0:y1, x0:x1].sum((2, 3), keepdim=True)
                           for y0, y1, x0, x1 in plan.out.band_rects())
            accumulate(band_sum, band_patch(x, ctx.band_in, plan, g))
        return dx, dw, db, None, None, None, None


def banded_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                  band_in: Band | None, plan: ConvBand, geometry: ConvGeometry,
                  groups: int) -> torch.Tensor:
    """The convolution of ``x`` with the output band ``plan.out`` filled, not computed."""
    needs_grad = torch.is_grad_enabled() and (
        x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad))
    if needs_grad:
        return _BandedConv2d.apply(x, weight, bias, band_in, plan, geometry, groups)
    return _forward(x, weight, bias, band_in, plan, geometry, groups)

"""A 2-d convolution that computes only the non-constant part of its output, and of its gradients.

Given the plan from ``constant_band.conv_band``, the output's band is filled with one value
per (image, channel) — the convolution of a patch of the input's band value (or of zeros,
for a band made of padding) — and only the ring and the core are convolved, each from its
own input window. The blob is the same as the dense convolution's up to float32 summation
order; ``tests/test_convolution_paths.py`` checks it against the dense path and the golden
tests against Caffe.

Backward follows the same split. The band's outputs all see the same input patch, so their
share of the weight gradient is one product of the band-summed top diff with that patch, and
their share of the input gradient lands on the input's band as one sum per (image, channel).

**What a gradient inside a band means.** Every consumer of a banded blob's gradient — this
convolution (for its weight gradient and for its input's band), ReLU (whose mask is constant
on the band) and pooling (which only moves gradient within the band) — needs that gradient
on the band only as its per-(image, channel) sum. So the band's share of an input gradient is
spread evenly over the input's band instead of being computed pixel by pixel: parameter
gradients are exact (to summation order), and a band's diff is exact in its sum, not per
pixel. ``Net`` exposes no intermediate diff, so nothing else can read the difference.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import conv_layout
from .constant_band import Band, ConvBand, Rect
from .conv_geometry import ConvGeometry

_conv_backward = torch.ops.aten.convolution_backward


def _window_bounds(shape, rect: Rect, g: ConvGeometry):
    """The input window an output rectangle reads: its slices, and the zero padding beyond."""
    y0, y1, x0, x1 = rect
    (sh, sw), (ph, pw), (eh, ew) = g.stride, g.pad, g.extent
    top, bottom = y0 * sh - ph, (y1 - 1) * sh - ph + eh
    left, right = x0 * sw - pw, (x1 - 1) * sw - pw + ew
    height, width = shape[2:]
    rows, cols = slice(max(top, 0), min(bottom, height)), slice(max(left, 0), min(right, width))
    padding = (max(-left, 0), max(right - width, 0), max(-top, 0), max(bottom - height, 0))
    return rows, cols, padding


def input_window(x: torch.Tensor, rect: Rect, g: ConvGeometry) -> torch.Tensor:
    """The input an output rectangle reads, zero-padded where it reaches past the blob."""
    rows, cols, padding = _window_bounds(x.shape, rect, g)
    window = x[:, :, rows, cols]
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


def _forward(x, weight, bias, band_in, plan: ConvBand, g: ConvGeometry, groups: int,
             dense: bool) -> torch.Tensor:
    if dense:
        return F.conv2d(x, weight, bias, g.stride, g.pad, g.dilation, groups)
    out = plan.out
    y = torch.empty((x.shape[0], weight.shape[0], out.h.size, out.w.size), dtype=x.dtype,
                    device=x.device, memory_format=_format_of(x))
    for rect in out.explicit_rects():
        y0, y1, x0, x1 = rect
        # copied into y: the window's result may come back in either layout
        y[:, :, y0:y1, x0:x1] = conv_layout.conv2d(input_window(x, rect, g), weight, bias,
                                                   g.stride, 0, g.dilation, groups,
                                                   keep_layout=False)
    value = F.conv2d(band_patch(x, band_in, plan, g), weight, bias, 1, 0, g.dilation, groups)
    fill_band(y, value, out)
    return y


# channels-last maps of at most this many channels fill their band from one broadcast row
FILL_BY_ROWS_MAX_CHANNELS = 16


def fill_band(y: torch.Tensor, value: torch.Tensor, band: Band) -> None:
    """Each band rectangle of ``y`` set to ``value`` (N, C, 1, 1).

    Copying a (C, 1, 1) value into a channels-last map loops over C values per pixel, which
    for C of 4–8 costs 4× copying a ready row: such maps get one row of the value per width
    and copy it down the rectangle (254 → 49 µs for conv1_1's band in the tiny FCN-8s at
    64×80, one thread, AVX-512 EPYC; slower for 32 channels and more, or NCHW).
    """
    rows = {}
    by_rows = (y.shape[1] <= FILL_BY_ROWS_MAX_CHANNELS and not y.is_contiguous()
               and y.is_contiguous(memory_format=torch.channels_last))
    for y0, y1, x0, x1 in band.band_rects():
        source = value
        if by_rows:
            source = rows.get(x1 - x0)
            if source is None:
                source = rows[x1 - x0] = value.expand(*value.shape[:2], 1, x1 - x0).contiguous(
                    memory_format=torch.channels_last)
        y[:, :, y0:y1, x0:x1] = source


def _format_of(x: torch.Tensor):
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _band_sum(t: torch.Tensor, band: Band) -> torch.Tensor:
    """Per (image, channel) sum over a band, shaped (N, C, 1, 1)."""
    return sum(t[:, :, y0:y1, x0:x1].sum((2, 3), keepdim=True)
               for y0, y1, x0, x1 in band.band_rects())


class _BandedConv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, band_in, plan, geometry, groups, dense):
        ctx.save_for_backward(x, weight)
        ctx.band_in, ctx.plan, ctx.geometry, ctx.groups = band_in, plan, geometry, groups
        ctx.has_bias, ctx.dense = bias is not None, dense
        return _forward(x, weight, bias, band_in, plan, geometry, groups, dense)

    @staticmethod
    def backward(ctx, dy):
        x, weight = ctx.saved_tensors
        g, plan, groups, band_in = ctx.geometry, ctx.plan, ctx.groups, ctx.band_in
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        mask = [need_x, need_w, need_b and ctx.has_bias]
        bias_sizes = [weight.shape[0]] if ctx.has_bias else None
        band_sum = _band_sum(dy, plan.out)  # the band's top diff is meaningful only summed
        if ctx.dense:
            # most outputs are explicit: one dense pass with the band's top diff taken out
            explicit_dy = dy.clone()
            for y0, y1, x0, x1 in plan.out.band_rects():
                explicit_dy[:, :, y0:y1, x0:x1] = 0
            dx, dw, db = _conv_backward(explicit_dy, x, weight, bias_sizes, g.stride, g.pad,
                                        g.dilation, False, [0, 0], groups, mask)
        else:
            dx = torch.zeros_like(x) if need_x else None
            dw = torch.zeros_like(weight) if mask[1] else None
            db = weight.new_zeros(weight.shape[0]) if mask[2] else None
            for rect in plan.out.explicit_rects():
                y0, y1, x0, x1 = rect
                gx, gw, gb = _conv_backward(dy[:, :, y0:y1, x0:x1].contiguous(),
                                            input_window(x, rect, g), weight, bias_sizes,
                                            g.stride, [0, 0], g.dilation, False, [0, 0], groups,
                                            mask)
                if need_x:
                    rows, cols, (left, _, top, _) = _window_bounds(x.shape, rect, g)
                    height, width = rows.stop - rows.start, cols.stop - cols.start
                    dx[:, :, rows, cols] += gx[:, :, top:top + height, left:left + width]
                if dw is not None:
                    dw += gw
                if db is not None:
                    db += gb
        # the band's outputs: one patch, seen by all of them
        patch_mask = [need_x and not plan.from_padding, mask[1], mask[2]]
        gx, gw, gb = _conv_backward(band_sum, band_patch(x, band_in, plan, g), weight, bias_sizes,
                                    [1, 1], [0, 0], g.dilation, False, [0, 0], groups, patch_mask)
        if dw is not None:
            dw = dw + gw
        if db is not None:
            db = db + gb
        if patch_mask[0]:
            rects = band_in.band_rects()
            count = sum((y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in rects)
            share = gx.sum((2, 3), keepdim=True) / count  # spread evenly (module docstring)
            for y0, y1, x0, x1 in rects:
                dx[:, :, y0:y1, x0:x1] += share
        return dx, dw, db, None, None, None, None, None


def banded_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                  band_in: Band | None, plan: ConvBand, geometry: ConvGeometry,
                  groups: int, dense: bool = False) -> torch.Tensor:
    """The convolution of ``x`` with the output band ``plan.out`` filled, not computed.

    ``dense`` convolves every output (cheaper when few are in the band) but keeps the
    band's meaning for the gradients (module docstring).
    """
    needs_grad = torch.is_grad_enabled() and (
        x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad))
    if needs_grad:
        return _BandedConv2d.apply(x, weight, bias, band_in, plan, geometry, groups, dense)
    return _forward(x, weight, bias, band_in, plan, geometry, groups, dense)

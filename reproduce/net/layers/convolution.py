"""Convolution (Caffe's ``ConvolutionLayer`` with ``BaseConvolutionLayer``'s setup rules).

Geometry is read as Caffe reads it: ``kernel_size``/``stride``/``pad``/``dilation`` are given
once (all spatial axes) or once per spatial axis, or — 2-d only — as ``kernel_h``/``kernel_w``
etc.; stride and dilation default to 1, pad to 0. The weight blob is
``(num_output, channels/group, *kernel)``, the bias ``(num_output,)``. Output size per axis is
``(in + 2·pad - (dilation·(k-1) + 1)) // stride + 1``. Several bottoms are allowed and share
the weights, one top per bottom. Only the channel axis 1 (``axis: 1``) is supported.

Two faster routes give the same blobs to float32 summation order (both checked against
Caffe's golden blobs): inside a ``Net``, a 2-d convolution whose output has a constant band
(``reproduce.net.constant_band``) convolves only the rest (``reproduce.net.banded``); and a
convolution with few outputs and long sums (fc6, fc7) runs as Caffe's own im2col + GEMM.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .. import conv_layout
from ..banded import banded_conv2d
from ..conv_geometry import ConvGeometry
from ..constant_band import conv_band
from ..plain import plain
from .base import CaffeLayer, Shape
from .registry import register

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_TRANSPOSE = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


# measured on a 2-core AVX2 machine (BENCHMARKS.md): below these, the faster path wins
BANDED_MAX_EXPLICIT_FRACTION = 0.75
GEMM_MAX_OUTPUT_PIXELS = 1024
GEMM_MIN_REDUCTION = 4096
# The constant band's cost model (``band_pays``), fitted to single-layer timings, banded
# against dense, on the 2-core AVX-512 host (one thread, CPU time; BENCHMARKS.md, "Small
# inputs"). A direct convolution multiplies at about
# ``min(BANDED_MAX_GFLOPS, BANDED_GFLOPS_PER_CHANNEL · √(in · out channels))`` GFLOP/s
# (narrow layers run far below the machine's peak); the banded path convolves each explicit
# window over its input window, halo included (thin ring strips run at the rate of that
# area, not of their outputs), and pays per extra operator, per pixel of the band it fills,
# and per pixel it copies (input windows out, window outputs in: channels-last copies cost
# per pixel more than per channel, and on 4–16 channels copying a pixel costs about as
# much as convolving it).
BANDED_CALL_COST_S = 10e-6
BANDED_FILL_COST_S = 2e-9
BANDED_COPY_COST_S = 10e-9
BANDED_GFLOPS_PER_CHANNEL = 6.0
BANDED_MAX_GFLOPS = 180.0
# False: no model, the band's sub-windows wherever ``BANDED_MAX_EXPLICIT_FRACTION`` allows
# (the tests run that path on toy sizes, where it never pays)
BANDED_COST_MODEL = True


def band_pays(plan, in_channels: int, out_channels: int, kernel_numel: int,
              extent: tuple[int, int] = (3, 3), stride: tuple[int, int] = (1, 1)) -> bool:
    """Whether convolving only the explicit part of a banded output beats convolving it all:
    the modelled time of the dense convolution against the explicit windows' convolutions
    (over their input windows), the window copies, the band's fills and the extra operators
    (module constants). Decided once per layer and input shape (``Convolution`` keeps the
    answer), never per pass."""
    if plan.explicit_fraction > BANDED_MAX_EXPLICIT_FRACTION:
        return False
    if not BANDED_COST_MODEL:
        return True
    out = plan.out
    rate = 1e9 * min(BANDED_MAX_GFLOPS,
                     BANDED_GFLOPS_PER_CHANNEL * math.sqrt(in_channels * out_channels))
    per_pixel = 2.0 * in_channels * out_channels * kernel_numel / rate
    dense = out.h.size * out.w.size * per_pixel
    (eh, ew), (sh, sw) = extent, stride
    windows = explicit = 0
    for y0, y1, x0, x1 in out.explicit_rects():
        windows += ((y1 - y0 - 1) * sh + eh) * ((x1 - x0 - 1) * sw + ew)
        explicit += (y1 - y0) * (x1 - x0)
    band_pixels = sum((y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in out.band_rects())
    extra_calls = 3 * len(out.explicit_rects()) + 3 + len(out.band_rects())
    banded = (windows / (sh * sw) * per_pixel + extra_calls * BANDED_CALL_COST_S
              + band_pixels * BANDED_FILL_COST_S + (windows + explicit) * BANDED_COPY_COST_S)
    return banded < dense


# oneDNN's inner product (what torch.compile's CPU backend calls for a linear layer): on the
# AVX-512 EPYC it multiplies fc6's (pixels × 25088)·(25088 × 4096) 2.2–2.9× faster than
# MKL's sgemm, which runs a slower code path on AMD (1 and 2 threads, 9 to 400 pixels:
# 2 threads, 9 pixels 17 vs 51 ms, 256 pixels 155 vs 374 ms; BENCHMARKS.md, "Small inputs")
_ONEDNN_LINEAR = (getattr(torch.ops.mkldnn, "_linear_pointwise", None)
                  if torch.backends.mkldnn.is_available() else None)


def _rows_product(columns: torch.Tensor, matrix: torch.Tensor,
                  bias: torch.Tensor | None) -> torch.Tensor:
    """``columns.t() · matrix.t() + bias``, (pixels × out), without autograd (inference)."""
    if (_ONEDNN_LINEAR is not None and columns.device.type == "cpu"
            and columns.dtype == matrix.dtype == torch.float32 and matrix.is_contiguous()):
        return _ONEDNN_LINEAR(columns.t(), matrix, bias, "none", [], "")
    return (torch.addmm(bias, columns.t(), matrix.t()) if bias is not None
            else columns.t() @ matrix.t())


def conv2d_as_gemm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                   g: ConvGeometry) -> torch.Tensor:
    """A 2-d convolution (one group) as Caffe computes it: im2col, then one GEMM per image."""
    n, channels, height, width = x.shape
    out_h, out_w = ((size + 2 * p - e) // s + 1
                    for size, p, e, s in zip((height, width), g.pad, g.extent, g.stride))
    if g.kernel == (1, 1) and g.stride == (1, 1) and g.pad == (0, 0):
        columns = x.reshape(n, channels, height * width)
    else:
        columns = F.unfold(x, g.kernel, g.dilation, g.pad, g.stride)
    matrix = weight.reshape(weight.shape[0], -1)
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad
                                    or (bias is not None and bias.requires_grad)):
        outputs = [torch.addmm(bias[:, None], matrix, columns[i]) if bias is not None
                   else matrix @ columns[i] for i in range(n)]
    else:
        # inference: the product with the outputs as rows, (pixels × K)·(K × out), the same
        # sums, in oneDNN's inner product where torch has it (module docstring)
        outputs = [_rows_product(columns[i], matrix, bias).t() for i in range(n)]
    out = outputs[0].unsqueeze(0) if n == 1 else torch.stack(outputs)
    return out.reshape(n, weight.shape[0], out_h, out_w).contiguous()


def conv_geometry(layer: CaffeLayer, num_spatial: int) -> ConvGeometry:
    """Kernel, stride, pad and dilation per spatial axis, by BaseConvolutionLayer's rules."""
    p = layer.layer_param.convolution_param

    def per_axis(name: str, default: int | None) -> tuple[int, ...]:
        h, w = f"{name}_h", f"{name}_w"
        list_name = "kernel_size" if name == "kernel" else name
        if name != "dilation" and (p.has(h) or p.has(w)):
            if num_spatial != 2:
                raise layer.error(f"{h}/{w} are for 2-d convolution only")
            if p.has(list_name):
                raise layer.error(f"give either {list_name} or {h}/{w}, not both")
            if name == "kernel" and not (p.has(h) and p.has(w)):
                raise layer.error("kernel_h and kernel_w are both required")
            return (int(getattr(p, h)), int(getattr(p, w)))
        values = [int(v) for v in getattr(p, list_name)]
        if not values:
            if default is None:
                raise layer.error("kernel_size (or kernel_h and kernel_w) is required")
            return (default,) * num_spatial
        if len(values) not in (1, num_spatial):
            raise layer.error(f"{list_name} must be given once or {num_spatial} times, "
                              f"got {len(values)} values")
        return tuple(values) * num_spatial if len(values) == 1 else tuple(values)

    geometry = ConvGeometry(per_axis("kernel", None), per_axis("stride", 1),
                            per_axis("pad", 0), per_axis("dilation", 1))
    if min(geometry.kernel) <= 0:
        raise layer.error(f"kernel dimensions must be positive, got {geometry.kernel}")
    if min(geometry.stride) <= 0:
        raise layer.error(f"stride dimensions must be positive, got {geometry.stride}")
    return geometry


class _ConvolutionBase(CaffeLayer):
    bottoms = (1, None)
    tops = (1, None)
    transposed = False

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        p = layer_param.convolution_param
        if len(layer_param.top) != len(bottom_shapes):
            raise self.error(f"needs one top per bottom, got {len(bottom_shapes)} bottoms "
                             f"and {len(layer_param.top)} tops")
        shape = tuple(bottom_shapes[0])
        if any(tuple(s) != shape for s in bottom_shapes):
            raise self.error(f"all bottoms must have the same shape, got {list(bottom_shapes)}")
        if self.canonical_axis(p.axis, len(shape)) != 1:
            raise self.error("only axis: 1 (channels after one batch axis) is supported")
        self.num_spatial = len(shape) - 2
        if self.num_spatial not in _CONV:
            raise self.error(f"{self.num_spatial} spatial axes are not supported (1 to 3)")
        self.geometry = conv_geometry(self, self.num_spatial)
        channels, num_output, group = shape[1], int(p.num_output), int(p.group)
        if num_output <= 0:
            raise self.error("num_output must be positive")
        if group <= 0 or channels % group or num_output % group:
            raise self.error(f"channels ({channels}) and num_output ({num_output}) must be "
                             f"multiples of group ({group})")
        self.channels, self.num_output, self.group = channels, num_output, group
        self.bias_term = bool(p.bias_term)
        out_ch, in_ch = (channels, num_output) if self.transposed else (num_output, channels)
        self.add_blob((out_ch, in_ch // group, *self.geometry.kernel), p.weight_filler)
        if self.bias_term:
            self.add_blob((num_output,), p.bias_filler)

    def top_shapes(self, bottom_shapes):
        return [self.output_shape(tuple(s)) for s in bottom_shapes]

    def output_shape(self, shape: Shape) -> Shape:
        raise NotImplementedError

    def multiply_adds(self, shape: Shape) -> int:
        """Caffe's multiply-adds on a bottom of this shape (every output, every filter)."""
        kernel = math.prod(self.geometry.kernel)
        if self.transposed:  # every input pixel scatters through every filter
            return (shape[0] * math.prod(shape[2:]) * self.channels
                    * (self.num_output // self.group) * kernel)
        return (shape[0] * math.prod(self.output_shape(shape)[2:]) * self.num_output
                * (self.channels // self.group) * kernel)

    def extra_repr(self):
        g = self.geometry
        return (f"{super().extra_repr()}, {self.channels}->{self.num_output}, kernel={g.kernel}, "
                f"stride={g.stride}, pad={g.pad}, dilation={g.dilation}, group={self.group}")


@register("Convolution")
class Convolution(_ConvolutionBase):
    """Caffe's Convolution layer (see the module docstring)."""

    def output_shape(self, shape):
        g = self.geometry
        spatial = tuple((size + 2 * p - e) // s + 1
                        for size, p, e, s in zip(shape[2:], g.pad, g.extent, g.stride))
        if min(spatial) <= 0:
            raise self.error(f"input {shape} is too small for kernel {g.kernel} with pad {g.pad}")
        return (shape[0], self.num_output, *spatial)

    def forward_banded(self, bottoms, bands):
        if self.num_spatial != 2 or len(bottoms) != 1 or bottoms[0].device.type != "cpu":
            return super().forward_banded(bottoms, bands)  # plain operators off the CPU
        x = bottoms[0]
        key = (tuple(x.shape), bands[0])
        planned = self._band_plans.get(key)
        if planned is None:
            planned = self._plan_band(key[0], bands[0])
            if len(self._band_plans) >= 64:  # a net fed ever new sizes: keep the newest
                self._band_plans.pop(next(iter(self._band_plans)))
            self._band_plans[key] = planned
        plan, banded = planned
        if plan is None:
            return super().forward_banded(bottoms, bands)
        if not banded:
            # every output convolved, in the plain (or GEMM) way; the top still carries the
            # band, whose diff the plain backward keeps exact in the sense ``banded`` needs:
            # band outputs read only the input's band, so their share of the weight gradient
            # and of the input band's summed gradient depend on the band's summed diff alone
            return self(x), [plan.out]
        bias = self.bias if self.bias_term else None
        return (banded_conv2d(x, self.weight, bias, bands[0], plan, self.geometry, self.group),), [plan.out]

    @property
    def _band_plans(self) -> dict:
        plans = self.__dict__.get("_band_plan_cache")
        if plans is None:
            plans = self.__dict__["_band_plan_cache"] = {}
        return plans

    def _plan_band(self, shape, band):
        """``(ConvBand or None, whether to convolve only its explicit part)`` for one input
        shape and band: the geometry (``constant_band.conv_band``) and the cost model's
        decision (``band_pays``), made once and kept."""
        g = self.geometry
        plan = conv_band(band, tuple(shape[2:]), self.output_shape(shape)[2:], g.extent,
                         g.stride, g.pad)
        if plan is None:
            return None, False
        return plan, band_pays(plan, self.channels // self.group, self.num_output,
                               math.prod(g.kernel), g.extent, g.stride)

    def forward(self, *bottoms):
        g = self.geometry
        conv = _CONV[self.num_spatial]
        bias = self.bias if self.bias_term else None
        gemm = not plain()  # one GEMM per image: a tracer would freeze the batch size
        if gemm and self.num_spatial == 2:  # the faster layout for a small input (conv_layout)
            conv = conv_layout.conv2d
        return tuple(conv2d_as_gemm(x, self.weight, bias, g) if gemm and self.suits_gemm(x)
                     else conv(x, self.weight, bias, g.stride, g.pad, g.dilation, self.group)
                     for x in bottoms)

    def suits_gemm(self, x) -> bool:
        """Whether Caffe's im2col + GEMM beats a direct convolution here: few outputs, long sums.

        That is FCN's fc6 (7×7×512 per output, 16×16 outputs at 500×500) and fc7: MKL's GEMM
        is faster there and sums in an order closer to Caffe's (fc6 off float64 by 5e-7 of
        its range, against 5e-6 for the direct convolution). In inference the product is
        oneDNN's inner product (``conv2d_as_gemm``).
        """
        if (self.num_spatial != 2 or self.group != 1 or not self.weight.is_contiguous()
                or x.device.type != "cpu"):
            return False
        out_pixels = math.prod(self.output_shape(tuple(x.shape))[2:])
        return out_pixels <= GEMM_MAX_OUTPUT_PIXELS and self.weight[0].numel() >= GEMM_MIN_REDUCTION

"""Pooling (Caffe's ``PoolingLayer``): MAX and AVE over 4-d blobs, Caffe's sizes and divisors.

Caffe-specific behaviour reproduced here, all from ``pooling_layer.cpp``:

* output size: ``ceil((in + 2·pad - k) / stride) + 1`` (``round_mode: CEIL``, the default) or
  ``floor(…) + 1`` (``FLOOR``); then, *only when pad > 0*, the last window must start strictly
  inside the image plus its top/left pad — if ``(out - 1)·stride >= in + pad`` it is dropped;
* MAX windows are clipped to the image (padding never wins); ties go to the first element in
  row-major order, which is also where the gradient goes;
* AVE sums the clipped window but divides by the window size clipped to ``in + pad`` — padding
  counts on the top/left and up to ``pad`` on the bottom/right, but not the extra ceil-mode
  overhang (neither PyTorch's ``count_include_pad=True`` nor ``False``);
* ``global_pooling`` uses the whole plane (kernel = H×W, pad 0, stride 1).

A second top (MAX only) is Caffe's argmax mask: the index ``h·W + w`` within each plane, as float.

Beyond Caffe, two fields of the project's schema (``reproduce.caffe.proto_tables``), which
``reproduce.rarefy`` sets (CVPR 2015 Sec. 3.2) and Caffe cannot read (the writers refuse
them):

* ``dilation`` ``d`` (on the poolings after a rarefied layer): a window of kernel ``k`` reads
  every ``d``-th element over an extent ``d·(k - 1) + 1``; MAX takes the taps inside the
  image, AVE sums them and divides by the taps before ``in + pad`` (with ``d = 1`` exactly
  Caffe's divisor);
* ``rarefaction`` ``f`` (on a rarefied ceil-mode pooling): its stride ``s`` stands for a
  coarse stride ``s·f``.

A pooling with either is read as the coarse pooling (kernel ``k``, pad ``pad/d``, stride
``s·f``) of the ``d`` interleaved sub-grids ``x[c::d]`` of its input, and it has exactly the
outputs those coarse poolings have under Caffe's size rule (ceil or floor, and the drop
rule): output ``m`` exists when the coarse window it is — starting at ``⌊(m·s − pad)/d⌋`` on
sub-grid ``c = (m·s − pad) mod d``, of length ``⌈(in − c)/d⌉`` — would. That is what makes a
rarefied net produce every coarse output of every shift (shift-and-stitch), including the
last, overhanging ceil-mode windows; with ``d = f = 1`` it is the rule above.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..constant_band import pool_band
from ..plain import plain
from .base import CaffeLayer
from .registry import register


def pooled_size(size: int, kernel: int, stride: int, pad: int, round_mode: str = "CEIL",
                dilation: int = 1) -> int:
    """Caffe's pooled output size along one axis (see the module docstring)."""
    span = (size + 2 * pad - (dilation * (kernel - 1) + 1)) / stride
    out = (math.ceil(span) if round_mode == "CEIL" else math.floor(span)) + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def interleaved_pooled_size(size: int, kernel: int, stride: int, pad: int, round_mode: str,
                            dilation: int, rarefaction: int) -> int:
    """The output size of a dilated or rarefied pooling along one axis: the outputs of the
    coarse poolings of its interleaved sub-grids (see the module docstring)."""
    coarse_pad, coarse_stride = pad // dilation, stride * rarefaction
    slack = coarse_stride - 1 if round_mode == "CEIL" else 0
    out = 0
    while True:
        start = out * stride - pad
        grid = start % dilation
        first = (start - grid) // dilation                    # on sub-grid `grid`, coarse units
        length = -(-(size - grid) // dilation)                # elements of that sub-grid
        if first > length + coarse_pad - kernel + slack or (coarse_pad and first >= length):
            return out
        out += 1


def ave_divisors(size: int, out: int, kernel: int, stride: int, pad: int,
                 dilation: int = 1, device=None) -> torch.Tensor:
    """Caffe's AVE pool_size factor along one axis: the window's taps before ``size + pad``
    (with dilation 1, the window clipped to ``size + pad``, as ``pooling_layer.cpp``)."""
    starts = torch.arange(out, device=device) * stride - pad
    # taps start + d·t, t < kernel, that lie before size + pad: ceil((size + pad - start) / d)
    taps = torch.clamp(torch.div(size + pad - starts + dilation - 1, dilation, rounding_mode="floor"),
                       max=kernel)
    return taps.to(torch.float32)


def max_by_taps(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
                out: tuple[int, int]) -> torch.Tensor:
    """MAX pooling without padding as element-wise maxima of strided views, one axis at a time.

    Output ``o`` of an axis is the maximum of taps ``o·s + t`` (``t < k``) that lie inside the
    plane (Caffe clips the last ceil-mode window to the image; with no pad and ``k >= s``, the
    caller's condition, every window starts inside). The same maxima as ``max_pool2d`` (NaN propagates in both), 5–15× faster on the
    CPU for FCN's 2×2 pools in either layout, since ATen's pooling kernel also writes indices;
    used where no gradient is wanted (the argmax routing of backward needs the indices).
    """
    for axis, (k, s, n) in enumerate(zip(kernel, stride, out), start=2):
        size = x.shape[axis]
        result = x.narrow(axis, 0, s * (n - 1) + 1)[(slice(None),) * axis + (slice(None, None, s),)]
        result = result.clone(memory_format=_memory_format(x))
        for t in range(1, k):
            valid = min(n, -(-(size - t) // s))  # windows whose tap t is inside the plane
            if valid <= 0:
                break
            tap = x.narrow(axis, t, s * (valid - 1) + 1)[(slice(None),) * axis + (slice(None, None, s),)]
            head = result.narrow(axis, 0, valid)
            torch.maximum(head, tap, out=head)
        x = result
    return x


def _memory_format(x: torch.Tensor):
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


@register("Pooling")
class Pooling(CaffeLayer):
    """Caffe's Pooling layer (see the module docstring)."""

    tops = (1, 2)

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        p = layer_param.pooling_param
        self.method = p.pool
        if self.method not in ("MAX", "AVE"):
            raise self.error(f"pool: {self.method} is not supported (MAX and AVE are)")
        if len(layer_param.top) > 1 and self.method != "MAX":
            raise self.error("only MAX pooling has a second (mask) top")
        self.global_pooling = bool(p.global_pooling)
        has_size = p.has("kernel_size")
        has_hw = p.has("kernel_h") and p.has("kernel_w")
        if self.global_pooling:
            if has_size or p.has("kernel_h") or p.has("kernel_w"):
                raise self.error("with global_pooling: true the filter size cannot be specified")
            self.kernel = None
        else:
            if has_size == has_hw:
                raise self.error("give kernel_size, or both kernel_h and kernel_w (not both forms)")
            self.kernel = ((int(p.kernel_size),) * 2 if has_size
                           else (int(p.kernel_h), int(p.kernel_w)))
            if min(self.kernel) <= 0:
                raise self.error("filter dimensions cannot be zero")
        self.pad = self._pair(p, "pad", default=0)
        self.stride = self._pair(p, "stride", default=1)
        if min(self.stride) <= 0:
            raise self.error("stride must be positive")
        if self.global_pooling and (self.pad != (0, 0) or self.stride != (1, 1)):
            raise self.error("with global_pooling: true only pad = 0 and stride = 1")
        if self.kernel is not None and (self.pad[0] >= self.kernel[0]
                                        or self.pad[1] >= self.kernel[1]):
            if int(p.dilation) == 1:
                raise self.error(f"pad {self.pad} must be smaller than the kernel {self.kernel}")
            extent = tuple(int(p.dilation) * (k - 1) + 1 for k in self.kernel)
            if self.pad[0] >= extent[0] or self.pad[1] >= extent[1]:
                raise self.error(f"pad {self.pad} must be smaller than the dilated kernel's "
                                 f"extent {extent}")
        self.dilation, self.rarefaction = int(p.dilation), int(p.rarefaction)
        if self.dilation <= 0 or self.rarefaction <= 0:
            raise self.error("dilation and rarefaction must be positive")
        if self.global_pooling and (self.dilation != 1 or self.rarefaction != 1):
            raise self.error("with global_pooling: true dilation and rarefaction must be 1")
        if self.pad[0] % self.dilation or self.pad[1] % self.dilation:
            raise self.error(f"pad {self.pad} must be a multiple of the dilation {self.dilation} "
                             f"(a dilated pooling pools sub-grids with pad / dilation)")
        self.round_mode = p.round_mode
        if len(bottom_shapes[0]) != 4:
            raise self.error(f"input must have 4 axes (num, channels, height, width), "
                             f"got {tuple(bottom_shapes[0])}")

    def _pair(self, p, name: str, default: int) -> tuple[int, int]:
        h, w = f"{name}_h", f"{name}_w"
        if p.has(h) or p.has(w):
            if p.has(name) or not (p.has(h) and p.has(w)):
                raise self.error(f"{name} is {name} OR {h} and {w}")
            return int(getattr(p, h)), int(getattr(p, w))
        return (int(getattr(p, name)),) * 2 if p.has(name) else (default, default)

    def _geometry(self, height: int, width: int):
        kernel = (height, width) if self.global_pooling else self.kernel
        if self.dilation == 1 and self.rarefaction == 1:
            out = tuple(pooled_size(size, k, s, p, self.round_mode)
                        for size, k, s, p in zip((height, width), kernel, self.stride, self.pad))
        else:
            out = tuple(interleaved_pooled_size(size, k, s, p, self.round_mode, self.dilation,
                                                self.rarefaction)
                        for size, k, s, p in zip((height, width), kernel, self.stride, self.pad))
        if min(out) <= 0:
            raise self.error(f"input {height}x{width} is too small for kernel {kernel}")
        return kernel, out

    def top_shapes(self, bottom_shapes):
        n, c, h, w = bottom_shapes[0]
        _, (oh, ow) = self._geometry(h, w)
        return [(n, c, oh, ow)] * len(self.layer_param.top)

    def forward(self, x):
        if plain():
            return self._forward_plain(x)
        if self.dilation != 1:
            return self._forward_dilated(x)
        height, width = x.shape[2:]
        kernel, (oh, ow) = self._geometry(height, width)
        (ph, pw), (sh, sw) = self.pad, self.stride
        if (self.method == "MAX" and len(self.layer_param.top) == 1 and (ph, pw) == (0, 0)
                and kernel[0] >= sh and kernel[1] >= sw and x.device.type == "cpu"
                and not (x.requires_grad and torch.is_grad_enabled())):
            return (max_by_taps(x, kernel, (sh, sw), (oh, ow)),)
        # pad top/left by pad; bottom/right far enough that every window lies inside
        pad_bottom = max(0, (oh - 1) * sh + kernel[0] - ph - height)
        pad_right = max(0, (ow - 1) * sw + kernel[1] - pw - width)
        if self.method == "MAX" and len(self.layer_param.top) == 1 and ph * 2 <= kernel[0] and pw * 2 <= kernel[1]:
            # torch's ceil mode drops a last window that starts in the bottom/right padding,
            # Caffe's rule too; the shape check keeps any case where the two rules part.
            top = F.max_pool2d(x, kernel, (sh, sw), (ph, pw), ceil_mode=True)
            if top.shape[2:] == (oh, ow):
                return (top,)
        fill = float("-inf") if self.method == "MAX" else 0.0
        padded = x
        if ph or pw or pad_bottom or pad_right:
            padded = F.pad(x, (pw, pad_right, ph, pad_bottom), value=fill)
        if self.method == "AVE":
            sums = F.avg_pool2d(padded, kernel, (sh, sw), divisor_override=1)[:, :, :oh, :ow]
            divisor = (ave_divisors(height, oh, kernel[0], sh, ph)[:, None]
                       * ave_divisors(width, ow, kernel[1], sw, pw)[None, :])
            return (sums / divisor.to(x.device),)
        if len(self.layer_param.top) == 1:
            return (F.max_pool2d(padded, kernel, (sh, sw))[:, :, :oh, :ow],)
        top, index = F.max_pool2d(padded, kernel, (sh, sw), return_indices=True)
        top, index = top[:, :, :oh, :ow], index[:, :, :oh, :ow]
        padded_width = padded.shape[3]
        row, col = index // padded_width - ph, index % padded_width - pw
        return top, (row * width + col).to(x.dtype)

    def _forward_plain(self, x):
        """The same windows from standard operators whose sizes follow from ``x``'s alone, so
        that a tracer records Caffe's arithmetic for every H×W (``reproduce.net.plain``).

        Global pooling is a max (the first one in row-major order) or mean over the plane.
        MAX without pad and with windows at least as long as the stride (FCN's pools) is
        torch's ceil mode, which is Caffe's rule exactly there. Otherwise the plane is padded by
        ``pad`` on the top/left and ``pad + stride - 1`` on the bottom/right — with -inf for
        MAX (padding never wins: Caffe clips MAX windows to the image), with 0 for AVE — and
        pooled in floor mode, which yields exactly Caffe's ``ceil((in + 2·pad - k)/stride) + 1``
        windows. Caffe then drops a last window that starts inside the bottom/right padding;
        that can only happen when ``pad > 0`` and ``kernel < pad + stride``, and only then is
        the result cut to Caffe's count, ``min(that, ceil((in + pad)/stride))`` — a symbolic
        ``min``, not a Python decision. AVE divides the zero-padded window sums by the sums
        of a mask that is one on the plane widened by ``pad`` on every side and zero on the
        ceil-mode overhang: Caffe's divisor, the window clipped to ``in + pad``.
        """
        if getattr(self, "dilation", 1) != 1 or getattr(self, "rarefaction", 1) != 1:
            # the project's shift-and-stitch extension: its sizes are not formulated here
            raise self.error("a dilated or rarefied pooling has no plain (traceable) "
                             "formulation; export or compile the coarse net")
        tops = len(self.layer_param.top)
        if self.global_pooling:
            if self.method == "AVE":
                return (x.mean(dim=(2, 3), keepdim=True),)
            top, index = x.flatten(2).max(dim=2, keepdim=True)  # the first maximum, row-major
            top = top.unsqueeze(3)
            return (top,) if tops == 1 else (top, index.unsqueeze(3).to(x.dtype))
        height, width = x.shape[2], x.shape[3]
        kernel = self.kernel
        (ph, pw), (sh, sw) = self.pad, self.stride
        extra = (ph + sh - 1, pw + sw - 1)
        cut = [None, None]
        for axis, (size, k, p, s) in enumerate(zip((height, width), kernel, self.pad,
                                                   self.stride)):
            if p > 0 and k < p + s:
                windows = (size + 2 * p - k + s - 1) // s + 1
                cut[axis] = torch.sym_min(windows, (size + p + s - 1) // s)
        if (self.method == "MAX" and tops == 1 and (ph, pw) == (0, 0)
                and kernel[0] >= sh and kernel[1] >= sw):
            # FCN's pools: with no pad and windows at least as long as the stride, torch's
            # (and ONNX's) ceil mode is Caffe's rule exactly — its "last window must start
            # inside" check can never fire — and saves the padded copy
            return (F.max_pool2d(x, kernel, (sh, sw), ceil_mode=True),)
        if self.method == "MAX":
            padded = F.pad(x, (pw, extra[1], ph, extra[0]), value=float("-inf"))
            if tops == 1:
                return (self._cut(F.max_pool2d(padded, kernel, (sh, sw)), cut),)
            top, index = F.max_pool2d(padded, kernel, (sh, sw), return_indices=True)
            top, index = self._cut(top, cut), self._cut(index, cut)
            # the widths as tensors: index arithmetic stays tensor arithmetic when they are
            # symbolic (what the ONNX translation needs)
            padded_width, plane_width = (index.new_full((), w) for w in (padded.shape[3], width))
            row = torch.div(index, padded_width, rounding_mode="floor")
            col = index - row * padded_width
            return top, ((row - ph) * plane_width + col - pw).to(x.dtype)
        channels = x.shape[1]
        ones = x.new_ones((channels, 1, *kernel))
        sums = F.conv2d(F.pad(x, (pw, extra[1], ph, extra[0])), ones, stride=(sh, sw),
                        groups=channels)
        mask = F.pad(F.pad(x.new_ones((1, 1, height, width)), (pw, pw, ph, ph), value=1.0),
                     (0, sw - 1, 0, sh - 1))
        divisor = F.conv2d(mask, ones[:1], stride=(sh, sw))
        return (self._cut(sums / divisor, cut),)

    @staticmethod
    def _cut(top, cut):
        if cut[0] is not None:
            top = top[:, :, :cut[0]]
        if cut[1] is not None:
            top = top[:, :, :, :cut[1]]
        return top
    def _forward_dilated(self, x):
        """Pooling with ``dilation`` > 1 (the project's extension, see the module docstring)."""
        height, width = x.shape[2:]
        kernel, (oh, ow) = self._geometry(height, width)
        (ph, pw), (sh, sw), d = self.pad, self.stride, self.dilation
        extent = [d * (k - 1) + 1 for k in kernel]
        pad_bottom = max(0, (oh - 1) * sh + extent[0] - ph - height)
        pad_right = max(0, (ow - 1) * sw + extent[1] - pw - width)
        fill = float("-inf") if self.method == "MAX" else 0.0
        padded = F.pad(x, (pw, pad_right, ph, pad_bottom), value=fill)
        if self.method == "MAX":
            if len(self.layer_param.top) == 1:
                return (F.max_pool2d(padded, kernel, (sh, sw), dilation=d)[:, :, :oh, :ow],)
            top, index = F.max_pool2d(padded, kernel, (sh, sw), dilation=d, return_indices=True)
            top, index = top[:, :, :oh, :ow], index[:, :, :oh, :ow]
            padded_width = padded.shape[3]
            row, col = index // padded_width - ph, index % padded_width - pw
            return top, (row * width + col).to(x.dtype)
        # AVE: the sum of the k_h·k_w taps, one strided slice each, then Caffe's divisor
        sums = None
        for i in range(kernel[0]):
            for j in range(kernel[1]):
                tap = padded[:, :, i * d:i * d + (oh - 1) * sh + 1:sh, j * d:j * d + (ow - 1) * sw + 1:sw]
                sums = tap if sums is None else sums + tap
        divisor = (ave_divisors(height, oh, kernel[0], sh, ph, d, x.device)[:, None]
                   * ave_divisors(width, ow, kernel[1], sw, pw, d, x.device)[None, :])
        return (sums / divisor.to(x.dtype),)

    def forward_banded(self, bottoms, bands):
        tops = self(*bottoms)
        if bands[0] is None:
            return tops, [None] * len(tops)
        height, width = bottoms[0].shape[2:]
        kernel, out = self._geometry(height, width)
        # a dilated window is planned over its whole extent: constant only if every element
        # it spans is (a superset of its taps), so the band stays exact
        span = tuple(self.dilation * (k - 1) + 1 for k in kernel)
        band = pool_band(bands[0], (height, width), out, span, self.stride, self.pad,
                         clipped_is_explicit=self.method == "AVE")
        return tops, [band] + [None] * (len(tops) - 1)  # the argmax mask is not constant

    def extra_repr(self):
        kernel = "global" if self.global_pooling else self.kernel
        return (f"{super().extra_repr()}, {self.method}, kernel={kernel}, stride={self.stride}, "
                f"pad={self.pad}, round_mode={self.round_mode}"
                + (f", dilation={self.dilation}" if self.dilation != 1 else "")
                + (f", rarefaction={self.rarefaction}" if self.rarefaction != 1 else ""))

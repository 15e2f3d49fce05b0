"""Im2col (Caffe's ``Im2colLayer``): the convolution's column buffer as a blob.

Reads ``convolution_param`` (kernel, stride, pad, dilation, in either form) and writes, for a
``(num, channels, H, W)`` bottom, ``(num, channels·kh·kw, out_h, out_w)`` with Caffe's
ordering — channel, then kernel row, then kernel column — and zeros where a window reaches
into the padding. Backward is col2im: each column entry's diff added back to its pixel.
Two spatial axes after the channel axis 1, as Caffe's 2-d path (its N-d path orders the
columns the same way; other axis layouts are refused here).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..plain import plain

from .base import CaffeLayer
from .convolution import conv_geometry
from .registry import register


@register("Im2col")
class Im2col(CaffeLayer):
    """Caffe's Im2col layer (see the module docstring)."""

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        p = layer_param.convolution_param
        shape = tuple(bottom_shapes[0])
        if self.canonical_axis(int(p.axis), len(shape)) != 1 or len(shape) != 4:
            raise self.error(f"supports a (num, channels, height, width) bottom with axis: 1, "
                             f"got {shape} with axis {p.axis}")
        self.geometry = conv_geometry(self, 2)
        self.top_shapes(bottom_shapes)

    def top_shapes(self, bottom_shapes):
        n, c, h, w = bottom_shapes[0]
        g = self.geometry
        out = [(size + 2 * p - e) // s + 1
               for size, p, e, s in zip((h, w), g.pad, g.extent, g.stride)]
        if min(out) <= 0:
            raise self.error(f"input {h}x{w} is smaller than the kernel's extent {g.extent}")
        return [(n, c * g.kernel[0] * g.kernel[1], out[0], out[1])]

    def forward(self, x):
        g = self.geometry
        if plain():
            # traced: a convolution with one-hot kernels gives the same columns with every
            # size symbolic (unfold's flat L axis would have to be split again)
            n, c = x.shape[:2]
            k = g.kernel[0] * g.kernel[1]
            eye = torch.eye(k, dtype=x.dtype, device=x.device).reshape(k, 1, *g.kernel)
            cols = F.conv2d(x.flatten(0, 1).unsqueeze(1), eye, stride=g.stride, padding=g.pad,
                            dilation=g.dilation)
            return (cols.unflatten(0, (n, c)).flatten(1, 2),)
        columns = F.unfold(x, g.kernel, dilation=g.dilation, padding=g.pad, stride=g.stride)
        n, c, h, w = x.shape
        out_h = (h + 2 * g.pad[0] - g.extent[0]) // g.stride[0] + 1
        out_w = (w + 2 * g.pad[1] - g.extent[1]) // g.stride[1] + 1
        return (columns.reshape(n, columns.shape[1], out_h, out_w),)

"""SPP (Caffe's ``SPPLayer``): spatial pyramid pooling over ``pyramid_height`` levels.

Level ``i`` pools the plane into ``2^i × 2^i`` bins with Caffe's own Pooling layer, its
geometry computed from the input size as Caffe's ``GetPoolingParam`` does: ``kernel =
ceil(size / bins)``, ``stride = kernel``, ``pad = (kernel·bins − size + 1) / 2`` (integer
division) — so Caffe's ceil-mode rounding and pad rules apply. Each level is flattened and the
levels concatenated along axis 1: ``(num, channels·Σ 4^i)``. With ``pyramid_height: 1`` the
top is the single pooling's ``(num, channels, 1, 1)``, unflattened, as in Caffe. The pooling
geometry is rebuilt when the plane's size changes (Caffe's Reshape).
"""
from __future__ import annotations

import math

import torch

from reproduce.caffe.schema import Message

from .base import CaffeLayer
from .pooling import Pooling
from .registry import register


def level_geometry(level: int, size: int) -> tuple[int, int]:
    """(kernel, pad) of pyramid ``level`` along an axis of ``size``, as ``GetPoolingParam``."""
    bins = 2 ** level
    kernel = math.ceil(size / bins)
    return kernel, (kernel * bins - size + 1) // 2


@register("SPP")
class SPP(CaffeLayer):
    """Caffe's SPP layer (see the module docstring)."""

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        p = layer_param.spp_param
        self.pyramid_height = int(p.pyramid_height)
        if self.pyramid_height < 1:
            raise self.error("pyramid_height must be at least 1")
        self.method = p.pool
        if self.method not in ("MAX", "AVE"):
            raise self.error(f"pool: {self.method} is not supported (MAX and AVE are)")
        if len(bottom_shapes[0]) != 4:
            raise self.error(f"input must have 4 axes, got {tuple(bottom_shapes[0])}")
        self._levels: dict[tuple[int, int], list[Pooling]] = {}
        self.top_shapes(bottom_shapes)

    def _poolings(self, height: int, width: int, channels: int) -> list[Pooling]:
        if min(height, width) <= 0:
            raise self.error("input dimensions cannot be zero")
        if (height, width) not in self._levels:
            layers = []
            for level in range(self.pyramid_height):
                (kh, ph), (kw, pw) = level_geometry(level, height), level_geometry(level, width)
                param = Message("LayerParameter", name=f"{self.layer_name} level {level}",
                                type="Pooling", top=["pooled"])
                pool = param.mutable("pooling_param")
                pool.pool = self.method
                pool.kernel_h, pool.kernel_w, pool.stride_h, pool.stride_w = kh, kw, kh, kw
                pool.pad_h, pool.pad_w = ph, pw
                layers.append(Pooling(param, [(1, channels, height, width)]))
            self._levels[(height, width)] = layers
        return self._levels[(height, width)]

    def top_shapes(self, bottom_shapes):
        n, c, h, w = bottom_shapes[0]
        pools = self._poolings(h, w, c)
        shapes = [pool.top_shapes([(n, c, h, w)])[0] for pool in pools]
        if self.pyramid_height == 1:
            return [shapes[0]]
        return [(n, sum(math.prod(s[1:]) for s in shapes))]

    def forward(self, x):
        pools = self._poolings(int(x.shape[2]), int(x.shape[3]), int(x.shape[1]))
        if self.pyramid_height == 1:
            return pools[0](x)
        return (torch.cat([pool(x)[0].flatten(1) for pool in pools], dim=1),)

"""Tile (Caffe's ``TileLayer``): repeat the blob ``tiles`` times along ``axis``.

The copies follow each other along the axis (``[a, b, a, b]``); backward sums the copies' diffs.
"""
from __future__ import annotations

from .base import CaffeLayer
from .registry import register


@register("Tile")
class Tile(CaffeLayer):
    """Caffe's Tile layer."""

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        p = layer_param.tile_param
        self.axis = self.canonical_axis(int(p.axis), len(bottom_shapes[0]))
        if not p.has("tiles"):
            raise self.error("number of tiles must be specified (tile_param.tiles)")
        self.tiles = int(p.tiles)
        if self.tiles <= 0:
            raise self.error(f"number of tiles must be positive, got {self.tiles}")

    def top_shapes(self, bottom_shapes):
        shape = list(bottom_shapes[0])
        shape[self.axis] *= self.tiles
        return [tuple(shape)]

    def forward(self, x):
        repeats = [1] * x.dim()
        repeats[self.axis] = self.tiles
        return (x.repeat(*repeats),)

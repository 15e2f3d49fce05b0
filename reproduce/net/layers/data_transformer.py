"""Caffe's ``DataTransformer`` (``data_transformer.cpp``): a data layer's ``transform_param``.

For one item ``x`` (``C×H×W``, uint8 or float): with ``crop_size`` a ``crop×crop`` window — at a
random offset in TRAIN (``Rand(H - crop + 1)`` rows, then ``Rand(W - crop + 1)`` columns), centred
(``(H - crop) / 2``) in TEST; with ``mirror`` a coin (``Rand(2)``, drawn first) flips it left to
right; then ``(x - mean) * scale``, the mean being ``mean_file`` (a ``C×H×W`` binaryproto, indexed
at the uncropped position, so it must have the item's full size) or ``mean_value`` (one value for
every channel, or one per channel) — not both ("Cannot specify mean_file and mean_value at the
same time"). The random draws come from the generator the layer gives (``reproduce``'s seeded
generators, not Caffe's Boost one, so crops and flips are not Caffe's own choices).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from reproduce.caffe.datum import read_mean_file


class DataTransformer:
    """One layer's ``transform_param`` (see the module docstring)."""

    def __init__(self, param, phase: str, error: Callable[[str], Exception], where: str):
        self.error = error
        self.scale = np.float32(param.scale)
        self.mirror = bool(param.mirror)
        self.crop = int(param.crop_size)
        self.phase = phase
        self.force_color, self.force_gray = bool(param.force_color), bool(param.force_gray)
        if self.force_color and self.force_gray:
            raise error("cannot force_color and force_gray at the same time")
        self.mean_file = None
        self.mean_values = [np.float32(v) for v in param.mean_value]
        if param.has("mean_file"):
            if self.mean_values:
                raise error("Cannot specify mean_file and mean_value at the same time")
            self.mean_file = read_mean_file(param.mean_file, where)

    def shape(self, item_shape) -> tuple[int, int, int]:
        """``InferBlobShape``: the transformed shape of an item of ``item_shape`` (C, H, W)."""
        c, h, w = item_shape
        if self.crop:
            if h < self.crop or w < self.crop:
                raise self.error(f"crop_size {self.crop} is larger than the item ({h}×{w})")
            return c, self.crop, self.crop
        return c, h, w

    def __call__(self, x: np.ndarray, generator: torch.Generator) -> np.ndarray:
        c, h, w = x.shape
        out_c, out_h, out_w = self.shape(x.shape)
        flip = self.mirror and _rand(2, generator) == 1
        if self.crop:
            if self.phase == "TRAIN":
                h_off, w_off = _rand(h - self.crop + 1, generator), _rand(w - self.crop + 1, generator)
            else:
                h_off, w_off = (h - self.crop) // 2, (w - self.crop) // 2
        else:
            h_off = w_off = 0
        values = x.astype(np.float32)
        if self.mean_file is not None:
            if self.mean_file.shape != (c, h, w):
                raise self.error(f"mean_file shape {self.mean_file.shape} differs from the item's "
                                 f"{(c, h, w)}")
            values = values - self.mean_file
        elif self.mean_values:
            if len(self.mean_values) not in (1, c):
                raise self.error(f"Specify either 1 mean_value or as many as channels: {c}")
            mean = np.asarray(self.mean_values * (c if len(self.mean_values) == 1 else 1), np.float32)
            values = values - mean[:, None, None]
        values = values[:, h_off:h_off + out_h, w_off:w_off + out_w]
        if flip:
            values = values[:, :, ::-1]
        return np.ascontiguousarray(values * self.scale, dtype=np.float32)


def _rand(n: int, generator: torch.Generator) -> int:
    """Caffe's ``Rand(n)``: uniform in [0, n)."""
    return int(torch.randint(n, (), generator=generator))

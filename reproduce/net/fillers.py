"""Caffe's weight fillers (``include/caffe/filler.hpp``) on torch tensors.

``fill(filler_param, shape, generator)`` returns a float32 tensor of ``shape`` filled the way
Caffe's ``GetFiller(param)->Fill(blob)`` would, drawing from the torch RNG (``generator`` or
the global one — seeded by the caller). The definitions are Caffe's, including its quirks:

* ``fan_in = count / shape[0]`` and ``fan_out = count / shape[1]`` of the *parameter blob*
  (so for a Deconvolution weight, laid out ``(C_in, C_out/group, k, k)``, "fan in" is
  ``C_out/group·k·k``); ``variance_norm`` picks fan_in, fan_out or their mean;
* xavier is uniform on ``±sqrt(3/n)``, msra is normal with ``std = sqrt(2/n)``;
* gaussian with ``sparse >= 0`` keeps each weight with probability ``sparse / shape[0]``;
* bilinear needs a 4-d blob with square kernels and computes, in float32,
  ``(1 - |x/f - c|)·(1 - |y/f - c|)`` with ``f = ceil(k/2)``, ``c = (k - 1)/(2f)``;
* every filler but gaussian refuses ``sparse != -1``; an unknown type is an error.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from reproduce.caffe.schema import Message


MAX_BLOB_COUNT = 2**31 - 1
# the numbers each filler draws with: a nan or inf among them would fill the blob with nan
_NUMBERS = {"constant": ("value",), "uniform": ("min", "max"), "gaussian": ("mean", "std")}


class FillerError(ValueError):
    """A filler specification Caffe would refuse (unknown type, bad shape, bad sparsity)."""


def fill(filler: Message, shape: Sequence[int], generator: torch.Generator | None = None,
         *, owner: str = "?") -> torch.Tensor:
    """A new float32 tensor of ``shape`` filled per ``filler`` (a FillerParameter).

    ``owner`` names the layer in error messages.
    """
    shape = tuple(int(d) for d in shape)
    kind = filler.type
    count = math.prod(shape)
    if kind not in _FILLERS:
        raise FillerError(f"layer {owner!r}: unknown filler type {kind!r} "
                          f"(known: {', '.join(sorted(_FILLERS))})")
    if count == 0:  # Caffe: CHECK(blob->count())
        raise FillerError(f"layer {owner!r}: cannot fill an empty blob of shape {shape}")
    if count > MAX_BLOB_COUNT:  # Caffe: Blob::Reshape CHECK_LE(count_, INT_MAX) "blob size exceeds INT_MAX"
        raise FillerError(f"layer {owner!r}: a parameter blob of shape {'×'.join(map(str, shape))} holds "
                          f"{count:,} values, more than Caffe's blob limit of 2^31 - 1 (blob size exceeds INT_MAX)")
    for name in _NUMBERS.get(kind, ()):
        value = float(getattr(filler, name))
        if not math.isfinite(value):   # Caffe's random generators CHECK their arguments; nan gives nan weights
            raise FillerError(f"layer {owner!r}: {kind} filler {name} is {value}, not a finite number")
    if kind != "gaussian" and filler.sparse != -1:
        raise FillerError(f"layer {owner!r}: sparsity not supported by the {kind!r} filler")
    return _FILLERS[kind](filler, shape, generator, owner)


def _constant(filler, shape, generator, owner):
    return torch.full(shape, float(np.float32(filler.value)), dtype=torch.float32)


def _uniform(filler, shape, generator, owner):
    low, high = float(np.float32(filler.min)), float(np.float32(filler.max))
    return torch.empty(shape, dtype=torch.float32).uniform_(low, high, generator=generator)


def _gaussian(filler, shape, generator, owner):
    data = torch.empty(shape, dtype=torch.float32).normal_(
        float(np.float32(filler.mean)), float(np.float32(filler.std)), generator=generator)
    sparse = filler.sparse
    if sparse < -1:
        raise FillerError(f"layer {owner!r}: gaussian filler sparse must be >= -1, got {sparse}")
    if sparse >= 0:
        if len(shape) < 1:
            raise FillerError(f"layer {owner!r}: sparse gaussian filler needs a blob with axes")
        keep_probability = np.float32(sparse) / np.float32(shape[0])
        mask = torch.bernoulli(torch.full(shape, float(keep_probability)), generator=generator)
        data *= mask
    return data


def _positive_unitball(filler, shape, generator, owner):
    data = torch.rand(shape, dtype=torch.float32, generator=generator)
    rows = data.reshape(shape[0], -1)
    return (rows / rows.sum(dim=1, keepdim=True)).reshape(shape)


def fans(shape: Sequence[int]) -> tuple[int, int]:
    """Caffe's (fan_in, fan_out) of a parameter blob: count/shape[0], count/shape[1]."""
    count = math.prod(shape)
    fan_in = count // shape[0]
    fan_out = count // shape[1] if len(shape) > 1 else count
    return fan_in, fan_out


def _variance_n(filler: Message, shape) -> float:
    fan_in, fan_out = fans(shape)
    norm = filler.variance_norm
    if norm == "AVERAGE":
        return float(np.float32(fan_in + fan_out) / np.float32(2))
    if norm == "FAN_OUT":
        return float(fan_out)
    return float(fan_in)


def _xavier(filler, shape, generator, owner):
    scale = float(np.sqrt(np.float32(3) / np.float32(_variance_n(filler, shape))))
    return torch.empty(shape, dtype=torch.float32).uniform_(-scale, scale, generator=generator)


def _msra(filler, shape, generator, owner):
    std = float(np.sqrt(np.float32(2) / np.float32(_variance_n(filler, shape))))
    return torch.empty(shape, dtype=torch.float32).normal_(0.0, std, generator=generator)


def bilinear_kernel(size: int) -> np.ndarray:
    """Caffe's BilinearFiller kernel for a ``size``×``size`` filter, computed in float32."""
    f = math.ceil(size / 2.0)
    c = np.float32((size - 1) / (2.0 * f))
    coords = np.arange(size, dtype=np.float32)
    weights_1d = np.float32(1) - np.abs(coords / np.float32(f) - c)
    return (weights_1d[:, None] * weights_1d[None, :]).astype(np.float32)


def _bilinear(filler, shape, generator, owner):
    if len(shape) != 4:
        raise FillerError(f"layer {owner!r}: bilinear filler needs a 4-d blob, got shape {shape}")
    if shape[2] != shape[3]:
        raise FillerError(f"layer {owner!r}: bilinear filler needs a square filter, got {shape}")
    kernel = torch.from_numpy(bilinear_kernel(shape[3]))
    return kernel.expand(shape).clone()


_FILLERS = {
    "constant": _constant,
    "uniform": _uniform,
    "gaussian": _gaussian,
    "positive_unitball": _positive_unitball,
    "xavier": _xavier,
    "msra": _msra,
    "bilinear": _bilinear,
}

"""How much memory a forward needs, how much the machine has, and tiles when it has too little.

``forward_bytes(net, shapes)`` follows the net's own plan with Caffe's shape inference (no
tensor is made): each step allocates its tops while its bottoms are still held, and with
``keep_blobs = False`` each blob is freed after its last consumer, as ``Net.forward`` does
(the inputs stay: their caller holds them); the peak of the live float32 blobs is the estimate (convolution workspaces and the weights
themselves are not in it). ``available_bytes(device)`` is what the device can still give:
``MemAvailable`` of ``/proc/meminfo`` (capped by a cgroup's memory limit) on the CPU,
``torch.cuda.mem_get_info`` on a GPU; None where neither can be read.

``tiles(height, width, tile, margin)`` cuts an image into cores of ``tile`` pixels, each run
with ``margin`` pixels of context on every side (clipped at the image's border). Core and
window origins are multiples of ``ALIGN`` (32, the FCNs' output stride, so every pooling grid
of a window lies where the whole image's does) and the margin covers the scores' reach, so
the scores of each core are the whole image's: FCN-VGG16's and FCN-AlexNet's scores depend
on input pixels up to 221 px away (measured with an impulse; ``DEFAULT_MARGIN`` 256).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Sequence

__all__ = ["ALIGN", "DEFAULT_MARGIN", "MemoryEstimateError", "Tile", "available_bytes",
           "forward_bytes", "format_bytes", "pass_bytes", "segment", "tiles"]

ALIGN = 32
DEFAULT_MARGIN = 256
FLOAT_BYTES = 4


def forward_bytes(net, shapes: Mapping[str, Sequence[int]]) -> int:
    """Peak bytes of the blobs a forward holds at once (module docstring)."""
    import math

    sizes: dict[str, int] = {}
    blob_shapes = {name: tuple(shape) for name, shape in shapes.items()}
    live = 0
    for name, shape in blob_shapes.items():
        sizes[name] = math.prod(shape) * FLOAT_BYTES
        live += sizes[name]
    peak = live
    keep = set(net.outputs) | set(net.loss_blobs) | set(shapes)  # the caller holds the inputs
    for step in net._plan:
        tops = step.layer.top_shapes([blob_shapes[b] for b in step.bottoms])
        made = 0
        for top, shape in zip(step.tops, tops):
            blob_shapes[top] = tuple(shape)
            made += math.prod(shape) * FLOAT_BYTES
        peak = max(peak, live + made)
        for top, shape in zip(step.tops, tops):  # an in-place top replaces its bottom
            live -= sizes.pop(top, 0)
            sizes[top] = math.prod(shape) * FLOAT_BYTES
            live += sizes[top]
        if not net.keep_blobs:
            for name in step.release:
                if name not in keep:
                    live -= sizes.pop(name, 0)
    return peak


def available_bytes(device=None) -> int | None:
    """Bytes the device can still give (module docstring), or None if unknown;
    ``REPRODUCE_MEMORY_LIMIT`` (bytes), when set, is taken instead."""
    import torch

    override = os.environ.get("REPRODUCE_MEMORY_LIMIT")
    if override:
        return int(override)
    device = torch.device(device or "cpu")
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type != "cpu":
        return None
    available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    limit = _cgroup_headroom()
    if limit is not None:
        available = limit if available is None else min(available, limit)
    return available


def _cgroup_headroom() -> int | None:
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            text = Path(limit_file).read_text().strip()
            if text == "max":
                return None
            limit, usage = int(text), int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit >= 2**60:  # cgroup v1's "no limit"
            return None
        return max(0, limit - usage)
    return None


def format_bytes(count: float) -> str:
    return f"{count / 2**30:.1f} GiB" if count >= 2**30 else f"{count / 2**20:.0f} MiB"


@dataclass(frozen=True)
class Tile:
    """A window of the image to run (``window``: rows, columns) and the core it contributes
    (``core``: in image coordinates; ``inner``: the same pixels in window coordinates)."""

    window: tuple[slice, slice]
    core: tuple[slice, slice]
    inner: tuple[slice, slice]


def tiles(height: int, width: int, tile: int, margin: int = DEFAULT_MARGIN) -> Iterator[Tile]:
    """Aligned overlapping tiles covering a ``height``×``width`` image (module docstring)."""
    if tile <= 0 or tile % ALIGN or margin < 0 or margin % ALIGN:
        raise ValueError(f"tile ({tile}) and margin ({margin}) must be positive multiples of "
                         f"{ALIGN} px (the nets' output stride)")
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            core = (slice(top, min(top + tile, height)), slice(left, min(left + tile, width)))
            window = (slice(max(0, top - margin), min(height, top + tile + margin)),
                      slice(max(0, left - margin), min(width, left + tile + margin)))
            inner = tuple(slice(c.start - w.start, c.stop - w.start) for c, w in zip(core, window))
            yield Tile(window, core, inner)


class MemoryEstimateError(ValueError):
    """A forward that would need more memory than the device has."""


# what a pass holds beyond its blobs' own bytes: convolution workspaces and the allocator's slack,
# measured 0.88–1.64× on FCN-8s at 1000²–2000² (BENCHMARKS.md, "infer memory"); with the fixed
# margin the estimate covered every measured pass
ALLOCATOR_SLACK = 1.6
FIXED_SLACK = 128 << 20


def pass_bytes(blob_bytes: int, extra_bytes: int = 0) -> int:
    """What a segmentation pass holds at its peak, as an upper bound: the blobs' peak with the
    allocator's slack, plus ``extra_bytes`` (the image's own buffers), plus a fixed margin."""
    return int(blob_bytes * ALLOCATOR_SLACK) + int(extra_bytes) + FIXED_SLACK


def segment(net, array, predict, score_blob: str = "score", *, tile: int | None = None,
            margin: int = DEFAULT_MARGIN, what: str = "image", extra_bytes: int = 0):
    """``predict(net, array, score_blob)``'s label map of a C×H×W ``array``, refused in one
    line (``MemoryEstimateError``, with the estimate) when its forward would not fit, or
    assembled from aligned overlapping tiles when ``tile`` is given and the image is larger.

    Blobs are freed after their last use while it runs (``keep_blobs = False``) whenever the
    score blob is a net output, which halves an FCN's peak.
    """
    import numpy as np

    channels, height, width = array.shape
    shapes = lambda h, w: {net.inputs[0]: (1, channels, h, w)}  # noqa: E731
    device = next((p.device for p in net.parameters()), None)
    available = available_bytes(device)
    keep = net.keep_blobs
    if score_blob in net.outputs:
        net.keep_blobs = False
    try:
        if tile is None or (height <= tile and width <= tile):
            need = pass_bytes(forward_bytes(net, shapes(height, width)), extra_bytes)
            if available is not None and need > available:
                raise MemoryEstimateError(
                    f"{what}: a {width}×{height} forward needs about {format_bytes(need)} (blobs, image "
                    f"buffers and slack), more than the {format_bytes(available)} available; segment it in "
                    f"overlapping tiles with --tile 512 (or smaller)")
            return predict(net, array, score_blob)
        window = (min(height, tile + 2 * margin), min(width, tile + 2 * margin))
        need = pass_bytes(forward_bytes(net, shapes(*window)), extra_bytes)
        if available is not None and need > available:
            raise MemoryEstimateError(
                f"{what}: a {window[1]}×{window[0]} tile window ({tile} px and {margin} px of "
                f"context each side) with the whole image's buffers needs about {format_bytes(need)}, "
                f"more than the {format_bytes(available)} available; pass a smaller --tile")
        labels = np.empty((height, width), np.int64)
        for t in tiles(height, width, tile, margin):
            part = np.ascontiguousarray(array[:, t.window[0], t.window[1]])
            labels[t.core] = predict(net, part, score_blob)[t.inner]
        return labels
    finally:
        net.keep_blobs = keep

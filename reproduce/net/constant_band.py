"""The constant band: where a feature map is known to be constant, and how to skip computing it.

FCN's first convolution pads the image by 100 pixels. Every conv1_1 output whose receptive
field lies wholly in that padding sees only zeros, so it equals the bias; the next layers map
that constant region to another constant, and so on until the receptive fields reach the
image. On a 500×500 input roughly half of conv1–conv3's outputs are such copies of one value
per channel. Caffe computes them all; computing only the rest gives the same blobs, faster.

A ``Band`` describes, per spatial axis, an ``AxisBand(size, r0, u, v, r1)``:

* the explicit ring ``[0, r0)`` and ``[r1, size)`` — outputs that touch the canvas edge;
* the inner interval ``[r0, r1)`` and, inside it, the core ``[u, v)`` — outputs that see data;
* the band ``[r0, u) ∪ [v, r1)``.

In 2-d the band is the inner box minus the core box. Band pixels hold one value per
(image, channel), and the dense tensor holds it there too: any layer that knows nothing of
bands reads the blob as usual. A band is geometry only; its value is read back from a band pixel.

For an output position, the receptive field ``[lo, hi)`` on the input axis is classified:

* ``P`` — wholly in the zero padding, so the output is the op applied to zeros;
* ``B`` — inside the input's inner interval and clear of its core, so the output is the op
  applied to the input's constant;
* ``C`` — inside the inner interval and overlapping the core (data; computed);
* ``X`` — anything else, e.g. over the canvas edge (computed).

One output takes one constant, so a layer's band is made of ``P`` positions if any axis has
them, else of ``B`` positions; the other kind is computed like ``X``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Iterator

Rect = tuple[int, int, int, int]  # y0, y1, x0, x1 (half-open)


@dataclass(frozen=True)
class AxisBand:
    """One spatial axis of a band (see the module docstring)."""

    size: int
    r0: int
    u: int
    v: int
    r1: int

    @classmethod
    def dense(cls, size: int) -> "AxisBand":
        """An axis that is all data: no ring, no band."""
        return cls(size, 0, 0, size, size)

    @property
    def has_band(self) -> bool:
        return self.u > self.r0 or self.r1 > self.v


@dataclass(frozen=True)
class Band:
    """A 2-d constant band: ``AxisBand`` for height and width."""

    h: AxisBand
    w: AxisBand

    def band_rects(self) -> list[Rect]:
        """Rectangles that tile the band (the inner box minus the core box)."""
        h, w = self.h, self.w
        rects = [(h.r0, h.u, w.r0, w.r1), (h.v, h.r1, w.r0, w.r1),
                 (h.u, h.v, w.r0, w.u), (h.u, h.v, w.v, w.r1)]
        return [r for r in rects if r[1] > r[0] and r[3] > r[2]]

    def explicit_rects(self) -> list[Rect]:
        """Rectangles that tile everything else: the ring around the inner box, and the core."""
        h, w = self.h, self.w
        rects = [(0, h.r0, 0, w.size), (h.r1, h.size, 0, w.size),
                 (h.r0, h.r1, 0, w.r0), (h.r0, h.r1, w.r1, w.size), (h.u, h.v, w.u, w.v)]
        return [r for r in rects if r[1] > r[0] and r[3] > r[2]]

    def sample_point(self) -> tuple[int, int]:
        """One band pixel, where the band's value is read."""
        y0, _, x0, _ = self.band_rects()[0]
        return y0, x0


def _classify(axis: AxisBand, lo: int, hi: int) -> str:
    if hi <= 0 or lo >= axis.size:
        return "P"
    if lo >= axis.r0 and hi <= axis.r1:
        return "B" if hi <= axis.u or lo >= axis.v else "C"
    return "X"


def _axis_from_classes(classes: list[str], kind: str) -> AxisBand | None:
    """The output axis, or None if the constant positions are not a prefix/suffix of the inner span."""
    size = len(classes)
    if kind == "P":
        r0, r1 = 0, size
        allowed = None
    else:
        inner = [i for i, c in enumerate(classes) if c in ("B", "C")]
        if not inner:
            return None
        r0, r1 = inner[0], inner[-1] + 1
        allowed = ("B", "C")
        if any(c not in allowed for c in classes[r0:r1]):
            return None
    u = r0
    while u < r1 and classes[u] == kind:
        u += 1
    v = r1
    while v > u and classes[v - 1] == kind:
        v -= 1
    if any(c == kind for c in classes[u:v]):
        return None
    return AxisBand(size, r0, u, v, r1)


def window_band(band: Band | None, in_size: tuple[int, int], out_size: tuple[int, int],
                windows: tuple[Callable[[int], tuple[int, int]], Callable[[int], tuple[int, int]]],
                padding_kind: bool) -> tuple[Band, str] | None:
    """The band of a windowed op's output (convolution, pooling) and its kind, or None.

    ``windows[axis](o)`` gives output ``o``'s receptive field ``[lo, hi)`` on that input axis;
    ``padding_kind`` says whether outputs that see only padding are constant (a convolution's
    are: the op of zeros; a pooling window never lies wholly in padding).
    """
    axes = (band.h, band.w) if band is not None else tuple(AxisBand.dense(s) for s in in_size)
    classes = [[_classify(axis, *window(o)) for o in range(n)]
               for axis, window, n in zip(axes, windows, out_size)]
    kind = "P" if padding_kind and any("P" in c for c in classes) else "B"
    if kind == "B" and band is None:
        return None
    out_axes = [_axis_from_classes(c, kind) for c in classes]
    if any(a is None for a in out_axes):
        return None
    result = Band(*out_axes)
    if not result.band_rects():
        return None
    return result, kind


@dataclass(frozen=True)
class ConvBand:
    """A convolution's band plan: its output band and whether that band is padding (``P``)."""

    out: Band
    from_padding: bool

    @property
    def explicit_fraction(self) -> float:
        """The share of output pixels that must still be convolved."""
        explicit = sum((y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in self.out.explicit_rects())
        return explicit / (self.out.h.size * self.out.w.size)


@lru_cache(maxsize=512)
def conv_band(band: Band | None, in_size: tuple[int, int], out_size: tuple[int, int],
              kernel_extent: tuple[int, int], stride: tuple[int, int],
              pad: tuple[int, int]) -> ConvBand | None:
    """The output band of a 2-d convolution (any group count and dilation), or None."""
    windows = tuple((lambda o, e=e, s=s, p=p: (o * s - p, o * s - p + e))
                    for e, s, p in zip(kernel_extent, stride, pad))
    planned = window_band(band, in_size, out_size, windows, padding_kind=True)
    if planned is None:
        return None
    out, kind = planned
    return ConvBand(out, from_padding=kind == "P")


@lru_cache(maxsize=512)
def pool_band(band: Band, in_size: tuple[int, int], out_size: tuple[int, int],
              kernel: tuple[int, int], stride: tuple[int, int], pad: tuple[int, int],
              clipped_is_explicit: bool) -> Band | None:
    """The output band of Caffe pooling: windows clipped to the input (MAX ignores padding).

    With ``clipped_is_explicit`` (AVE, whose divisor depends on the clipping), a window that
    needed clipping is computed, never taken as constant.
    """
    def window(axis: int):
        size, k, s, p = in_size[axis], kernel[axis], stride[axis], pad[axis]

        def rf(o: int) -> tuple[int, int]:
            lo, hi = o * s - p, o * s - p + k
            if lo < 0 or hi > size:
                if clipped_is_explicit:
                    return -1, size + 1  # straddles everything: class X
                lo, hi = max(lo, 0), min(hi, size)
            return lo, hi
        return rf

    planned = window_band(band, in_size, out_size, (window(0), window(1)), padding_kind=False)
    return planned[0] if planned is not None else None


def iter_rects(rects: list[Rect]) -> Iterator[tuple[slice, slice]]:
    """``(rows, cols)`` slices of each rectangle."""
    for y0, y1, x0, x1 in rects:
        yield slice(y0, y1), slice(x0, x1)

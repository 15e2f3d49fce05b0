"""Random mirroring and jittering of training samples, the augmentation the paper tried.

CVPR 2015 Sec. 4.3, "Augmentation": "We tried augmenting the training data by randomly
mirroring and 'jittering' the images by translating them up to 32 pixels (the coarsest scale
of prediction) in each direction. This yielded no noticeable improvement." The reference data
layers do neither; the project's do when the training layer's ``param_str`` asks for it:
``'mirror': True`` (each sample flipped left-right with probability 1/2) and ``'jitter': N``
(each sample translated by ``dy, dx`` drawn uniformly from ``[-N, N]``). Every top of a sample
(image and label; NYUDv2's color/depth/hha, SIFT Flow's sem/geo) moves alike; what the
translation uncovers is 0 in the image tops — the mean, as they are mean-subtracted — and the
void label 255 in the label tops (``label``, ``sem``, ``geo``), so it adds no loss. The image
keeps its size.

The draws come from their own seeded stream (numpy's PCG64 seeded with the layer's ``seed``
and a stream number, independent of the sample order's Mersenne Twister), are made in the
order the samples are drawn (never in a loader thread), and the stream's state is part of the
data source's state, so a resumed run augments exactly as an uninterrupted one. Only a
training split (one the reference would randomize, ``'train'`` in its name) may be augmented.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .param_str import ParamStrError

LABEL_TOPS = frozenset({"label", "sem", "geo"})
VOID = 255
STREAM = 0x4FC4   # the augmentation stream's number beside the layer's seed


class Augmentation:
    """Draws and applies one sample's mirroring and translation (see the module docstring)."""

    def __init__(self, mirror: bool = False, jitter: int = 0, seed=None,
                 tops: Sequence[str] = ("data", "label")):
        if jitter < 0:
            raise ValueError(f"jitter must be a non-negative number of pixels, got {jitter}")
        self.mirror, self.jitter, self.tops = bool(mirror), int(jitter), tuple(tops)
        entropy = [int(seed), STREAM] if seed is not None else None
        self._random = np.random.Generator(np.random.PCG64(entropy))

    @classmethod
    def from_params(cls, params: dict, layer: str, tops: Sequence[str]) -> "Augmentation | None":
        """The augmentation a data layer's ``param_str`` asks for, or None (the reference's)."""
        mirror, jitter = params.get("mirror", False), params.get("jitter", 0)
        if not isinstance(mirror, bool):
            raise ParamStrError(f"layer {layer!r}: param_str 'mirror' must be True or False, got {mirror!r}")
        if isinstance(jitter, bool) or not isinstance(jitter, int) or jitter < 0:
            raise ParamStrError(f"layer {layer!r}: param_str 'jitter' must be a number of pixels "
                                f"(an int >= 0), got {jitter!r}")
        if not mirror and not jitter:
            return None
        split = str(params.get("split", ""))
        if "train" not in split:
            raise ParamStrError(f"layer {layer!r}: param_str asks for augmentation (mirror/jitter) "
                                f"on split {split!r}; only a training split is augmented")
        return cls(mirror, jitter, params.get("seed"), tops)

    def draw(self) -> tuple[bool, int, int]:
        """``(flip, dy, dx)`` for the next sample."""
        flip = bool(self._random.integers(2)) if self.mirror else False
        dy, dx = ((int(v) for v in self._random.integers(-self.jitter, self.jitter + 1, size=2))
                  if self.jitter else (0, 0))
        return flip, dy, dx

    def apply(self, arrays: Sequence[np.ndarray], drawn: tuple[bool, int, int]) -> tuple[np.ndarray, ...]:
        """The sample's arrays (``C × H × W`` each) mirrored and translated as ``drawn`` says."""
        flip, dy, dx = drawn
        out = []
        for top, array in zip(self.tops, arrays):
            if flip:
                array = array[..., ::-1]
            if dy or dx:
                array = translate(array, dy, dx, VOID if top in LABEL_TOPS else 0)
            out.append(np.ascontiguousarray(array))
        return tuple(out)

    def state_dict(self) -> dict:
        return {"mirror": self.mirror, "jitter": self.jitter,
                "bit_generator": self._random.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        if (bool(state["mirror"]), int(state["jitter"])) != (self.mirror, self.jitter):
            raise ValueError(f"augmentation state for mirror={state['mirror']}, jitter={state['jitter']} "
                             f"does not fit this one (mirror={self.mirror}, jitter={self.jitter})")
        self._random.bit_generator.state = state["bit_generator"]

    def __repr__(self) -> str:
        return f"Augmentation(mirror={self.mirror}, jitter={self.jitter})"


def translate(array: np.ndarray, dy: int, dx: int, fill) -> np.ndarray:
    """``array`` moved down by ``dy`` and right by ``dx`` pixels (negative: up, left) over its
    last two axes, the uncovered border set to ``fill``; same shape and dtype."""
    height, width = array.shape[-2:]
    out = np.full_like(array, fill)
    if abs(dy) >= height or abs(dx) >= width:
        return out
    out[..., max(dy, 0):height + min(dy, 0), max(dx, 0):width + min(dx, 0)] = \
        array[..., max(-dy, 0):height - max(dy, 0), max(-dx, 0):width - max(dx, 0)]
    return out

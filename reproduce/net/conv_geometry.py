"""A convolution's geometry per spatial axis — kernel, stride, pad, dilation — as
``BaseConvolutionLayer`` holds it after setup (``convolution.conv_geometry`` reads it from a
layer; ``banded`` convolves with it), in a module of its own so neither imports the other.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConvGeometry:
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    pad: tuple[int, ...]
    dilation: tuple[int, ...]

    @property
    def extent(self) -> tuple[int, ...]:
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel, self.dilation))

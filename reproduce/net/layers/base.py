"""The common shape of every layer: a ``torch.nn.Module`` built like a Caffe ``Layer``.

A layer is constructed from ``(layer_param, bottom_shapes)`` — its ``LayerParameter``
``Message`` and the shapes of its bottom blobs — as Caffe's ``Layer::SetUp`` does, and owns
its parameter blobs in Caffe's blob order. The attribute a blob lives under depends only on
its index: blob 0 → ``weight``, blob 1 → ``bias``, blob ``i >= 2`` → ``blob<i>`` (so for
BatchNorm ``weight`` is the mean sum, ``bias`` the variance sum, ``blob2`` the scale factor).

``forward(*bottoms)`` returns a tuple of tops; ``top_shapes(bottom_shapes)`` infers their
shapes without running (Caffe's ``Reshape``). Axis arguments follow Caffe's
``Blob::CanonicalAxisIndex``: negative values count from the end.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import nn

from reproduce.caffe.schema import Message

from ..fillers import fill

Shape = tuple[int, ...]


class LayerError(ValueError):
    """A layer definition or input that Caffe would refuse (a failed ``CHECK`` in SetUp/Reshape)."""


def blob_attribute(index: int) -> str:
    """The module attribute holding Caffe blob ``index``: weight, bias, blob2, blob3, …"""
    return ("weight", "bias")[index] if index < 2 else f"blob{index}"


def count(shape: Sequence[int], start: int = 0, end: int | None = None) -> int:
    """Caffe's ``Blob::count(start, end)``: the product of ``shape[start:end]``."""
    return math.prod(shape[start:end])


class CaffeLayer(nn.Module):
    """Base class of all layers (see the module docstring).

    Subclasses set ``bottoms``/``tops`` to the (min, max) number of blobs Caffe accepts
    (``max=None`` for unbounded) and implement ``forward`` and ``top_shapes``.
    """

    bottoms: tuple[int, int | None] = (1, 1)
    tops: tuple[int, int | None] = (1, 1)

    def __init__(self, layer_param: Message, bottom_shapes: Sequence[Shape],
                 generator: torch.Generator | None = None):
        super().__init__()
        self.layer_param = layer_param
        self.layer_name: str = layer_param.name
        self.layer_type: str = layer_param.type
        self.phase: str = layer_param.phase  # the net sets it like Caffe's Net::Init
        self.generator = generator
        self._num_blobs = 0
        self._check_count("bottom", len(bottom_shapes), self.bottoms)
        self._check_count("top", len(layer_param.top), self.tops)

    # -- errors and axes -------------------------------------------------------------
    def error(self, message: str) -> LayerError:
        return LayerError(f"layer {self.layer_name!r} ({self.layer_type}): {message}")

    def _check_count(self, what: str, n: int, allowed: tuple[int, int | None]) -> None:
        low, high = allowed
        if n < low or (high is not None and n > high):
            wanted = f"{low}" if low == high else (f"at least {low}" if high is None
                                                   else f"{low} to {high}")
            raise self.error(f"takes {wanted} {what} blob(s), got {n}")

    def canonical_axis(self, axis: int, num_axes: int) -> int:
        """Caffe's CanonicalAxisIndex: ``axis`` in [-num_axes, num_axes), negatives wrap."""
        if not -num_axes <= axis < num_axes:
            raise self.error(f"axis {axis} out of range for a {num_axes}-axis blob")
        return axis + num_axes if axis < 0 else axis

    # -- parameter blobs ---------------------------------------------------------------
    def add_blob(self, shape: Sequence[int], filler: Message) -> nn.Parameter:
        """Append the next Caffe parameter blob, initialised by ``filler``."""
        data = fill(filler, shape, self.generator, owner=self.layer_name)
        return self.add_blob_tensor(data)

    def add_blob_tensor(self, data: torch.Tensor) -> nn.Parameter:
        param = nn.Parameter(data.to(torch.float32))
        self.register_parameter(blob_attribute(self._num_blobs), param)
        self._num_blobs += 1
        return param

    def blobs(self) -> list[nn.Parameter]:
        """The parameter blobs, in Caffe's order."""
        return [getattr(self, blob_attribute(i)) for i in range(self._num_blobs)]

    def param_specs(self) -> list[tuple[float, float]]:
        """(lr_mult, decay_mult) per blob: the layer's ParamSpec ``i``, or Caffe's 1, 1."""
        specs = self.layer_param.param
        return [(float(specs[i].lr_mult), float(specs[i].decay_mult)) if i < len(specs)
                else (1.0, 1.0) for i in range(self._num_blobs)]

    # -- to implement ------------------------------------------------------------------
    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        raise NotImplementedError

    def forward_banded(self, bottoms: Sequence[torch.Tensor], bands: Sequence[Any]):
        """``(tops, top_bands)``: forward, and which regions of each top are constant.

        ``bands`` holds each bottom's ``constant_band.Band`` or None. A layer that does not
        know bands returns None for every top; see ``reproduce.net.constant_band``.
        """
        tops = self(*bottoms)
        return tops, [None] * len(tops)

    def extra_repr(self) -> str:
        return f"{self.layer_type} {self.layer_name!r}"


class ElementwiseLayer(CaffeLayer):
    """A one-bottom, one-top layer whose top has the bottom's shape (Caffe's NeuronLayer)."""

    def top_shapes(self, bottom_shapes):
        return [tuple(bottom_shapes[0])]

"""MemoryData (Caffe's ``MemoryDataLayer``): tops ``data`` and ``label`` taken from arrays in memory.

As Caffe (``memory_data_layer.cpp``): ``memory_data_param`` gives ``batch_size``, ``channels``,
``height`` and ``width``, all of which must be positive ("batch_size, channels, height, and
width must be specified and positive in memory_data_param"); there are no bottoms and exactly
two tops, set up as ``batch_size×channels×height×width`` and ``batch_size``.

``reset(data, labels)`` is Caffe's ``Reset(data, labels, n)``: ``data`` an ``n×C×H×W`` float32
tensor, ``labels`` ``n`` values (any shape with ``n`` items first), ``n`` a multiple of the batch
size ("n must be a multiple of batch size"). The layer keeps the tensors themselves, no copy —
Caffe keeps the pointers — so a change made to them afterwards is what later forwards read;
no ``transform_param`` is applied (Caffe warns "MemoryData does not transform array data on
Reset()", and so does this). Each forward returns the next ``batch_size`` items, the data as a
view of ``data`` (Caffe's ``set_cpu_data``) and the labels shaped ``batch_size×1×1×1``, and
moves on by ``batch_size``, wrapping to the start after the last batch. A forward before any
``reset`` is an error naming the layer (Caffe: "MemoryDataLayer needs to be initialized by
calling Reset"). pycaffe's ``Net.set_input_arrays`` is the usual caller
(``reproduce.pycaffe.net``); Caffe's ``AddDatumVector``/``AddMatVector`` are not ported.
"""
from __future__ import annotations

import logging

import torch

from .base import CaffeLayer
from .registry import register

log = logging.getLogger(__name__)


@register("MemoryData")
class MemoryData(CaffeLayer):
    """Caffe's MemoryData layer (see the module docstring)."""

    bottoms = (0, 0)
    tops = (2, 2)

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        p = layer_param.memory_data_param
        self.batch_size, self.channels = int(p.batch_size), int(p.channels)
        self.height, self.width = int(p.height), int(p.width)
        if min(self.batch_size, self.channels, self.height, self.width) <= 0:
            raise self.error("batch_size, channels, height, and width must be specified and "
                             "positive in memory_data_param (got batch_size "
                             f"{self.batch_size}, channels {self.channels}, height "
                             f"{self.height}, width {self.width})")
        # follows the net's device (net.to(...)); the arrays stay where they are given
        self.register_buffer("device_marker", torch.zeros(0), persistent=False)
        self._data: torch.Tensor | None = None
        self._labels: torch.Tensor | None = None
        self._n = 0
        self._pos = 0

    def top_shapes(self, bottom_shapes):
        return [(self.batch_size, self.channels, self.height, self.width), (self.batch_size,)]

    def reset(self, data: torch.Tensor, labels: torch.Tensor) -> None:
        """Caffe's ``Reset``: serve ``data``/``labels`` from their first item on (no copy)."""
        if not isinstance(data, torch.Tensor) or not isinstance(labels, torch.Tensor):
            raise TypeError(f"layer {self.layer_name!r} (MemoryData): reset takes tensors, got "
                            f"{type(data).__name__} and {type(labels).__name__}")
        shape = (self.channels, self.height, self.width)
        if data.dim() != 4 or tuple(data.shape[1:]) != shape or data.dtype != torch.float32:
            raise self.error(f"data must be float32 N×{shape[0]}×{shape[1]}×{shape[2]}, got "
                             f"{data.dtype} {tuple(data.shape)}")
        n = int(data.shape[0])
        if (labels.dim() == 0 or int(labels.shape[0]) != n or labels.numel() != n
                or labels.dtype != torch.float32):
            raise self.error(f"labels must be float32, one value per data item ({n}), got "
                             f"{labels.dtype} {tuple(labels.shape)}")
        if n == 0:
            raise self.error("no data: the arrays hold 0 items")
        if n % self.batch_size:
            raise self.error(f"n must be a multiple of batch size (n {n}, batch_size "
                             f"{self.batch_size})")
        if self.layer_param.has("transform_param"):
            log.warning("%s does not transform array data on Reset()", self.layer_type)
        self._data, self._labels = data, labels.reshape(n)
        self._n, self._pos = n, 0

    def forward(self):
        if self._data is None:
            raise self.error("MemoryDataLayer needs to be initialized by calling Reset: give "
                             "it its arrays first (layer.reset(data, labels); pycaffe: "
                             "net.set_input_arrays(data, labels))")
        start, end = self._pos, self._pos + self.batch_size
        device = self.device_marker.device
        data = self._data[start:end]
        labels = self._labels[start:end].reshape(self.batch_size, 1, 1, 1)
        self._pos = end % self._n
        if data.device != device:
            data, labels = data.to(device), labels.to(device)
        return data, labels

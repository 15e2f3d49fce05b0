"""The plain formulation: layers as standard, shape-generic torch operators, for tracing.

A ``Net`` normally runs CPU speed-ups whose choices are Python decisions on shapes and
values: the constant band (``reproduce.net.constant_band``), fc6/fc7 as im2col + GEMM with
one product per image, the channels-last layout, and Caffe's pooled sizes computed with
Python ``math.ceil``. A tracer (``torch.export``, ``torch.compile``, the ONNX exporters)
would freeze each of those decisions at the example's size, or stop on a guard it cannot
prove for every size. Inside ``plain_ops()`` — and whenever ``torch.compile``/``torch.export``
or the TorchScript tracer is tracing — every layer computes the same Caffe arithmetic from
standard operators whose output sizes follow from the input's symbolically: plain
convolutions, Caffe's ceil-mode pooling as explicit padding plus floor-mode pooling (exact
at every size, ``reproduce.net.layers.pooling``), crops with their constant offsets. The
blobs agree with the default path to float32 summation order (the export tests check both
against Caffe's golden blobs).
"""
from __future__ import annotations

import contextlib
import threading
from typing import Iterator

import torch

_state = threading.local()


def _depth() -> int:
    return getattr(_state, "depth", 0)


@contextlib.contextmanager
def plain_ops() -> Iterator[None]:
    """Run every layer in the plain formulation while the block runs (re-entrant)."""
    _state.depth = _depth() + 1
    try:
        yield
    finally:
        _state.depth = _depth() - 1


def exporting() -> bool:
    """Whether ``plain_ops()`` is active (the export functions set it)."""
    return _depth() > 0


def plain() -> bool:
    """Whether layers must use the plain formulation now: inside ``plain_ops()``, or while a
    tracer (``torch.compile``, ``torch.export``, TorchScript, the ONNX exporters) records."""
    if torch.compiler.is_compiling():  # first: dynamo folds it to a constant
        return True
    return _depth() > 0 or bool(torch.jit.is_tracing() or torch.onnx.is_in_onnx_export())

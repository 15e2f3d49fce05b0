"""Caffe's net semantics in PyTorch: ``Net`` (pycaffe-style) and the layer registry.

``reproduce.net.layers`` holds one module per Caffe layer type, registered by type name;
``reproduce.net.fillers`` Caffe's parameter fillers; ``reproduce.net.state_rules`` the
include/exclude filtering by NetState. The names below are imported lazily, so the torch-free
modules of this package (``spec``, ``coord_map``) load without torch.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "Net": "reproduce.net.net",
    "NetError": "reproduce.net.net",
    "CaffeLayer": "reproduce.net.layers",
    "LayerError": "reproduce.net.layers",
    "UnsupportedLayerError": "reproduce.net.layers",
    "blob_attribute": "reproduce.net.layers",
    "layer_class": "reproduce.net.layers",
    "register": "reproduce.net.layers",
    "registered_types": "reproduce.net.layers",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'reproduce.net' has no attribute {name!r}")

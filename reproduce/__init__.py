"""reproduce — the Berkeley Fully Convolutional Networks, Caffe-exact, in PyTorch.

The public API in pycaffe's spirit, imported lazily so that ``reproduce.caffe`` (the file
formats) stays usable without torch::

    import reproduce
    net = reproduce.Net("deploy.prototxt", weights="fcn8s-heavy-pascal.caffemodel")
    solver = reproduce.SGDSolver("solver.prototxt", weights="vgg16-fcn.caffemodel")
    model = reproduce.FCN8s(num_classes=21)
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Net": "reproduce.net",
    "SGDSolver": "reproduce.solver",
    "FCN32s": "reproduce.models",
    "FCN16s": "reproduce.models",
    "FCN8s": "reproduce.models",
    "FCN8sAtOnce": "reproduce.models",
    "FCNAlexNet": "reproduce.models",
    "FCNGoogLeNet": "reproduce.models",
    "read_net": "reproduce.caffe",
    "read_solver": "reproduce.caffe",
    "load_weights": "reproduce.weights.convert",
    "save_weights": "reproduce.weights.convert",
    "shift_and_stitch": "reproduce.net.shift_and_stitch",
    "rarefy": "reproduce.net.rarefy",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'reproduce' has no attribute {name!r}")

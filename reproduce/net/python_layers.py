"""Caffe's ``Python`` layers: data layers become net inputs; computing layers need a port.

This project runs no Python layer code from a net definition (and never evaluates a
``param_str``). What a ``Python`` layer becomes depends on ``python_param.module``/``layer``:

* a class registered with ``@register_python_layer(module, layer)`` — a ``CaffeLayer``
  subclass, the user's PyTorch port of that layer, built from the ``LayerParameter`` (its
  ``python_param.param_str`` is the layer's to parse) and the bottom shapes like any layer;
* otherwise, without bottoms, a data layer (below);
* otherwise an error naming the layer and saying how to register a port.

A Caffe ``Python`` layer without bottoms (the FCN data layers: ``voc_layers``,
``siftflow_layers``, ``pascalcontext_layers``, ``nyud_layers``) produces the net's images and
labels; here its tops become named inputs fed to ``Net.forward``. Shape inference only needs
their channel counts: ``top_channels(module, layer, top_names)`` answers from a table keyed by
``(python_param.module, python_param.layer)`` — ``register_python_data_layer`` extends it —
falling back to the top's name (``data``/``color``/``hha`` 3 channels, ``label``/``sem``/
``geo``/``depth`` 1) and then to position (first top 3 channels, the rest 1).

The one exception is ``reproduce.pycaffe`` (pycaffe on PyTorch, ``import caffe``): a net
built there, inside ``python_layer_factory(factory)``, gets every ``Python`` layer from
``factory`` — which imports ``python_param.module`` from ``sys.path`` as Caffe does, because
the caller of that API asked for it. Nothing else sets a factory, so the project's own
commands and ``reproduce.net.Net`` keep refusing to import code named in a net.

``PLACEHOLDER_SIZE`` is the H×W assumed for them while the net is built; any H×W may be fed
at run time (for nets without a layer like InnerProduct that fixes the size).
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Callable, Iterator, Sequence

PLACEHOLDER_SIZE = (500, 500)

CHANNELS_BY_TOP_NAME = {"data": 3, "color": 3, "hha": 3, "label": 1, "sem": 1, "geo": 1,
                        "depth": 1}

# (module, layer) -> channels of each top, in top order
_DATA_LAYERS: dict[tuple[str, str], tuple[int, ...]] = {
    ("voc_layers", "VOCSegDataLayer"): (3, 1),
    ("voc_layers", "SBDDSegDataLayer"): (3, 1),
    ("siftflow_layers", "SIFTFlowSegDataLayer"): (3, 1, 1),
    ("pascalcontext_layers", "PASCALContextSegDataLayer"): (3, 1),
}


def register_python_data_layer(module: str, layer: str, channels: Sequence[int]) -> None:
    """Declare the channel count of each top of Python data layer ``module.layer``."""
    _DATA_LAYERS[(module, layer)] = tuple(int(c) for c in channels)


def top_channels(module: str, layer: str, top_names: Sequence[str]) -> list[int]:
    """The channel count of each top of a Python data layer (see the module docstring)."""
    known = _DATA_LAYERS.get((module, layer))
    if known is not None and len(known) == len(top_names):
        return list(known)
    return [CHANNELS_BY_TOP_NAME.get(name, 3 if i == 0 else 1)
            for i, name in enumerate(top_names)]


# (module, layer) -> the CaffeLayer subclass that runs it
_PORTED_LAYERS: dict[tuple[str, str], type] = {}


def register_python_layer(module: str, layer: str):
    """Class decorator: ``cls`` (a ``CaffeLayer`` subclass) runs Python layer ``module.layer``.

    ``cls(layer_param, bottom_shapes, generator)`` is built for every ``Python`` layer of a
    net whose ``python_param`` names ``module`` and ``layer``; it implements ``top_shapes``
    and ``forward`` like the built-in layers.
    """
    from .layers.base import CaffeLayer

    def decorate(cls):
        if not (isinstance(cls, type) and issubclass(cls, CaffeLayer)):
            raise TypeError(f"register_python_layer({module!r}, {layer!r}) needs a CaffeLayer "
                            f"subclass, got {cls!r}")
        _PORTED_LAYERS[(module, layer)] = cls
        return cls

    return decorate


def ported_layer(module: str, layer: str) -> type | None:
    """The class registered for Python layer ``module.layer``, or None."""
    return _PORTED_LAYERS.get((module, layer))


# the factory of the net being built under python_layer_factory (reproduce.pycaffe only)
_FACTORY: contextvars.ContextVar[Callable | None] = contextvars.ContextVar(
    "python_layer_factory", default=None)


@contextlib.contextmanager
def python_layer_factory(factory: Callable) -> Iterator[None]:
    """Within this block, nets build each ``Python`` layer as
    ``factory(layer_param, bottom_shapes, generator)`` (see the module docstring)."""
    token = _FACTORY.set(factory)
    try:
        yield
    finally:
        _FACTORY.reset(token)


def active_python_layer_factory() -> Callable | None:
    """The factory set by the enclosing ``python_layer_factory`` block, or None."""
    return _FACTORY.get()

"""Input (Caffe's ``InputLayer``) and Python data layers: the tops a caller feeds.

Neither computes anything; the net fills their tops from ``Net.forward``'s arguments. Their
``top_shapes`` are what the net assumes while building: Input's ``input_param.shape`` (one
shape for all tops, or one per top, as Caffe allows), and for a bottomless ``Python`` layer
``(1, channels, *PLACEHOLDER_SIZE)`` with channels from ``reproduce.net.python_layers``. A
``Python`` layer registered there as ported (``register_python_layer``) is built from its
class instead; an unregistered one *with* bottoms is user code this port cannot run, and is
refused.
"""
from __future__ import annotations

from .. import python_layers
from .base import CaffeLayer
from .registry import register


class DataProvider(CaffeLayer):
    """A layer whose tops are net inputs."""

    bottoms = (0, 0)
    tops = (1, None)

    def forward(self, *bottoms):
        raise self.error("input layers are fed by the net, not run")


@register("Input")
class Input(DataProvider):
    """Caffe's Input layer."""

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        shapes = layer_param.input_param.shape
        num_tops = len(layer_param.top)
        if len(shapes) not in (0, 1, num_tops):
            raise self.error(f"input_param must give 0, 1 or {num_tops} shapes "
                             f"(one per top), got {len(shapes)}")
        self.shapes = [tuple(int(d) for d in shapes[0 if len(shapes) == 1 else i].dim)
                       if shapes else () for i in range(num_tops)]

    def top_shapes(self, bottom_shapes):
        return list(self.shapes)


@register("Python")
def python_layer(layer_param, bottom_shapes, generator=None) -> CaffeLayer:
    """A ``Python`` layer: what ``reproduce.pycaffe`` builds for it while it builds a net,
    else its registered port, or a data layer (module docstring)."""
    factory = python_layers.active_python_layer_factory()
    if factory is not None:  # reproduce.pycaffe, which imports the layer's module itself
        return factory(layer_param, bottom_shapes, generator)
    p = layer_param.python_param
    ported = python_layers.ported_layer(p.module, p.layer)
    if ported is not None:
        return ported(layer_param, bottom_shapes, generator)
    return PythonData(layer_param, bottom_shapes, generator)


class PythonData(DataProvider):
    """A bottomless Python layer (an FCN data layer), treated as named inputs."""

    bottoms = (0, None)

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        p = layer_param.python_param
        if bottom_shapes:
            raise self.error(f"Python layer {p.module}.{p.layer} has bottoms: its Python code "
                             f"does not run here; port it to PyTorch as a CaffeLayer subclass "
                             f"registered with reproduce.net.python_layers."
                             f"register_python_layer({p.module!r}, {p.layer!r})")
        channels = python_layers.top_channels(p.module, p.layer, list(layer_param.top))
        self.shapes = [(1, c, *python_layers.PLACEHOLDER_SIZE) for c in channels]

    def top_shapes(self, bottom_shapes):
        return list(self.shapes)

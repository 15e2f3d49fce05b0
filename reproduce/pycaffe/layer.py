"""``caffe.Layer`` — Python layers — and the layer objects of ``Net.layers``.

What it mirrors of Caffe's ``PythonLayer`` (``python_layer.hpp``) and the layer factory's
``GetPythonLayer``:

* a ``Python`` layer names ``python_param { module: … layer: … }``; the module is imported from
  ``sys.path`` (``importlib.import_module``, as ``bp::import``), the class called with the
  ``LayerParameter`` (a ``caffe_pb2.LayerParameter``); before ``setup`` the instance gets
  ``param_str`` (the string as written, never evaluated here — what the layer does with it is
  its own business) and ``phase`` (``caffe.TRAIN`` 0 / ``caffe.TEST`` 1);
* ``setup(bottom, top)`` then ``reshape(bottom, top)`` run when the net is built, with the
  net's own ``Blob`` objects (bottoms hold zeros then, as Caffe's do); every forward calls
  ``reshape`` and then ``forward``; ``backward(top, propagate_down, bottom)`` writes bottom
  diffs. A class that defines no ``backward`` passes no gradient down (its bottoms' diffs are
  left alone), as a layer that needs none in Caffe;
* ``self.blobs`` (a ``BlobVec``; ``add_blob(*shape)`` in ``setup``) are the layer's parameter
  blobs: the net saves, loads, shares and trains them like any layer's.

This is reached only from ``reproduce.pycaffe`` (``import caffe``): the factory below is handed
to ``reproduce.net.python_layers.python_layer_factory`` while a ``caffe.Net`` is built. The
project's own ``Net`` and commands never import code named in a net.

``PythonLayerModule`` is the ``CaffeLayer`` the underlying ``reproduce.net.Net`` holds for a
Python layer: it runs the user's object on numpy blobs and, called on tensors (the plain
``Net.forward`` path), goes through a ``torch.autograd.Function`` whose backward is the
layer's ``backward`` — so the Python layer's gradient feeds autograd. ``LayerView`` is what
``net.layers`` gives for a built-in layer (``type``, ``blobs``, ``layer_param``).
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

import torch

from reproduce.net.layers.base import CaffeLayer, blob_attribute

from .blob import Blob, BlobVec, ParamBlob, push_host_copies

TRAIN, TEST = 0, 1
PHASES = {"TRAIN": TRAIN, "TEST": TEST}


class PythonLayerError(RuntimeError):
    """A ``Python`` layer whose module or class cannot be found or built."""


class Layer:
    """Base class of Python layers (``class MyLayer(caffe.Layer)``), see the module docstring."""

    def __init__(self, layer_param: Any = None):
        self.layer_param = layer_param
        self.param_str = ""
        self.phase = TEST
        self._blobs = BlobVec()

    @property
    def blobs(self) -> BlobVec:
        if "_blobs" not in self.__dict__:   # a subclass __init__ that skipped ours
            self._blobs = BlobVec()
        return self._blobs

    @property
    def type(self) -> str:
        return "Python"

    def setup(self, bottom, top) -> None:
        """Caffe's ``LayerSetUp``: nothing unless overridden."""

    def reshape(self, bottom, top) -> None:
        """Caffe's ``Reshape``: nothing unless overridden."""

    def forward(self, bottom, top) -> None:
        raise NotImplementedError(f"{type(self).__name__} defines no forward")


def defines_backward(layer: Layer) -> bool:
    return callable(getattr(type(layer), "backward", None))


class LayerView:
    """A built-in layer as ``net.layers[i]`` shows it: ``type``, ``blobs``, ``layer_param``."""

    def __init__(self, module: CaffeLayer):
        self._module = module

    @property
    def type(self) -> str:
        return self._module.layer_type

    @property
    def name(self) -> str:
        return self._module.layer_name

    @property
    def layer_param(self):
        return self._module.layer_param

    @property
    def blobs(self) -> BlobVec:
        return param_blobs(self._module)

    def __repr__(self) -> str:
        return f"<caffe Layer {self.name!r} ({self.type})>"


def param_blobs(module: CaffeLayer) -> BlobVec:
    """A layer module's parameter blobs as ``ParamBlob``s (each looked up on access)."""
    cache = module.__dict__.setdefault("_pycaffe_param_blobs", {})
    blobs = []
    for i in range(module._num_blobs):
        if i not in cache:
            cache[i] = ParamBlob(_getter(module, blob_attribute(i)),
                                 f"{module.layer_name}[{i}]")
        blobs.append(cache[i])
    return BlobVec(blobs)


def _getter(module: CaffeLayer, attribute: str) -> Callable[[], torch.nn.Parameter]:
    return lambda: getattr(module, attribute)


class PythonLayerModule(CaffeLayer):
    """The ``CaffeLayer`` holding one Python layer object (see the module docstring)."""

    bottoms = (0, None)
    tops = (0, None)

    def __init__(self, layer_param, bottom_shapes, generator, *, phase: int,
                 blob: Callable[[str, tuple | None], Blob]):
        super().__init__(layer_param, bottom_shapes, generator)
        p = layer_param.python_param
        self.module_name, self.class_name = p.module, p.layer
        cls = _find_class(layer_param.name, p.module, p.layer)
        from .proto import as_proto

        try:
            instance = cls(as_proto(layer_param.copy()))
        except TypeError as err:
            raise PythonLayerError(f"layer {layer_param.name!r}: {p.module}.{p.layer} could not "
                                   f"be constructed from its LayerParameter: {err}") from None
        if not isinstance(instance, Layer):
            raise PythonLayerError(f"layer {layer_param.name!r}: {p.module}.{p.layer} is not a "
                                   f"caffe.Layer subclass")
        self.python = instance
        instance.param_str = p.param_str
        instance.phase = phase
        instance._blobs = BlobVec(add=self._add_blob)
        self.bottom_blobs = [blob(name, shape) for name, shape in zip(layer_param.bottom,
                                                                      bottom_shapes)]
        self.top_blobs = [blob(name, None) for name in layer_param.top]
        instance.setup(self.bottom_blobs, self.top_blobs)
        instance.reshape(self.bottom_blobs, self.top_blobs)
        push_host_copies()

    def _add_blob(self, shape: tuple) -> Blob:
        index = self._num_blobs
        self.add_blob_tensor(torch.zeros(shape))
        return ParamBlob(_getter(self, blob_attribute(index)), f"{self.layer_name}[{index}]")

    def top_shapes(self, bottom_shapes):
        return [blob.shape for blob in self.top_blobs]

    # -- the numpy calls, on the net's blobs ------------------------------------------
    def run_forward(self) -> None:
        self.python.reshape(self.bottom_blobs, self.top_blobs)
        self.python.forward(self.bottom_blobs, self.top_blobs)
        push_host_copies()

    def run_backward(self, propagate_down: list[bool]) -> None:
        if defines_backward(self.python):
            self.python.backward(self.top_blobs, list(propagate_down), self.bottom_blobs)
            push_host_copies()

    # -- on tensors, through autograd (reproduce.net.Net.forward) ----------------------
    def forward(self, *bottoms: torch.Tensor):
        return _PythonFunction.apply(self, *bottoms)


class _PythonFunction(torch.autograd.Function):
    """A Python layer on tensors: forward and backward are the layer's own numpy calls."""

    @staticmethod
    def forward(ctx, module: PythonLayerModule, *bottoms: torch.Tensor):
        ctx.module = module
        ctx.bottom_info = [(b.shape, b.device) for b in bottoms]
        for blob, tensor in zip(module.bottom_blobs, bottoms):
            blob._set_tensor(tensor.detach().to(torch.float32).contiguous())
        module.run_forward()
        return tuple(blob._tensor().detach().clone() for blob in module.top_blobs)

    @staticmethod
    def backward(ctx, *top_grads: torch.Tensor):
        module = ctx.module
        if not defines_backward(module.python):
            return (None,) + (None,) * len(ctx.bottom_info)
        for blob, grad in zip(module.top_blobs, top_grads):
            blob._set_diff(grad.detach().to(torch.float32).contiguous().clone()
                           if grad is not None else None)
        for blob in module.bottom_blobs:
            blob._set_diff(None)
        propagate = list(ctx.needs_input_grad[1:])
        module.run_backward(propagate)
        grads = []
        for blob, need in zip(module.bottom_blobs, propagate):
            grads.append(blob._diff_tensor().clone() if need else None)
        return (None, *grads)


def _find_class(layer: str, module: str, name: str) -> type:
    if not module or not name:
        raise PythonLayerError(f"layer {layer!r}: python_param must name a module and a layer "
                               f"(got module {module!r}, layer {name!r})")
    try:
        mod = importlib.import_module(module)
    except ImportError as err:
        raise PythonLayerError(f"layer {layer!r}: cannot import Python layer module "
                               f"{module!r} ({err}); put its directory on sys.path / "
                               f"PYTHONPATH as Caffe needs it") from err
    try:
        return getattr(mod, name)
    except AttributeError:
        raise PythonLayerError(f"layer {layer!r}: module {module!r} ({getattr(mod, '__file__', '?')}) "
                               f"has no class {name!r}") from None

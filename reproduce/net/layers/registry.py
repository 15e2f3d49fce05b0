"""The layer registry: Caffe layer type names → the PyTorch module that implements them.

Mirrors Caffe's ``LayerRegistry`` (``layer_factory.hpp``): each layer module registers its
class under the exact ``LayerParameter.type`` string(s) with ``@register("Convolution")``;
``layer_class`` looks a type up and, like Caffe's ``CreateLayer``, refuses unknown types —
here with an error naming the layer as well as the type.
"""
from __future__ import annotations

from typing import Callable, TypeVar

_REGISTRY: dict[str, type] = {}

T = TypeVar("T", bound=type)


class UnsupportedLayerError(ValueError):
    """A layer whose Caffe type has no implementation here."""


def register(*type_names: str) -> Callable[[T], T]:
    """Decorator registering a layer class (or a function building one, given the class's
    arguments) under one or more Caffe type names."""
    if not type_names:
        raise TypeError("register() needs at least one Caffe type name")

    def decorate(cls: T) -> T:
        for name in type_names:
            if name in _REGISTRY and _REGISTRY[name] is not cls:
                raise ValueError(f"Caffe layer type {name!r} is already registered "
                                 f"to {_REGISTRY[name].__qualname__}")
            _REGISTRY[name] = cls
        return cls

    return decorate


def layer_class(type_name: str, layer_name: str = "?") -> type:
    """The class implementing Caffe layer type ``type_name`` (for layer ``layer_name``)."""
    try:
        return _REGISTRY[type_name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise UnsupportedLayerError(
            f"layer {layer_name!r}: unsupported layer type {type_name!r} "
            f"(supported: {known})") from None


def registered_types() -> list[str]:
    """All registered Caffe type names, sorted."""
    return sorted(_REGISTRY)

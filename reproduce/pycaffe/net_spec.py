"""``caffe.net_spec``: ``NetSpec``, ``layers`` (``L``), ``params`` (``P``), ``to_proto``.

The project's ``reproduce.net.spec`` is already pycaffe's net_spec (``L.Convolution(bottom,
num_output=…)``, ``ntop``, ``in_place``, ``param=[dict(…)]``, automatic names); here the emitted
NetParameter is a ``caffe_pb2.NetParameter`` — from ``NetSpec.to_proto()``, ``to_proto(*tops)``
and ``top.to_proto()`` alike — so ``str(n.to_proto())`` is the prototxt text that scripts
write to ``train.prototxt``, as with pycaffe; a ``NetSpec`` also takes top-less layers
(``n.silence = L.Silence(n.x, ntop=0)``). Enum values from ``params`` are
held by name (``P.Pooling.MAX`` is ``"MAX"``), which the schema accepts wherever pycaffe's
numbers go. Values are checked against the Caffe schema when a net is emitted
(``reproduce.net.spec.SpecError`` names the layer and field).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

from reproduce.net import spec as _spec
from reproduce.net.spec import Layer as Function
from reproduce.net.spec import SpecError, params

from .proto import as_proto

__all__ = ["Function", "NetSpec", "SpecError", "Top", "layers", "params", "to_proto"]


class Top(_spec.Top):
    """A net_spec top whose ``to_proto()`` is a ``caffe_pb2.NetParameter``, as pycaffe's."""

    __slots__ = ()

    def to_proto(self, **net_fields: Any):
        return as_proto(_spec.to_proto(self, **net_fields))


class Layers(_spec.Layers):
    """``L.<Type>(*bottoms, **fields)``: the project's layers, their tops ``Top``s of this module."""

    def __getattr__(self, type_name: str):
        make = super().__getattr__(type_name)

        def make_layer(*bottoms, **fields):
            made = make(*bottoms, **fields)
            layer = made if isinstance(made, Function) else (
                made.layer if isinstance(made, _spec.Top) else made[0].layer)
            layer.tops = tuple(Top(layer, i) for i in range(len(layer.tops)))
            if layer.ntop == 0:
                return layer
            return layer.tops[0] if layer.ntop == 1 else layer.tops
        make_layer.__name__ = type_name
        return make_layer


layers = Layers()


def to_proto(*tops: Top, **net_fields: Any):
    """The NetParameter (a ``caffe_pb2.NetParameter``) of every layer ``tops`` need."""
    return as_proto(_spec.to_proto(*tops, **net_fields))


class NetSpec(_spec.NetSpec):
    """pycaffe's ``NetSpec``: assign tops as attributes; ``to_proto()`` names them so. A
    layer without tops (``L.Silence(x, ntop=0)``) may be assigned too; it is named so."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, Function):
            self.tops[name] = value
            return
        super().__setattr__(name, value)

    __setitem__ = __setattr__

    def to_proto(self, **net_fields: Any):
        names: dict = {}
        for name, value in self.tops.items():
            names.setdefault(value, name)   # assigned twice: the first name
        namer = _spec._Namer({v: n for v, n in names.items() if isinstance(v, _spec.Top)})
        namer.layer_names.update({v: n for v, n in names.items() if isinstance(v, Function)})
        emitted: OrderedDict = OrderedDict()
        for value in self.tops.values():
            if isinstance(value, _spec.Top):
                _spec._emit(value, namer, emitted)
            elif value not in emitted:
                for bottom in value.inputs:
                    _spec._emit(bottom, namer, emitted)
                bottoms = [emitted[b.layer].top[b.index] for b in value.inputs]
                emitted[value] = value.to_message(namer.layer(value), bottoms, [])
        return as_proto(_spec._net(emitted.values(), net_fields))

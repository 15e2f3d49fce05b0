"""``caffe.net_spec``: ``NetSpec``, ``layers`` (``L``), ``params`` (``P``), ``to_proto``.

The project's ``reproduce.net.spec`` is already pycaffe's net_spec (``L.Convolution(bottom,
num_output=…)``, ``ntop``, ``in_place``, ``param=[dict(…)]``, automatic names); here the emitted
NetParameter is a ``caffe_pb2.NetParameter``, so ``str(n.to_proto())`` is the prototxt text
that scripts write to ``train.prototxt``, as with pycaffe. Enum values from ``params`` are
held by name (``P.Pooling.MAX`` is ``"MAX"``), which the schema accepts wherever pycaffe's
numbers go. Values are checked against the Caffe schema when a net is emitted
(``reproduce.net.spec.SpecError`` names the layer and field).
"""
from __future__ import annotations

from typing import Any

from reproduce.net import spec as _spec
from reproduce.net.spec import Layer as Function
from reproduce.net.spec import SpecError, Top, layers, params

from .proto import as_proto

__all__ = ["Function", "NetSpec", "SpecError", "Top", "layers", "params", "to_proto"]


def to_proto(*tops: Top, **net_fields: Any):
    """The NetParameter (a ``caffe_pb2.NetParameter``) of every layer ``tops`` need."""
    return as_proto(_spec.to_proto(*tops, **net_fields))


class NetSpec(_spec.NetSpec):
    """pycaffe's ``NetSpec``: assign tops as attributes; ``to_proto()`` names them so."""

    def to_proto(self, **net_fields: Any):
        return as_proto(super().to_proto(**net_fields))

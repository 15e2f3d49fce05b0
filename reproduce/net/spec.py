"""Describe a net once in Python and emit it as a NetParameter — Caffe's ``net_spec.py``.

The same functional style as pycaffe's ``caffe.NetSpec`` / ``caffe.layers``::

    from reproduce.net.spec import NetSpec, layers as L, params as P

    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3, 64, 80]))
    n.conv1 = L.Convolution(n.data, num_output=4, kernel_size=3, pad=100,
                            param=[dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)])
    n.relu1 = L.ReLU(n.conv1, in_place=True)
    n.pool1 = L.Pooling(n.relu1, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    net = n.to_proto()          # a Message("NetParameter")

What it mirrors of ``net_spec.py``:

* ``L.<Type>(*bottoms, **fields)`` makes a layer; it returns its ``Top`` (one top), a tuple of
  tops (``ntop=k``) or the layer itself (``ntop=0``). ``in_place=True`` names the tops after
  the bottoms;
* keyword fields: a name ending in ``param`` (``param``, ``convolution_param``, ``loss_param``…)
  is a LayerParameter field; any other name goes into the layer type's own ``<type>_param``
  message when that message has such a field (``kernel_size`` of a Convolution lands in
  ``convolution_param``), and otherwise onto the LayerParameter (``loss_weight``, ``include``);
* dicts become messages, lists become repeated fields, a single value given for a repeated
  field becomes a one-element list; enum values are given by name (``"MAX"``; ``P.Pooling.MAX``
  is the same string);
* names: a layer takes the name of its first top; a top takes the attribute name it was
  assigned to in the ``NetSpec``, or an automatic ``<Type><k>`` name; layers are emitted in
  assignment order, each after the layers that compute its bottoms.

Unlike the Python protobuf messages of pycaffe, every value is checked against the Caffe
schema when the net is emitted: a field the message lacks, a float for an integer field, a
negative value for an unsigned one or an unknown enum name raises ``SpecError`` naming the
layer and the field. Float fields are rounded to float32 as protobuf stores them.
"""
from __future__ import annotations

import numbers
import struct
from collections import Counter, OrderedDict
from typing import Any, Iterable, Iterator

from reproduce.caffe.schema import ENUM_NAMES, ENUMS, MESSAGES, Field, Message

_INT_RANGES = {"int32": (-2**31, 2**31 - 1), "int64": (-2**63, 2**63 - 1),
               "uint32": (0, 2**32 - 1), "uint64": (0, 2**64 - 1)}


class SpecError(ValueError):
    """A layer description that does not fit the Caffe schema or the net's graph."""


# ----------------------------------------------------------------------------- assignment


def _layer_param_fields() -> dict[str, str]:
    """Layer type → its ``*_param`` field, from the schema: ``ConvolutionParameter`` ↔
    ``convolution_param`` gives ``"Convolution" → "convolution_param"`` (net_spec's
    ``param_name_dict``). Types without a message of their own (Deconvolution) are absent."""
    fields = MESSAGES["LayerParameter"].fields.values()
    return {f.type[:-len("Parameter")]: f.name for f in fields
            if f.name.endswith("_param") and f.type.endswith("Parameter")}


LAYER_PARAM_FIELDS = _layer_param_fields()


def assign(message: Message, name: str, value: Any, where: str = "") -> None:
    """Set field ``name`` of ``message`` from a Python value (net_spec's ``assign_proto``).

    Dicts fill messages, lists (and tuples) fill repeated fields, a lone value for a repeated
    field is a one-element list; repeated fields are appended to. ``where`` prefixes errors.
    """
    where = where or message.type_name
    f = message.descriptor.fields.get(name)
    if f is None:
        raise SpecError(f"{where}: {message.type_name} has no field {name!r}")
    if f.repeated:
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        for i, item in enumerate(items):
            if f.is_message:
                _fill(message.add(name), item, f"{where}.{name}[{i}]")
            else:
                getattr(message, name).append(_scalar(f, item, f"{where}.{name}[{i}]"))
    elif f.is_message:
        _fill(message.mutable(name), value, f"{where}.{name}")
    else:
        setattr(message, name, _scalar(f, value, f"{where}.{name}"))


def _fill(message: Message, value: Any, where: str) -> None:
    if isinstance(value, Message):
        if value.type_name != message.type_name:
            raise SpecError(f"{where}: needs a {message.type_name}, got a {value.type_name}")
        for f, item in value.copy().present_fields():
            setattr(message, f.name, item)
        return
    if not isinstance(value, dict):
        raise SpecError(f"{where}: a {message.type_name} is given as a dict, "
                        f"not {type(value).__name__} {value!r}")
    for key, item in value.items():
        assign(message, key, item, where)


def _scalar(f: Field, value: Any, where: str) -> Any:
    """``value`` as field ``f`` holds it, or SpecError (protobuf's type checks)."""
    if f.is_enum:
        return _enum_value(f, value, where)
    if f.type in _INT_RANGES:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise SpecError(f"{where}: {f.type} field needs an integer, got {value!r}")
        low, high = _INT_RANGES[f.type]
        if not low <= int(value) <= high:
            raise SpecError(f"{where}: {value} is out of range for a {f.type} field")
        return int(value)
    if f.type in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise SpecError(f"{where}: {f.type} field needs a number, got {value!r}")
        return _float32(float(value), where) if f.type == "float" else float(value)
    if f.type == "bool":
        if not isinstance(value, (bool, numbers.Integral)) or value not in (0, 1):
            raise SpecError(f"{where}: bool field needs True or False, got {value!r}")
        return bool(value)
    if f.type == "string":
        if not isinstance(value, str):
            raise SpecError(f"{where}: string field needs a str, got {value!r}")
        return value
    if not isinstance(value, (bytes, bytearray)):
        raise SpecError(f"{where}: bytes field needs bytes, got {value!r}")
    return bytes(value)


def _enum_value(f: Field, value: Any, where: str) -> str:
    names = ENUMS[f.type]
    if isinstance(value, str) and value in names:
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) \
            and int(value) in ENUM_NAMES[f.type]:
        return ENUM_NAMES[f.type][int(value)]
    raise SpecError(f"{where}: {value!r} is not a value of enum {f.type} "
                    f"(one of {', '.join(names)})")


def _float32(value: float, where: str) -> float:
    try:
        return struct.unpack("<f", struct.pack("<f", value))[0]
    except OverflowError:
        raise SpecError(f"{where}: {value!r} does not fit a float field") from None


# ----------------------------------------------------------------------------- the graph


class Top:
    """One output blob of a ``Layer`` (the ``index``-th of its tops)."""

    __slots__ = ("layer", "index")

    def __init__(self, layer: "Layer", index: int):
        self.layer, self.index = layer, index

    def to_proto(self, **net_fields: Any) -> Message:
        """The NetParameter of every layer needed to compute this top."""
        return to_proto(self, **net_fields)

    def __repr__(self) -> str:
        return f"Top({self.layer.type_name}, {self.index})"


class Layer:
    """One layer: its type, bottoms (``Top``s) and fields, not yet named.

    net_spec's ``Function``; ``ntop`` and ``in_place`` are taken out of the fields.
    """

    def __init__(self, type_name: str, inputs: Iterable[Top], fields: dict[str, Any]):
        self.type_name = type_name
        self.inputs = tuple(inputs)
        for i, bottom in enumerate(self.inputs):
            if not isinstance(bottom, Top):
                raise SpecError(f"{type_name} bottom {i} is not a Top (it is a "
                                f"{type(bottom).__name__}); pass the tops of other layers")
        fields = dict(fields)
        self.ntop = int(fields.pop("ntop", 1))
        self.in_place = bool(fields.pop("in_place", False))
        if self.in_place and self.ntop != len(self.inputs):
            raise SpecError(f"in-place {type_name} needs as many tops as bottoms "
                            f"({len(self.inputs)}), not {self.ntop}")
        self.fields = fields
        self.tops = tuple(Top(self, i) for i in range(self.ntop))

    def to_message(self, name: str, bottoms: list[str], tops: list[str]) -> Message:
        """This layer as a LayerParameter named ``name`` with the given blob names."""
        layer = Message("LayerParameter", name=name, type=self.type_name,
                        bottom=list(bottoms), top=list(tops))
        where = f"layer {name!r} ({self.type_name})"
        own = LAYER_PARAM_FIELDS.get(self.type_name)
        for key, value in self.fields.items():
            if key.endswith("param") or own is None \
                    or key not in MESSAGES[layer.descriptor.fields[own].type].fields:
                assign(layer, key, value, where)
            else:
                assign(layer.mutable(own), key, value, f"{where} {own}")
        return layer

    def __repr__(self) -> str:
        return f"Layer({self.type_name}, bottoms={len(self.inputs)}, tops={self.ntop})"


class _Namer:
    """Blob and layer names for one emission (net_spec's ``names``/``autonames``)."""

    def __init__(self, names: dict[Top, str]):
        self.top_names = dict(names)
        self.layer_names: dict[Layer, str] = {}
        self.counts: Counter = Counter()

    def top(self, top: Top) -> str:
        if top not in self.top_names:
            self.top_names[top] = self._auto(top.layer.type_name)
        return self.top_names[top]

    def layer(self, layer: Layer) -> str:
        if layer not in self.layer_names:
            self.layer_names[layer] = (self.top(layer.tops[0]) if layer.tops
                                       else self._auto(layer.type_name))
        return self.layer_names[layer]

    def _auto(self, type_name: str) -> str:
        self.counts[type_name] += 1
        return f"{type_name}{self.counts[type_name]}"


def _emit(top: Top, namer: _Namer, emitted: "OrderedDict[Layer, Message]") -> None:
    """Emit ``top``'s layer after the layers of its bottoms (depth first, as net_spec)."""
    stack: list[tuple[Layer, bool]] = [(top.layer, False)]
    while stack:  # iterative, so that deep nets do not hit Python's recursion limit
        layer, ready = stack.pop()
        if layer in emitted:
            continue
        if not ready:
            stack.append((layer, True))
            stack.extend((bottom.layer, False) for bottom in reversed(layer.inputs))
            continue
        bottoms = [emitted[b.layer].top[b.index] for b in layer.inputs]
        tops = list(bottoms) if layer.in_place else [namer.top(t) for t in layer.tops]
        emitted[layer] = layer.to_message(namer.layer(layer), bottoms, tops)


def _net(layers: Iterable[Message], net_fields: dict[str, Any]) -> Message:
    net = Message("NetParameter")
    for key, value in net_fields.items():
        assign(net, key, value, "NetParameter")
    net.layer = list(layers)
    return net


def to_proto(*tops: Top, **net_fields: Any) -> Message:
    """The NetParameter of every layer needed to compute ``tops``, with automatic names.

    ``net_fields`` sets NetParameter fields (``name``, ``force_backward``…).
    """
    namer, emitted = _Namer({}), OrderedDict()
    for top in tops:
        _emit(top, namer, emitted)
    return _net(emitted.values(), net_fields)


class NetSpec:
    """Named tops: assign ``n.<blob> = top`` (or ``n["blob"] = top``); ``to_proto()`` emits
    every layer needed for them, named after the attributes they were assigned to."""

    def __init__(self) -> None:
        object.__setattr__(self, "tops", OrderedDict())

    def __setattr__(self, name: str, value: Top) -> None:
        if not isinstance(value, Top):
            raise SpecError(f"NetSpec.{name} must be a Top, got {type(value).__name__}")
        self.tops[name] = value

    def __getattr__(self, name: str) -> Top:
        try:
            return self.tops[name]
        except KeyError:
            raise AttributeError(f"no top named {name!r} in this NetSpec") from None

    __setitem__ = __setattr__

    def __getitem__(self, name: str) -> Top:
        try:
            return self.tops[name]
        except KeyError:
            raise KeyError(f"no top named {name!r} in this NetSpec") from None

    def __contains__(self, name: str) -> bool:
        return name in self.tops

    def __iter__(self) -> Iterator[str]:
        return iter(self.tops)

    def to_proto(self, **net_fields: Any) -> Message:
        """The NetParameter: every layer needed for the assigned tops, in assignment order."""
        names: dict[Top, str] = {}
        for name, top in self.tops.items():
            names.setdefault(top, name)  # a top assigned twice keeps its first name
        namer, emitted = _Namer(names), OrderedDict()
        for top in self.tops.values():
            _emit(top, namer, emitted)
        return _net(emitted.values(), net_fields)


class Layers:
    """``layers.Convolution(bottom, **fields)`` → a ``Top`` (net_spec's ``layers``)."""

    def __getattr__(self, type_name: str):
        if type_name.startswith("_"):
            raise AttributeError(type_name)

        def make_layer(*bottoms: Top, **fields: Any):
            layer = Layer(type_name, bottoms, fields)
            if layer.ntop == 0:
                return layer
            return layer.tops[0] if layer.ntop == 1 else layer.tops
        make_layer.__name__ = type_name
        return make_layer


class _EnumValues:
    def __init__(self, message: str):
        self._message = message

    def __getattr__(self, value: str) -> str:
        prefix = self._message + "."
        for enum, names in ENUMS.items():
            if enum.startswith(prefix) and value in names:
                return value
        raise AttributeError(f"no enum value {value!r} in {self._message}")


class Params:
    """``params.Pooling.MAX`` → ``"MAX"`` (net_spec's ``params``; enums are held by name)."""

    def __getattr__(self, layer_type: str) -> _EnumValues:
        message = f"{layer_type}Parameter"
        if message not in MESSAGES:
            raise AttributeError(f"no message {message} in the Caffe schema")
        return _EnumValues(message)


layers = Layers()
params = Params()

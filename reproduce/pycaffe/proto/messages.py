"""``caffe_pb2``'s messages over the project's Caffe schema (``reproduce.caffe.schema``).

pycaffe's ``caffe.proto.caffe_pb2`` is protoc's Python output for caffe.proto. Here every
message of the schema is a class of the same name (``caffe_pb2.NetParameter()``,
``caffe_pb2.BlobProto(num=1)``), a ``reproduce.caffe.schema.Message`` that behaves as a
protobuf message does in Python:

* reading an unset message field gives a child that is attached to its parent, so
  ``param.shape.dim.extend([1, 3])`` or ``layer.convolution_param.num_output = 4`` set it (the
  child counts as present once it holds something, or after ``SetInParent``/``CopyFrom``);
* repeated fields are lists with protobuf's ``add(**fields)`` (message fields), ``extend``,
  ``append``; ``del field[:]`` clears;
* enum fields read as numbers (``layer.phase == caffe_pb2.TEST``) and accept numbers or names;
  enum values are class attributes (``caffe_pb2.PoolingParameter.MAX``) and the top-level
  ones module constants (``caffe_pb2.TRAIN``);
* ``SerializeToString``/``ParseFromString``/``MergeFromString`` (the project's wire codec),
  ``CopyFrom``, ``MergeFrom``, ``HasField``, ``ClearField``, ``Clear``, ``ListFields``,
  ``ByteSize``, ``IsInitialized``; ``str(message)`` is the text format (``text_format``).

Inside, values are held as the project holds them (enums by name), so ``as_plain`` hands a
message to the project's own readers and writers unchanged.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from reproduce.caffe import text, wire
from reproduce.caffe.schema import ENUM_NAMES, ENUMS, MESSAGES, Message

_SET = "\0set:"   # marks a message field made present while empty (SetInParent, CopyFrom)


class Repeated(list):
    """A repeated field (protobuf's RepeatedScalar/CompositeFieldContainer)."""

    __slots__ = ("_type",)

    def __init__(self, message_type: str | None, values=()):
        super().__init__(values)
        self._type = message_type

    def add(self, **fields: Any) -> "ProtoMessage":
        if self._type is None:
            raise AttributeError("add() is for repeated message fields; use append or extend")
        item = CLASSES[self._type](**fields)
        self.append(item)
        return item

    def __getitem__(self, index):
        item = super().__getitem__(index)
        if isinstance(index, slice):
            return [as_proto(i) if isinstance(i, Message) else i for i in item]
        return as_proto(item) if isinstance(item, Message) else item

    def __iter__(self):
        for item in list.__iter__(self):
            yield as_proto(item) if isinstance(item, Message) else item


class ProtoMessage(Message):
    """The base of every ``caffe_pb2`` message class (see the module docstring)."""

    __slots__ = ()
    _TYPE = ""

    def __init__(self, **fields: Any):
        Message.__init__(self, self._TYPE)
        for name, value in fields.items():
            setattr(self, name, value)

    # -- fields ----------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        f = self._field(name)
        values = self._values
        if f.repeated:
            value = values.get(name)
            if not isinstance(value, Repeated):
                items = [] if value is None else (value.tolist() if isinstance(value, np.ndarray)
                                                  else value)
                value = values[name] = Repeated(f.type if f.is_message else None, items)
            if f.is_enum:
                return [_enum_number(f.type, v) for v in value]
            return value
        if f.is_message:
            child = values.get(name)
            if child is None:
                child = values[name] = CLASSES[f.type]()
            return as_proto(child)
        value = Message.__getattr__(self, name)
        return _enum_number(f.type, value) if f.is_enum else value

    def __setattr__(self, name: str, value: Any) -> None:
        f = self._field(name)
        if f.is_message and not f.repeated:
            if not isinstance(value, Message) or value.type_name != f.type:
                raise AttributeError(f"{self._TYPE}.{name} is a {f.type} message field; "
                                     f"assign its fields or use CopyFrom")
            self._values[name] = value.copy()
            self._values[_SET + name] = True
            return
        if f.repeated:
            items = list(value.tolist() if isinstance(value, np.ndarray) else value)
            if f.is_enum:
                items = [_enum_name(f.type, v) for v in items]
            self._values[name] = Repeated(f.type if f.is_message else None, items)
            return
        if f.is_enum:
            value = _enum_name(f.type, value)
        self._values[name] = value

    def has(self, name: str) -> bool:
        f = self._field(name)
        if name not in self._values:
            return False
        value = self._values[name]
        if f.repeated:
            return len(value) > 0
        if f.is_message and not self._values.get(_SET + name):
            return any(True for _ in value.present_fields())
        return True

    def present_fields(self):
        names = [n for n in self._values if not n.startswith(_SET)]
        for f in sorted((self._desc.fields[n] for n in names), key=lambda f: f.number):
            if self.has(f.name):
                yield f, self._values[f.name]

    # -- protobuf's message API --------------------------------------------------------
    def HasField(self, name: str) -> bool:
        f = self._field(name)
        if f.repeated:
            raise ValueError(f"HasField is not for repeated field {name!r}")
        return self.has(name)

    def ClearField(self, name: str) -> None:
        self._field(name)
        self._values.pop(name, None)
        self._values.pop(_SET + name, None)

    def Clear(self) -> None:
        self._values.clear()

    def SetInParent(self) -> None:
        """Nothing to do: a child read from its parent is attached already (see ``has``)."""

    def ListFields(self) -> list:
        return [(f, getattr(self, f.name)) for f, _ in self.present_fields()]

    def CopyFrom(self, other: Message) -> None:
        self._check_type(other)
        if other is self:
            return
        self._values.clear()
        self.MergeFrom(other)

    def MergeFrom(self, other: Message) -> None:
        self._check_type(other)
        for f, value in list(other.present_fields()):
            if f.repeated:
                mine = getattr(self, f.name) if not f.is_enum else None
                items = value.tolist() if isinstance(value, np.ndarray) else list(value)
                if f.is_enum:
                    self._values[f.name] = Repeated(None, list(self._values.get(f.name, [])) + items)
                elif f.is_message:
                    mine.extend(as_proto(v.copy()) for v in items)
                else:
                    mine.extend(items)
            elif f.is_message:
                getattr(self, f.name).MergeFrom(value)
                self._values[_SET + f.name] = True
            else:
                self._values[f.name] = value

    def _check_type(self, other: Any) -> None:
        if not isinstance(other, Message) or other.type_name != self._TYPE:
            raise TypeError(f"expected a {self._TYPE}, got {type(other).__name__}")

    def SerializeToString(self) -> bytes:
        return wire.encode(self)

    def ParseFromString(self, data: bytes) -> int:
        self._values.clear()
        return self.MergeFromString(data)

    def MergeFromString(self, data: bytes) -> int:
        self.MergeFrom(wire.decode(bytes(data), self._TYPE))
        return len(data)

    def ByteSize(self) -> int:
        return wire.encoded_size(self)

    def IsInitialized(self) -> bool:
        return True   # caffe.proto has no required fields

    def __str__(self) -> str:
        return text.emit(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return Message.__eq__(as_plain(self), as_plain(other))

    __hash__ = None  # type: ignore[assignment]


def _enum_number(enum: str, value: Any) -> int:
    if isinstance(value, str):
        return ENUMS[enum][value]
    return int(value)


def _enum_name(enum: str, value: Any) -> str:
    if isinstance(value, str):
        if value not in ENUMS[enum]:
            raise ValueError(f"unknown {enum} value {value!r} (known: {', '.join(ENUMS[enum])})")
        return value
    try:
        return ENUM_NAMES[enum][int(value)]
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"unknown {enum} value {value!r} (known: {dict(ENUM_NAMES[enum])})") from None


def _make_class(name: str) -> type:
    namespace: dict[str, Any] = {"__slots__": (), "_TYPE": name, "__module__": "caffe_pb2",
                                 "__qualname__": name}
    prefix = name + "."
    for enum, values in ENUMS.items():
        if enum.startswith(prefix):
            namespace.update(values)
    return type(name, (ProtoMessage,), namespace)


CLASSES: dict[str, type] = {name: _make_class(name) for name in MESSAGES}
TOP_LEVEL_ENUMS: dict[str, int] = {value_name: number for enum, values in ENUMS.items()
                                   if "." not in enum for value_name, number in values.items()}


def as_proto(message: Message) -> ProtoMessage:
    """``message`` itself as its ``caffe_pb2`` class (no copy; children convert on access)."""
    if not isinstance(message, ProtoMessage):
        object.__setattr__(message, "__class__", CLASSES[message.type_name])
    return message


def as_plain(message: Message) -> Message:
    """A deep copy of ``message`` as the project's plain ``Message`` (for its readers and writers)."""
    out = Message(message.type_name)
    for f, value in message.present_fields():
        if f.is_message:
            out._values[f.name] = ([as_plain(v) for v in value] if f.repeated
                                   else as_plain(value))
        elif f.repeated:
            out._values[f.name] = value.copy() if isinstance(value, np.ndarray) else list(value)
        else:
            out._values[f.name] = value
    return out

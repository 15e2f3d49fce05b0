"""Caffe's protobuf schema as Python descriptors, and ``Message``, the value every format yields.

``MESSAGES[name]`` describes one caffe.proto message (its ``Field``s by name and by number);
``ENUMS[name]`` maps enum value names to numbers. Both come from the tables in
``proto_tables``. A ``Message`` behaves like a protobuf message read in Python:

* attribute access by caffe.proto field name; an unset optional field reads as its
  declared default (``Message("PoolingParameter").pool == "MAX"``), an unset message field
  reads as an empty message that is *not* attached (protobuf's read-only default instance);
* repeated fields are Python lists (packed numeric fields read from a binary file may be
  numpy arrays, zero-copy views of the file's bytes);
* enum values are held by name (``"MAX"``, ``"TRAIN"``, ``"CONVOLUTION"``);
* ``has(name)`` tells presence (a repeated field is present when non-empty);
* equality compares presence and values, as protobuf's ``==`` does.

A field marked ``extension`` in the tables is this project's, not Caffe's (see
``proto_tables``); ``project_extensions`` lists where a message sets one and
``refuse_project_extensions`` is the writers' guard.
"""
from __future__ import annotations

from dataclasses import dataclass, field as dc_field
from typing import Any, Iterator

import numpy as np

from . import proto_tables

SCALAR_TYPES = frozenset({"int32", "int64", "uint32", "uint64", "float", "double", "bool", "string", "bytes"})
_ZERO = {"int32": 0, "int64": 0, "uint32": 0, "uint64": 0, "float": 0.0, "double": 0.0,
         "bool": False, "string": "", "bytes": b""}


@dataclass(frozen=True)
class Field:
    name: str
    number: int
    type: str                 # scalar type name, enum name or message name
    repeated: bool = False
    packed: bool = False
    default: Any = None
    extension: bool = False   # the project's field, not Caffe's (proto_tables)
    fork: bool = False        # a Caffe fork's field at the fork's number (proto_tables)

    @property
    def is_message(self) -> bool:
        return self.type in MESSAGES

    @property
    def is_enum(self) -> bool:
        return self.type in ENUMS


@dataclass
class Descriptor:
    name: str
    fields: dict[str, Field] = dc_field(default_factory=dict)
    by_number: dict[int, Field] = dc_field(default_factory=dict)


def _parse_enums(text: str) -> dict[str, dict[str, int]]:
    enums: dict[str, dict[str, int]] = {}
    current = None
    for line in text.strip().splitlines():
        words = line.split()
        if not line.startswith(" "):
            current = enums.setdefault(words.pop(0), {})
        for word in words:
            name, value = word.split("=")
            current[name] = int(value)
    return enums


def _convert_default(type_: str, text: str) -> Any:
    if type_ in ("float", "double"):
        return float(text)
    if type_ == "bool":
        return text == "true"
    if type_ in ("string", "bytes") or type_ in ENUMS:
        return text if type_ != "bytes" else text.encode()
    return int(text)


def _parse_messages(text: str) -> dict[str, Descriptor]:
    messages: dict[str, Descriptor] = {}
    for block in text.strip().split("\n\n"):
        head, *lines = block.strip().splitlines()
        desc = Descriptor(head.strip())
        for line in lines:
            left, _, default = line.partition("=")
            number, name, *mods, type_ = left.split()
            unknown = set(mods) - {"repeated", "packed", "extension", "fork"}
            if unknown:
                raise ValueError(f"proto_tables: {desc.name}.{name}: unknown modifiers {sorted(unknown)}")
            repeated = "repeated" in mods or "packed" in mods
            f = Field(name, int(number), type_, repeated=repeated, packed="packed" in mods,
                      default=_convert_default(type_, default.strip()) if default else None,
                      extension="extension" in mods, fork="fork" in mods)
            desc.fields[name] = f
            if f.fork and f.number in desc.by_number:
                continue   # a fork's number that BVLC took later: FORK_NUMBERS_BY_TYPE
            desc.by_number[f.number] = f
        messages[desc.name] = desc
    return messages


ENUMS = _parse_enums(proto_tables.ENUMS)
MESSAGES = _parse_messages(proto_tables.MESSAGES)
FORK_NUMBERS_BY_TYPE = proto_tables.FORK_NUMBERS_BY_TYPE
ENUM_NAMES = {enum: {v: k for k, v in values.items()} for enum, values in ENUMS.items()}


def default_value(f: Field) -> Any:
    if f.default is not None:
        return f.default
    if f.is_enum:  # proto2: the first declared value
        return next(iter(ENUMS[f.type]))
    return _ZERO.get(f.type)


class Message:
    """One protobuf message of the Caffe schema (see the module docstring)."""

    __slots__ = ("_desc", "_values")

    def __init__(self, type_name: str, **fields: Any):
        try:
            desc = MESSAGES[type_name]
        except KeyError:
            raise KeyError(f"no message {type_name!r} in the Caffe schema") from None
        object.__setattr__(self, "_desc", desc)
        object.__setattr__(self, "_values", {})
        for name, value in fields.items():
            setattr(self, name, value)

    @property
    def type_name(self) -> str:
        return self._desc.name

    @property
    def descriptor(self) -> Descriptor:
        return self._desc

    def _field(self, name: str) -> Field:
        try:
            return self._desc.fields[name]
        except KeyError:
            raise AttributeError(f"{self._desc.name} has no field {name!r}") from None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        f = self._field(name)
        values = self._values
        if name in values:
            return values[name]
        if f.repeated:
            values[name] = []
            return values[name]
        if f.is_message:
            return Message(f.type)
        return default_value(f)

    def __setattr__(self, name: str, value: Any) -> None:
        f = self._field(name)
        if f.repeated and not isinstance(value, (list, np.ndarray)):
            value = list(value)
        self._values[name] = value

    def has(self, name: str) -> bool:
        f = self._field(name)
        if name not in self._values:
            return False
        return len(self._values[name]) > 0 if f.repeated else True

    def clear(self, name: str) -> None:
        self._field(name)
        self._values.pop(name, None)

    def mutable(self, name: str) -> "Message":
        """The message held in optional message field ``name``, attached (created if unset)."""
        f = self._field(name)
        if not f.is_message or f.repeated:
            raise TypeError(f"{self._desc.name}.{name} is not an optional message field")
        if name not in self._values:
            self._values[name] = Message(f.type)
        return self._values[name]

    def add(self, name: str, **fields: Any) -> "Message":
        """Append a new message to repeated message field ``name`` and return it."""
        f = self._field(name)
        if not f.is_message or not f.repeated:
            raise TypeError(f"{self._desc.name}.{name} is not a repeated message field")
        msg = Message(f.type, **fields)
        getattr(self, name).append(msg)
        return msg

    def present_fields(self) -> Iterator[tuple[Field, Any]]:
        """The set fields in field-number order (protobuf's ListFields order)."""
        for f in sorted((self._desc.fields[n] for n in self._values), key=lambda f: f.number):
            if self.has(f.name):
                yield f, self._values[f.name]

    def copy(self) -> "Message":
        """A deep copy (numpy arrays are copied too)."""
        out = Message(self._desc.name)
        for f, value in self.present_fields():
            out._values[f.name] = _copy_value(value)
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message) or other._desc is not self._desc:
            return NotImplemented
        mine = {f.name: v for f, v in self.present_fields()}
        theirs = {f.name: v for f, v in other.present_fields()}
        if mine.keys() != theirs.keys():
            return False
        return all(_values_equal(mine[k], theirs[k]) for k in mine)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        parts = ", ".join(f"{f.name}={_short(v)}" for f, v in self.present_fields())
        return f"{self._desc.name}({parts})"


class NotCaffeError(ValueError):
    """A message that sets one of the project's extension fields, which Caffe cannot read."""


def project_extensions(message: Message) -> list[tuple[str, str]]:
    """Where ``message`` sets a field of the project's (``extension`` in ``proto_tables``):
    ``(owner, field path)`` pairs, the owner being the enclosing layer (``"layer 'pool5'
    (Pooling)"``) or the message's type where no layer encloses it."""
    found: list[tuple[str, str]] = []

    def walk(msg: Message, owner: str, path: str) -> None:
        if msg.type_name in ("LayerParameter", "V1LayerParameter"):
            owner, path = f"layer {msg.name!r} ({msg.type})", ""
        for f, value in msg.present_fields():
            where = f"{path}{f.name}"
            if f.extension:
                found.append((owner, where))
            if f.is_message:
                for item in (value if f.repeated else (value,)):
                    walk(item, owner, where + ".")

    walk(message, message.type_name, "")
    return found


def refuse_project_extensions(message: Message, writing: str) -> None:
    """Raise ``NotCaffeError`` if ``message`` sets a project extension field: ``writing``
    names what was to be written ("a prototxt", "a caffemodel") for the message."""
    found = project_extensions(message)
    if not found:
        return
    owner, where = found[0]
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    raise NotCaffeError(
        f"{owner}: {where} is this project's extension, not a field of Caffe's schema "
        f"(reproduce.rarefy sets it on rarefied poolings, CVPR 2015 Sec. 3.2){more}; Caffe would "
        f"refuse it in a prototxt and silently drop it from a caffemodel, so {writing} is "
        f"not written — run this net with reproduce.Net, or write the net it was made from")


def _copy_value(value: Any) -> Any:
    if isinstance(value, Message):
        return value.copy()
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, list):
        return [_copy_value(v) for v in value]
    return value


def _values_equal(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_values_equal(x, y) for x, y in zip(a, b))
    return a == b


def _short(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"<array {value.dtype} x{value.size}>"
    if isinstance(value, list) and len(value) > 6:
        return f"[{', '.join(map(_short, value[:3]))}, … ({len(value)} items)]"
    return repr(value)

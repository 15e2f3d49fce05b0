"""Protobuf text format (prototxt) for the Caffe schema: ``parse``/``read`` and ``emit``.

Parsing mirrors ``google::protobuf::TextFormat::Parser`` as Caffe's ``ReadProtoFromTextFile``
uses it (default settings):

* ``field: value`` for scalars (the colon is required), ``field { … }``, ``field: { … }`` or
  ``field < … >`` for messages, an optional ``;`` or ``,`` after any field, and the list form
  ``field: [a, b]`` for repeated fields;
* a non-repeated field given twice is an error ("Non-repeated field … is specified multiple
  times"), as is a field the message type does not declare; nesting deeper than 100 messages
  is refused (protobuf's default recursion limit);
* integers are range-checked for their type (a negative value for a uint32 is an error; a
  float literal for an integer field is an error); float fields take decimal integers,
  ``inf``, ``nan``, ``-inf`` and become float32 as protobuf's ``SafeDoubleToFloat`` makes
  them; bools take ``true/false/True/False/t/f/1/0``; enums take a value name or number;
* adjacent string literals are concatenated; a ``string`` field whose bytes are not UTF-8 is
  refused (as pycaffe's Python protobuf refuses it).

Every malformed input raises ``PrototxtError`` naming the file and ``line:column``.
No field is ignored on purpose: an unknown field is always an error.

``emit`` writes what ``TextFormat::Print`` writes: fields in field-number order, two-space
indentation, ``name: "x"``, enums bare, ``field {`` … ``}``, strings C-escaped (non-ASCII as
octal bytes), floats in the shortest form that reads back to the same float32.
"""
from __future__ import annotations

import math
import os
import struct
from typing import Any

from .errors import PrototxtError
from .schema import ENUM_NAMES, ENUMS, Field, Message, refuse_project_extensions
from .tokenizer import END, FLOAT, IDENT, INTEGER, STRING, SYMBOL, Token, Tokenizer

MAX_DEPTH = 100  # protobuf TextFormat::Parser's default recursion limit

_INT_RANGES = {"int32": (-2**31, 2**31 - 1), "int64": (-2**63, 2**63 - 1),
               "uint32": (0, 2**32 - 1), "uint64": (0, 2**64 - 1)}
_BOOL_WORDS = {"true": True, "True": True, "t": True, "false": False, "False": False, "f": False}
_FLOAT_WORDS = {"inf": math.inf, "infinity": math.inf, "nan": math.nan}
_FLOAT32 = struct.Struct("<f")
_FLT_MAX = 3.4028234663852886e38
_CLOSING = {"{": "}", "<": ">"}

# Unknown fields that mean "this is an older format than the suite reads": a better hint.
_LEGACY_HINTS = {
    ("V1LayerParameter", "layer"): "this is a V0 net (layers { layer { … } }), which Caffe "
    "upgrades with UpgradeV0Net; V0 nets are not supported here — convert the file with "
    "Caffe's upgrade_net_proto_text first",
}


def parse(text: str | bytes, message_type: str = "NetParameter", path: str = "<string>") -> Message:
    """Parse protobuf text ``text`` as a ``message_type`` message of the Caffe schema."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        text = bytes(text).decode("utf-8", "surrogateescape")
    parser = _Parser(Tokenizer(text, os.fspath(path)))
    message = Message(message_type)
    parser.message_body(message, closing=None, depth=0)
    return message


def read(path: str | os.PathLike, message_type: str = "NetParameter") -> Message:
    """Read and parse the prototxt file at ``path``."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as err:
        raise PrototxtError(f"cannot read file: {err.strerror or err}", os.fspath(path)) from None
    return parse(data, message_type, os.fspath(path))


class _Parser:
    """Recursive descent over the tokens; one method per grammar rule."""

    def __init__(self, tokens: Tokenizer):
        self.tokens = tokens

    def error(self, message: str, token: Token) -> PrototxtError:
        return self.tokens.error(message, token.offset)

    def expect(self, symbol: str) -> Token:
        token = self.tokens.next()
        if token.kind != SYMBOL or token.text != symbol:
            raise self.error(f"expected '{symbol}' but found {_describe(token)}", token)
        return token

    def try_consume(self, symbol: str) -> bool:
        token = self.tokens.peek()
        if token.kind == SYMBOL and token.text == symbol:
            self.tokens.next()
            return True
        return False

    def message_body(self, message: Message, closing: str | None, depth: int) -> None:
        while True:
            token = self.tokens.peek()
            if closing is None and token.kind == END:
                return
            if closing is not None and token.kind == SYMBOL and token.text == closing:
                self.tokens.next()
                return
            is_closer = token.kind == SYMBOL and token.text in ("}", ">")
            if closing is not None and (token.kind == END or is_closer):  # END or a wrong closer
                raise self.error(f"expected '{closing}' but found {_describe(token)}", token)
            self.field(message, depth)

    def field(self, message: Message, depth: int) -> None:
        token = self.tokens.next()
        if token.kind != IDENT:
            raise self.error(f"expected a field name but found {_describe(token)}", token)
        type_name = message.type_name
        f = message.descriptor.fields.get(token.text)
        if f is None:
            hint = _LEGACY_HINTS.get((type_name, token.text))
            raise self.error(f'message type "{type_name}" has no field named "{token.text}"'
                             + (f"; {hint}" if hint else ""), token)
        if not f.repeated and message.has(f.name):
            raise self.error(f'non-repeated field "{f.name}" of {type_name} is specified '
                             "multiple times", token)
        if f.is_message:
            self.try_consume(":")  # optional before a message
            if f.repeated and self.try_consume("["):
                self.list_of(lambda: self.sub_message(message, f, depth))
            else:
                self.sub_message(message, f, depth)
        else:
            self.expect(":")
            if self.try_consume("["):
                if not f.repeated:
                    raise self.error(f'non-repeated field "{f.name}" of {type_name} cannot '
                                     "take a list of values", token)
                self.list_of(lambda: getattr(message, f.name).append(self.scalar(f)))
            elif f.repeated:
                getattr(message, f.name).append(self.scalar(f))
            else:
                setattr(message, f.name, self.scalar(f))
        if not self.try_consume(";"):
            self.try_consume(",")

    def list_of(self, parse_item) -> None:
        """The rest of ``[item, item, …]`` after the opening bracket (may be empty)."""
        if self.try_consume("]"):
            return
        while True:
            parse_item()
            if self.try_consume("]"):
                return
            self.expect(",")

    def sub_message(self, parent: Message, f: Field, depth: int) -> None:
        token = self.tokens.next()
        if token.kind != SYMBOL or token.text not in _CLOSING:
            raise self.error(f"expected '{{' to open message field \"{f.name}\" but found "
                             f"{_describe(token)}", token)
        if depth + 1 > MAX_DEPTH:
            raise self.error(f"messages nested deeper than {MAX_DEPTH} levels", token)
        child = parent.add(f.name) if f.repeated else parent.mutable(f.name)
        self.message_body(child, _CLOSING[token.text], depth + 1)

    def scalar(self, f: Field) -> Any:
        if f.type in _INT_RANGES:
            return self.integer(f)
        if f.type in ("float", "double"):
            value = self.floating(f)
            return _to_float32(value) if f.type == "float" else value
        if f.type == "bool":
            return self.boolean(f)
        if f.type in ("string", "bytes"):
            return self.string(f)
        if f.is_enum:
            return self.enum(f)
        raise AssertionError(f"unhandled field type {f.type}")  # schema tables are closed

    def signed_token(self) -> tuple[bool, Token]:
        negative = self.try_consume("-")
        return negative, self.tokens.next()

    def integer(self, f: Field) -> int:
        negative, token = self.signed_token()
        if token.kind != INTEGER:
            raise self.error(f'expected an integer for {f.type} field "{f.name}" but found '
                             f"{_describe(token)}", token)
        low, high = _INT_RANGES[f.type]
        magnitude = _integer_value(token.text)
        value = None if magnitude is None else (-magnitude if negative else magnitude)
        if value is None or not low <= value <= high:
            shown = ("-" if negative else "") + token.text
            what = "negative value" if negative and low == 0 else "value"
            raise self.error(f'{what} {shown} is out of range for {f.type} field "{f.name}"',
                             token)
        return value

    def floating(self, f: Field) -> float:
        negative, token = self.signed_token()
        if token.kind == INTEGER:
            if len(token.text) > 1 and token.text[0] == "0":  # protobuf 3: decimal only here
                raise self.error(f'expected a decimal number for {f.type} field "{f.name}" but '
                                 f"found '{token.text}'", token)
            value = float(token.text)  # beyond uint64 protobuf also reads the digits as a float
        elif token.kind == FLOAT:
            value = float(token.text.rstrip("fF"))
        elif token.kind == IDENT and token.text.lower() in _FLOAT_WORDS:
            value = _FLOAT_WORDS[token.text.lower()]
        else:
            raise self.error(f'expected a number for {f.type} field "{f.name}" but found '
                             f"{_describe(token)}", token)
        return -value if negative else value

    def boolean(self, f: Field) -> bool:
        token = self.tokens.next()
        if token.kind == IDENT and token.text in _BOOL_WORDS:
            return _BOOL_WORDS[token.text]
        if token.kind == INTEGER and _integer_value(token.text) in (0, 1):
            return _integer_value(token.text) == 1
        raise self.error(f'expected true or false for bool field "{f.name}" but found '
                         f"{_describe(token)}", token)

    def string(self, f: Field) -> str | bytes:
        token = self.tokens.next()
        if token.kind != STRING:
            raise self.error(f'expected a quoted string for field "{f.name}" but found '
                             f"{_describe(token)}", token)
        chunks = [token.value]
        while self.tokens.peek().kind == STRING:
            chunks.append(self.tokens.next().value)
        data = b"".join(chunks)
        if f.type == "bytes":
            return data
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise self.error(f'string field "{f.name}" is not valid UTF-8 '
                             f"(byte {err.start} of the value)", token) from None

    def enum(self, f: Field) -> str:
        names = ENUMS[f.type]
        if self.tokens.peek().kind == IDENT:
            token = self.tokens.next()
            if token.text in names:
                return token.text
            shown = token.text
        else:
            negative, token = self.signed_token()
            if token.kind != INTEGER:
                raise self.error(f'expected a value of enum {f.type} for field "{f.name}" but '
                                 f"found {_describe(token)}", token)
            number = _integer_value(token.text)
            number = -number if negative and number is not None else number
            if number in ENUM_NAMES[f.type]:
                return ENUM_NAMES[f.type][number]
            shown = ("-" if negative else "") + token.text
        raise self.error(f'unknown value {shown} for enum field "{f.name}" '
                         f"({f.type}: {', '.join(names)})", token)


def _describe(token: Token) -> str:
    if token.kind == END:
        return "end of file"
    text = token.text if len(token.text) <= 40 else token.text[:37] + "..."
    return f"'{text}'"


def _integer_value(text: str) -> int | None:
    """The value of an INTEGER token (decimal, 0x hex or leading-zero octal); None if huge."""
    if text[:2] in ("0x", "0X"):
        return int(text[2:], 16)
    if len(text) > 1 and text[0] == "0":
        return int(text[1:], 8)
    if len(text) > 20:  # beyond any 64-bit value (and Python's int() digit limit)
        return None
    return int(text)


def _to_float32(value: float) -> float:
    """protobuf's ``io::SafeDoubleToFloat``: beyond ±FLT_MAX is ±inf, else round to nearest.

    Note the edge this keeps: a double just above FLT_MAX that IEEE rounding would bring
    down to FLT_MAX (e.g. the text 3.4028235e38) becomes inf, as it does in Caffe.
    """
    if value > _FLT_MAX:
        return math.inf
    if value < -_FLT_MAX:
        return -math.inf
    return _FLOAT32.unpack(_FLOAT32.pack(value))[0]


# ----------------------------------------------------------------------------- emitting


def emit(message: Message) -> str:
    """The protobuf text format of ``message``, as Caffe's ``WriteProtoToTextFile`` writes it.

    A message that sets one of the project's extension fields (``proto_tables``) is refused
    with ``NotCaffeError`` naming the layer: Caffe could not read the text."""
    refuse_project_extensions(message, "a prototxt")
    lines: list[str] = []
    _emit_fields(message, "", lines)
    return "".join(line + "\n" for line in lines)


def _emit_fields(message: Message, indent: str, lines: list[str]) -> None:
    for f, value in message.present_fields():
        values = value if f.repeated else (value,)
        for item in values:
            if f.is_message:
                lines.append(f"{indent}{f.name} {{")
                _emit_fields(item, indent + "  ", lines)
                lines.append(f"{indent}}}")
            else:
                lines.append(f"{indent}{f.name}: {format_scalar(f, item)}")


def format_scalar(f: Field, value: Any) -> str:
    """One scalar value of field ``f`` in text format."""
    if f.type == "float":
        return format_float(value, "float32")
    if f.type == "double":
        return format_float(value, "float64")
    if f.type == "bool":
        return "true" if value else "false"
    if f.type == "string":
        return _quote(value.encode("utf-8"))
    if f.type == "bytes":
        return _quote(bytes(value))
    if f.is_enum:
        if isinstance(value, str):
            return value
        return ENUM_NAMES[f.type].get(int(value), str(int(value)))
    return str(int(value))


def format_float(value: float, precision: str = "float32") -> str:
    """The shortest ``%g`` text that ``parse`` reads back as the same float32 (or float64)."""
    value = float(value)
    if precision == "float32":
        value = _to_float32(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    narrow = _to_float32 if precision == "float32" else float
    for digits in range(1, 18):
        text = "%.*g" % (digits, value)
        if narrow(float(text)) == value:
            return text
    return repr(value)  # unreachable: 17 significant digits always round-trip a double


def _quote(data: bytes) -> str:
    """A double-quoted string with protobuf's CEscape: \\n \\r \\t \\" \\' \\\\, else octal."""
    out = []
    for byte in data:
        char = chr(byte)
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append("\\%03o" % byte)
    return '"' + "".join(out) + '"'


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", '"': '\\"', "'": "\\'", "\\": "\\\\"}

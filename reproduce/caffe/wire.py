"""Protobuf binary (wire) format for the Caffe schema: ``decode`` bytes into a ``Message``, ``encode`` back.

This is what protobuf's C++ runtime does when Caffe reads a ``.caffemodel``
(``ReadProtoFromBinaryFile``) and writes one (``SerializeToOstream``), driven by the tables
in ``schema.MESSAGES`` instead of generated code:

* decoding accepts both encodings of a repeated number, packed and one-tag-per-value, and
  concatenates repeated occurrences; a repeated optional scalar keeps its last value; a
  repeated optional message is merged into the first, as protobuf does;
* fields of unknown number are skipped by their wire type (groups included) and dropped;
  they are not kept for re-encoding;
* ``float``/``double`` fields declared ``packed`` (the blob data) become numpy arrays that are
  zero-copy views of the input buffer (writable when the buffer is), other repeated fields
  become lists;
* encoding writes fields in field-number order, ``packed`` fields packed, as protobuf's
  generated serializer does, so the layout of Caffe's own files is reproduced; large float
  arrays are written straight from their memory (``write_message``).

Stricter than protobuf, because every case is a corrupt or foreign file rather than schema
evolution (each raises ``WireFormatError`` naming the byte offset and the field being read):
a known field with the wrong wire type, an enum number the schema does not declare (protobuf
would silently drop it and the default would take its place), an integer out of its
declared range (protobuf would truncate it), a string that is not UTF-8, and nesting deeper
than ``MAX_DEPTH``.
"""
from __future__ import annotations

import io
import os
import struct
from typing import Any, BinaryIO, Callable

import numpy as np

from .errors import WireFormatError
from .schema import ENUM_NAMES, ENUMS, FORK_NUMBERS_BY_TYPE, Field, Message, refuse_project_extensions

VARINT, FIXED64, LENGTH_DELIMITED, START_GROUP, END_GROUP, FIXED32 = 0, 1, 2, 3, 4, 5
MAX_DEPTH = 64          # nested messages (and groups); protobuf's own default limit is 100
MAX_VARINT_BYTES = 10

_INT_RANGES = {
    "int32": (-(1 << 31), (1 << 31) - 1), "int64": (-(1 << 63), (1 << 63) - 1),
    "uint32": (0, (1 << 32) - 1), "uint64": (0, (1 << 64) - 1),
}
_FLOAT_DTYPES = {"float": np.dtype("<f4"), "double": np.dtype("<f8")}
_SHORT_PACKED_VARINTS = 32   # bytes; longer packed varint runs are decoded with numpy
_RUN_PROBE = 64              # first probe length when collecting a run of unpacked floats
_PROGRESS_STEP = 16 << 20    # bytes of a packed array written between progress reports


def wire_type_of(f: Field) -> int:
    """The wire type of one value of field ``f`` when not packed."""
    if f.type == "float":
        return FIXED32
    if f.type == "double":
        return FIXED64
    if f.is_message or f.type in ("string", "bytes"):
        return LENGTH_DELIMITED
    return VARINT


# --------------------------------------------------------------------------- decoding


def decode(buf: bytes | bytearray | memoryview | np.ndarray, message_type: str,
           path: str | os.PathLike = "<bytes>", offset: int = 0, end: int | None = None,
           positions: dict[int, int] | None = None,
           unknown: dict[tuple[str, int], int] | None = None) -> Message:
    """Decode ``buf[offset:end]`` as one ``message_type`` message.

    Errors raise ``WireFormatError`` with ``path`` and the absolute byte offset in ``buf``.
    When ``positions`` is a dict, it receives ``id(message) -> byte offset`` of the start of
    every message decoded (the top one included), for error messages about content. When
    ``unknown`` is a dict, it receives ``(message type, field number) -> byte offset`` of the
    first occurrence of every skipped field.
    """
    view = memoryview(buf).cast("B") if not isinstance(buf, memoryview) or buf.format != "B" else buf
    end = len(view) if end is None else end
    if not 0 <= offset <= end <= len(view):
        raise ValueError(f"bad range [{offset}, {end}) for a buffer of {len(view)} bytes")
    msg = Message(message_type)
    _Decoder(view, os.fspath(path), message_type, positions, unknown).message(msg, offset, end, 0)
    return msg


class _Decoder:
    def __init__(self, buf: memoryview, path: str, message_type: str,
                 positions: dict[int, int] | None, unknown: dict[tuple[str, int], int] | None):
        self.buf = buf
        self.path = path
        self.positions = positions
        self.unknown = unknown
        self.trail = [message_type]   # "NetParameter", "layer[3]", "blobs[0]", "data" while reading

    # -- errors

    def fail(self, offset: int, problem: str) -> WireFormatError:
        return WireFormatError(f"{'.'.join(self.trail)}: {problem}", self.path, f"byte {offset}")

    # -- primitives

    def varint(self, pos: int, end: int) -> tuple[int, int]:
        buf = self.buf
        if pos >= end:
            raise self.fail(pos, "truncated varint")
        b = buf[pos]
        if b < 0x80:
            return b, pos + 1
        result, shift, p = b & 0x7F, 7, pos + 1
        while True:
            if p >= end:
                raise self.fail(pos, "truncated varint")
            b = buf[p]
            p += 1
            if shift == 63 and b > 1:
                raise self.fail(pos, "varint does not fit in 64 bits")
            result |= (b & 0x7F) << shift
            if b < 0x80:
                return result, p
            shift += 7

    def length(self, pos: int, end: int) -> tuple[int, int]:
        """A length prefix, checked against what is left of the enclosing message."""
        n, p = self.varint(pos, end)
        if n > end - p:
            raise self.fail(pos, f"length {n} runs past the end of the enclosing message "
                                 f"({end - p} bytes left)")
        return n, p

    # -- messages

    def message(self, msg: Message, pos: int, end: int, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise self.fail(pos, f"messages nested deeper than {MAX_DEPTH} levels")
        if self.positions is not None:
            self.positions.setdefault(id(msg), pos)
        by_number = msg.descriptor.by_number
        values = msg._values
        chunks: dict[str, list[np.ndarray]] = {}   # packed float fields, joined once at the end
        buf = self.buf
        while pos < end:
            tag_pos = pos
            tag = buf[pos]
            if tag < 0x80:
                pos += 1
            else:
                tag, pos = self.varint(pos, end)
                if tag > 0xFFFFFFFF:
                    raise self.fail(tag_pos, f"field tag {tag} does not fit in 32 bits")
            number, wire = tag >> 3, tag & 7
            if number == 0:
                raise self.fail(tag_pos, "field number 0 (not a protobuf message here)")
            if wire == END_GROUP:
                raise self.fail(tag_pos, f"end-group tag (field {number}) outside a group")
            if wire > FIXED32:
                raise self.fail(tag_pos, f"invalid wire type {wire} (field {number})")
            f = by_number.get(number)
            fork = FORK_NUMBERS_BY_TYPE.get(values.get("type"))   # type: field 2, read first
            if fork and (msg.type_name, number) in fork:
                f = msg.descriptor.fields[fork[msg.type_name, number]]
            if f is None:
                if self.unknown is not None:
                    self.unknown.setdefault((msg.type_name, number), tag_pos)
                pos = self.skip(number, wire, pos, end, depth, tag_pos)
                continue
            self.trail.append(f.name)
            try:
                pos = self.field(msg, values, chunks, f, wire, tag_pos, pos, end, depth)
            finally:
                self.trail.pop()
        if pos != end:  # cannot happen: every step checks against end
            raise self.fail(pos, "message overruns its length")
        for name, parts in chunks.items():
            values[name] = parts[0] if len(parts) == 1 else np.concatenate(parts)

    def field(self, msg: Message, values: dict, chunks: dict, f: Field, wire: int,
              tag_pos: int, pos: int, end: int, depth: int) -> int:
        expected = wire_type_of(f)
        if f.is_message:
            if wire != LENGTH_DELIMITED:
                raise self.fail(tag_pos, f"wire type {wire} for a message field (expected 2)")
            n, pos = self.length(pos, end)
            if f.repeated:
                items = values.setdefault(f.name, [])
                sub = Message(f.type)
                self.trail[-1] += f"[{len(items)}]"
                self.message(sub, pos, pos + n, depth + 1)
                items.append(sub)
            else:
                sub = values.get(f.name)
                if sub is None:
                    sub = Message(f.type)
                self.message(sub, pos, pos + n, depth + 1)
                values[f.name] = sub
            return pos + n
        if f.type in ("string", "bytes"):
            if wire != LENGTH_DELIMITED:
                raise self.fail(tag_pos, f"wire type {wire} for a {f.type} field (expected 2)")
            n, pos = self.length(pos, end)
            raw = bytes(self.buf[pos:pos + n])
            if f.type == "string":
                try:
                    value: Any = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise self.fail(pos + err.start, "string is not valid UTF-8") from None
            else:
                value = raw
            if f.repeated:
                values.setdefault(f.name, []).append(value)
            else:
                values[f.name] = value
            return pos + n
        # numbers: float, double, integers, bool, enums
        if wire == LENGTH_DELIMITED and f.repeated:
            n, pos = self.length(pos, end)
            self.add_numbers(values, chunks, f, self.packed(f, pos, pos + n))
            return pos + n
        if wire != expected:
            raise self.fail(tag_pos, f"wire type {wire} for a {f.type} field (expected {expected}"
                                     f"{' or 2, packed' if f.repeated else ''})")
        if f.type in _FLOAT_DTYPES:
            dtype = _FLOAT_DTYPES[f.type]
            if end - pos < dtype.itemsize:
                raise self.fail(pos, f"truncated {f.type} ({end - pos} bytes left)")
            if f.repeated:
                array, pos = self.float_run(dtype, tag_pos, pos, end)
                self.add_numbers(values, chunks, f, array)
                return pos
            values[f.name] = struct.unpack_from("<f" if f.type == "float" else "<d", self.buf, pos)[0]
            return pos + dtype.itemsize
        raw, new_pos = self.varint(pos, end)
        value = self.integer(f, raw, pos)
        if f.repeated:
            values.setdefault(f.name, []).append(value)
        else:
            values[f.name] = value
        return new_pos

    def add_numbers(self, values: dict, chunks: dict, f: Field, numbers: np.ndarray | list) -> None:
        if f.packed and f.type in _FLOAT_DTYPES:
            parts = chunks.get(f.name)
            if parts is None:
                parts = chunks[f.name] = []
                previous = values.get(f.name)   # a merged message already holding values
                if previous is not None and len(previous):
                    parts.append(np.asarray(previous, _FLOAT_DTYPES[f.type]))
            parts.append(numbers)
        else:
            items = values.setdefault(f.name, [])
            items.extend(numbers.tolist() if isinstance(numbers, np.ndarray) else numbers)

    def float_run(self, dtype: np.dtype, tag_pos: int, pos: int, end: int) -> tuple[np.ndarray, int]:
        """Consecutive unpacked values of one float field (same tag, then the value), at once."""
        tag = bytes(self.buf[tag_pos:pos])
        stride = len(tag) + dtype.itemsize
        count, probe = 1, _RUN_PROBE
        while True:  # probe ever longer stretches, so a run costs time in proportion to its length
            start = tag_pos + count * stride
            n = min(probe, (end - start) // stride)
            if n <= 0:
                break
            rows = np.frombuffer(self.buf, np.uint8, n * stride, start).reshape(n, stride)
            same = (rows[:, :len(tag)] == np.frombuffer(tag, np.uint8)).all(axis=1)
            matched = n if same.all() else int(np.argmin(same))
            count += matched
            if matched < n:
                break
            probe *= 2
        rows = np.frombuffer(self.buf, np.uint8, count * stride, tag_pos).reshape(count, stride)
        array = np.ascontiguousarray(rows[:, len(tag):]).view(dtype).reshape(count)
        return array, tag_pos + count * stride

    def packed(self, f: Field, start: int, end: int) -> np.ndarray | list:
        if f.type in _FLOAT_DTYPES:
            dtype = _FLOAT_DTYPES[f.type]
            if (end - start) % dtype.itemsize:
                raise self.fail(start, f"packed {f.type} length {end - start} is not a multiple "
                                       f"of {dtype.itemsize}")
            return np.frombuffer(self.buf, dtype, (end - start) // dtype.itemsize, start)
        if end - start > _SHORT_PACKED_VARINTS:
            values = self.packed_varints(f, start, end)
            if values is not None:
                return values
        out, pos = [], start   # short runs, and malformed ones (this loop finds the first error)
        while pos < end:
            raw, next_pos = self.varint(pos, end)
            out.append(self.integer(f, raw, pos))
            pos = next_pos
        return out

    def packed_varints(self, f: Field, start: int, end: int) -> list | None:
        """A long packed run of varints, decoded with numpy; None if it is malformed."""
        b = np.frombuffer(self.buf, np.uint8, end - start, start)
        stops = np.flatnonzero(b < 0x80)
        if len(stops) == 0 or stops[-1] != len(b) - 1:
            return None
        starts = np.concatenate(([0], stops[:-1] + 1))
        lengths = stops - starts + 1
        if lengths.max() > MAX_VARINT_BYTES or np.any((lengths == MAX_VARINT_BYTES) & (b[stops] > 1)):
            return None
        digit = np.arange(len(b)) - np.repeat(starts, lengths)
        parts = (b & 0x7F).astype(np.uint64) << (7 * digit).astype(np.uint64)
        raw = np.add.reduceat(parts, starts)   # bit ranges are disjoint: the sum is the OR
        return self.integers(f, raw, start + starts)

    def integers(self, f: Field, raw: np.ndarray, offsets: np.ndarray) -> list:
        """Vectorised ``integer`` for a packed run (``raw`` as uint64)."""
        if f.type == "bool":
            return (raw != 0).tolist()
        if f.type == "uint64":
            return raw.tolist()
        if f.is_enum:   # few values, and the first bad one must be the one reported
            return [self.integer(f, r, o) for r, o in zip(raw.tolist(), offsets.tolist())]
        if f.type == "uint32":
            values = raw
            bad = np.flatnonzero(raw > np.uint64(0xFFFFFFFF))
        else:
            values = raw.view(np.int64)
            low, high = _INT_RANGES[f.type]
            bad = np.flatnonzero((values < low) | (values > high))
        if len(bad):
            i = int(bad[0])
            self.integer(f, int(raw[i]), int(offsets[i]))   # raises the precise error
        return values.tolist()

    def integer(self, f: Field, raw: int, pos: int) -> Any:
        """One varint as the value of field ``f`` (int, bool or enum name), range-checked."""
        if f.type == "bool":
            return raw != 0
        if f.type in ("uint32", "uint64"):
            low, high = _INT_RANGES[f.type]
            if raw > high:
                raise self.fail(pos, f"{raw} is out of range for {f.type}")
            return raw
        value = raw - (1 << 64) if raw >= 1 << 63 else raw
        kind = "int64" if f.type == "int64" else "int32"
        low, high = _INT_RANGES[kind]
        if not low <= value <= high:
            raise self.fail(pos, f"{value} is out of range for {kind}")
        if f.is_enum:
            try:
                return ENUM_NAMES[f.type][value]
            except KeyError:
                raise self.fail(pos, f"{value} is not a value of enum {f.type}") from None
        return value

    # -- unknown fields

    def skip(self, number: int, wire: int, pos: int, end: int, depth: int, tag_pos: int) -> int:
        if wire == VARINT:
            return self.varint(pos, end)[1]
        if wire == FIXED64 or wire == FIXED32:
            size = 8 if wire == FIXED64 else 4
            if end - pos < size:
                raise self.fail(pos, f"truncated fixed{size * 8} value of unknown field {number}")
            return pos + size
        if wire == LENGTH_DELIMITED:
            n, pos = self.length(pos, end)
            return pos + n
        if wire == START_GROUP:
            return self.skip_group(number, pos, end, depth + 1)
        raise self.fail(tag_pos, f"invalid wire type {wire} (field {number})")

    def skip_group(self, number: int, pos: int, end: int, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise self.fail(pos, f"groups nested deeper than {MAX_DEPTH} levels")
        while pos < end:
            tag_pos = pos
            tag, pos = self.varint(pos, end)
            if tag > 0xFFFFFFFF or tag >> 3 == 0:
                raise self.fail(tag_pos, f"invalid field tag {tag} inside group {number}")
            if tag & 7 == END_GROUP:
                if tag >> 3 != number:
                    raise self.fail(tag_pos, f"end-group tag of field {tag >> 3} closes group {number}")
                return pos
            pos = self.skip(tag >> 3, tag & 7, pos, end, depth, tag_pos)
        raise self.fail(pos, f"group {number} is not closed")


# --------------------------------------------------------------------------- encoding


def encode(msg: Message) -> bytes:
    """The wire-format bytes of ``msg`` (fields in number order, ``packed`` fields packed)."""
    out = io.BytesIO()
    write_message(msg, out)
    return out.getvalue()


def encoded_size(msg: Message) -> int:
    """The number of bytes ``encode(msg)`` produces, without producing them."""
    return _Encoder().size(msg)


def write_message(msg: Message, stream: BinaryIO,
                  progress: Callable[[int], None] | None = None) -> int:
    """Write ``msg`` to ``stream``; large arrays go from their own memory, without a copy.

    ``progress(n)`` is called with the bytes written so far after each packed field (every
    16 MiB within a large one).
    Returns the number of bytes written. A message that sets one of the project's extension
    fields (``proto_tables``) is refused with ``NotCaffeError`` naming the layer, before a
    byte is written: Caffe would drop the field without a word.
    """
    refuse_project_extensions(msg, "a binary protobuf (caffemodel)")
    encoder = _Encoder()
    total = encoder.size(msg)
    encoder.write(msg, stream, progress)
    if encoder.written != total:  # a bug in sizes, not in the input
        raise AssertionError(f"wrote {encoder.written} bytes, computed {total}")
    return total


def varint_bytes(value: int) -> bytes:
    """``value`` (negative: as 64-bit two's complement, like protobuf) as a varint."""
    value &= 0xFFFFFFFFFFFFFFFF
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _tag(number: int, wire: int) -> bytes:
    return varint_bytes(number << 3 | wire)


class _Encoder:
    """Two passes: ``size`` fills a cache of message sizes, ``write`` streams the bytes."""

    def __init__(self) -> None:
        self.sizes: dict[int, int] = {}   # by id: every message stays reachable from the root
        self.written = 0

    def size(self, msg: Message) -> int:
        cached = self.sizes.get(id(msg))
        if cached is not None:
            return cached
        total = 0
        for f, value in msg.present_fields():
            total += self.field_size(msg, f, value)
        self.sizes[id(msg)] = total
        return total

    def field_size(self, msg: Message, f: Field, value: Any) -> int:
        if f.is_message:
            tag = len(_tag(f.number, LENGTH_DELIMITED))
            total = 0
            for sub in (value if f.repeated else [value]):
                n = self.size(sub)
                total += tag + len(varint_bytes(n)) + n
            return total
        if f.repeated and f.packed:
            if f.type in _FLOAT_DTYPES:
                payload_size = np.size(value) * _FLOAT_DTYPES[f.type].itemsize
            else:
                payload_size = len(self.varint_payload(msg, f, value))
            if payload_size == 0:   # protobuf writes nothing for an empty packed field
                return 0
            return len(_tag(f.number, LENGTH_DELIMITED)) + len(varint_bytes(payload_size)) + payload_size
        return sum(len(chunk) for chunk in self.scalar_chunks(msg, f, value))

    def write(self, msg: Message, stream: BinaryIO, progress: Callable[[int], None] | None) -> None:
        for f, value in msg.present_fields():
            if f.is_message:
                for sub in (value if f.repeated else [value]):
                    self.emit(stream, _tag(f.number, LENGTH_DELIMITED) + varint_bytes(self.size(sub)))
                    self.write(sub, stream, progress)
            elif f.repeated and f.packed:
                if f.type in _FLOAT_DTYPES:
                    with np.errstate(over="ignore"):
                        array = np.ascontiguousarray(value, dtype=_FLOAT_DTYPES[f.type]).reshape(-1)
                    payload: bytes | memoryview = memoryview(array.view(np.uint8))
                else:
                    payload = self.varint_payload(msg, f, value)
                if len(payload):
                    self.emit(stream, _tag(f.number, LENGTH_DELIMITED) + varint_bytes(len(payload)))
                    for start in range(0, len(payload), _PROGRESS_STEP):
                        self.emit(stream, payload[start:start + _PROGRESS_STEP])
                        if progress is not None:
                            progress(self.written)
            else:
                for chunk in self.scalar_chunks(msg, f, value):
                    self.emit(stream, chunk)

    def emit(self, stream: BinaryIO, data: bytes | memoryview) -> None:
        if len(data):
            stream.write(data)
            self.written += len(data)

    def varint_payload(self, msg: Message, f: Field, value: Any) -> bytes:
        return b"".join(varint_bytes(self.integer(msg, f, v)) for v in value)

    def scalar_chunks(self, msg: Message, f: Field, value: Any) -> list[bytes]:
        tag = _tag(f.number, wire_type_of(f))
        items = value if f.repeated else [value]
        if f.type in _FLOAT_DTYPES:
            with np.errstate(over="ignore"):
                data = np.asarray(items, dtype=_FLOAT_DTYPES[f.type]).reshape(-1)
            size = data.dtype.itemsize
            raw = data.tobytes()
            return [tag + raw[i:i + size] for i in range(0, len(raw), size)]
        if f.type == "string":
            out = []
            for s in items:
                if not isinstance(s, str):
                    raise TypeError(f"{msg.type_name}.{f.name}: expected str, got {type(s).__name__}")
                data = s.encode("utf-8")
                out.append(tag + varint_bytes(len(data)) + data)
            return out
        if f.type == "bytes":
            return [tag + varint_bytes(len(b)) + bytes(b) for b in items]
        return [tag + varint_bytes(self.integer(msg, f, v)) for v in items]

    @staticmethod
    def integer(msg: Message, f: Field, value: Any) -> int:
        """The integer to put on the wire for ``value`` of field ``f`` (enum names resolved)."""
        where = f"{msg.type_name}.{f.name}"
        if f.is_enum:
            if isinstance(value, str):
                try:
                    return ENUMS[f.type][value]
                except KeyError:
                    raise ValueError(f"{where}: {value!r} is not a value of enum {f.type}") from None
            if int(value) not in ENUM_NAMES[f.type]:
                raise ValueError(f"{where}: {value!r} is not a value of enum {f.type}")
            return int(value)
        if f.type == "bool":
            return 1 if value else 0
        if isinstance(value, (float, np.floating)) and not float(value).is_integer():
            raise ValueError(f"{where}: {value!r} is not an integer")
        number = int(value)
        low, high = _INT_RANGES[f.type]
        if not low <= number <= high:
            raise ValueError(f"{where}: {number} is out of range for {f.type}")
        return number

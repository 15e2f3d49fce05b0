"""Fuzzing the wire format: any bytes decode or raise WireFormatError; any Message survives encode → decode."""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from reproduce.caffe import wire
from reproduce.caffe.errors import WireFormatError
from reproduce.caffe.schema import ENUMS, MESSAGES, Field, Message, NotCaffeError, project_extensions
from reproduce.caffe.weights import caffemodel_message

FUZZ = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


def _small_net() -> Message:
    net = caffemodel_message({"conv1": [np.linspace(-1, 1, 24, dtype=np.float32).reshape(2, 3, 2, 2),
                                        np.array([0.5, -0.5], np.float32)],
                              "fc": [np.arange(6, dtype=np.float32).reshape(3, 2)]})
    net.name = "tiny"
    conv, fc = net.layer
    conv.type, conv.bottom, conv.top = "Convolution", ["data"], ["conv1"]
    conv.add("param", lr_mult=1.0, decay_mult=1.0)
    conv.phase = "TEST"
    p = conv.mutable("convolution_param")
    p.num_output, p.pad, p.kernel_size = 2, [1], [2]
    fc.type, fc.bottom, fc.top, fc.loss_weight = "InnerProduct", ["conv1"], ["fc"], [1.0]
    fc.mutable("inner_product_param").num_output = 3
    net.input_dim = [1, 3, 4, -1]
    return net


SMALL_NET = _small_net()
SMALL_BYTES = wire.encode(SMALL_NET)


def decode_or_wire_error(data: bytes, message_type: str = "NetParameter") -> Message | None:
    """Decode; a WireFormatError is fine if it names the file and a byte inside the input."""
    try:
        return wire.decode(data, message_type, "fuzz.caffemodel")
    except WireFormatError as err:
        assert err.path == "fuzz.caffemodel" and err.where.startswith("byte ")
        assert 0 <= int(err.where[len("byte "):]) <= len(data)
        assert str(err).startswith("fuzz.caffemodel: byte ")
        return None


def test_small_net_round_trips():
    assert wire.decode(SMALL_BYTES, "NetParameter") == SMALL_NET


@FUZZ
@given(st.binary(max_size=400), st.sampled_from(sorted(MESSAGES)))
def test_random_bytes_decode_or_raise_wire_format_error(data, message_type):
    decode_or_wire_error(data, message_type)


_MUTATION = st.tuples(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]),
                      st.integers(0, len(SMALL_BYTES) - 1), st.integers(0, 255))


@FUZZ
@given(st.lists(_MUTATION, min_size=1, max_size=6))
def test_mutated_real_net_decodes_or_raises_wire_format_error(mutations):
    data = bytearray(SMALL_BYTES)
    for op, at, value in mutations:
        at = min(at, max(len(data) - 1, 0))
        if op == "flip" and data:
            data[at] ^= 1 << (value % 8)
        elif op == "set" and data:
            data[at] = value
        elif op == "insert":
            data[at:at] = bytes([value])
        elif op == "delete" and data:
            del data[at]
        elif op == "truncate":
            del data[at:]
    decoded = decode_or_wire_error(bytes(data))
    if decoded is not None and project_extensions(decoded):   # not Caffe's: never written
        with pytest.raises(NotCaffeError, match="extension"):
            wire.encode(decoded)
    elif decoded is not None:   # whatever decoded must encode and decode to itself
        assert wire.decode(wire.encode(decoded), "NetParameter") == decoded


# --------------------------------------------------------------------------- random messages

_INTS = {"int32": st.integers(-2**31, 2**31 - 1), "int64": st.integers(-2**63, 2**63 - 1),
         "uint32": st.integers(0, 2**32 - 1), "uint64": st.integers(0, 2**64 - 1)}
_FLOAT32 = st.floats(width=32, allow_nan=False)


def _scalar(f: Field) -> st.SearchStrategy:
    if f.type in _INTS:
        return _INTS[f.type]
    if f.type == "float":
        return _FLOAT32
    if f.type == "double":
        return st.floats(allow_nan=False)
    if f.type == "bool":
        return st.booleans()
    if f.type == "string":
        return st.text(max_size=12)
    if f.type == "bytes":
        return st.binary(max_size=12)
    return st.sampled_from(sorted(ENUMS[f.type]))


def draw_message(data: st.DataObject, type_name: str, depth: int) -> Message:
    desc = MESSAGES[type_name]
    # a fork's field at a number BVLC later gave another field (DeepLab's interp_param, 143 =
    # input_param) is told apart by the layer's type alone, so it round-trips only on its own
    # type (tests/test_fork_layers.py); random messages leave it out
    fields = [f for f in desc.fields.values() if (depth > 0 or not f.is_message) and not f.extension
              and not (f.fork and desc.by_number.get(f.number) is not f)]
    chosen = data.draw(st.lists(st.sampled_from(fields), max_size=5, unique=True)) if fields else []
    msg = Message(type_name)
    for f in chosen:
        if f.is_message:
            count = data.draw(st.integers(0, 2)) if f.repeated else 1
            subs = [draw_message(data, f.type, depth - 1) for _ in range(count)]
            setattr(msg, f.name, subs if f.repeated else subs[0])
        elif f.repeated and f.packed and f.type in ("float", "double"):
            dtype = np.float32 if f.type == "float" else np.float64
            elements = _FLOAT32 if f.type == "float" else st.floats(allow_nan=False)
            setattr(msg, f.name, data.draw(arrays(dtype, st.integers(0, 40), elements=elements)))
        elif f.repeated:
            setattr(msg, f.name, data.draw(st.lists(_scalar(f), max_size=12 if f.packed else 3)))
        else:
            setattr(msg, f.name, data.draw(_scalar(f)))
    return msg


@FUZZ
@given(st.data(), st.sampled_from(sorted(MESSAGES)))
def test_random_messages_survive_encode_decode(data, type_name):
    msg = draw_message(data, type_name, depth=3)
    encoded = wire.encode(msg)
    assert wire.encoded_size(msg) == len(encoded)
    decoded = wire.decode(encoded, type_name)
    assert decoded == msg
    assert wire.encode(decoded) == encoded


@FUZZ
@given(st.lists(st.integers(-2**63, 2**63 - 1), max_size=60))
def test_long_and_short_packed_varint_paths_agree(dims):
    shape = Message("BlobShape", dim=dims)
    encoded = wire.encode(shape)
    assert wire.decode(encoded, "BlobShape").dim == dims


@contextmanager
def packed_varint_threshold(value: int):
    original = wire._SHORT_PACKED_VARINTS
    wire._SHORT_PACKED_VARINTS = value
    try:
        yield
    finally:
        wire._SHORT_PACKED_VARINTS = original


@FUZZ
@given(st.binary(min_size=33, max_size=120), st.sampled_from([
    ("BlobShape", 1), ("ConvolutionParameter", 3), ("NetParameter", 4), ("V1LayerParameter", 1002),
    ("LayerParameter", 11)]))
def test_long_packed_varints_decode_or_fail_as_the_short_path_does(payload, field):
    # int64 dim, uint32 pad, int32 input_dim, enum blob_share_mode, bool propagate_down: all packed
    type_name, number = field
    data = wire.varint_bytes(number << 3 | 2) + wire.varint_bytes(len(payload)) + payload
    outcomes = []
    for threshold in (0, 10**9):   # numpy path, then the per-varint loop
        with packed_varint_threshold(threshold):
            try:
                outcomes.append(("ok", wire.decode(data, type_name)))
            except WireFormatError as err:
                outcomes.append(("error", err.where, err.message))
    assert outcomes[0] == outcomes[1]


_PIECE = st.one_of(
    st.tuples(st.just("unpacked"), st.lists(_FLOAT32, min_size=1, max_size=80)),
    st.tuples(st.just("packed"), st.lists(_FLOAT32, max_size=20)),
    st.tuples(st.just("num"), st.integers(0, 2**31 - 1)),
)


@FUZZ
@given(st.lists(_PIECE, max_size=8))
def test_interleaved_unpacked_and_packed_floats_are_joined_in_order(pieces):
    data, expected, num = bytearray(), [], None
    for kind, value in pieces:
        if kind == "num":
            data += b"\x08" + wire.varint_bytes(value)
            num = value
            continue
        floats = np.array(value, np.float32)
        expected.extend(floats.tolist())
        if kind == "unpacked":
            data += b"".join(b"\x2d" + v.tobytes() for v in floats)
        elif len(floats):
            data += b"\x2a" + wire.varint_bytes(floats.nbytes) + floats.tobytes()
    blob = wire.decode(bytes(data), "BlobProto")
    assert np.array_equal(np.asarray(blob.data, np.float32), np.array(expected, np.float32))
    assert blob.num == (num if num is not None else 0)

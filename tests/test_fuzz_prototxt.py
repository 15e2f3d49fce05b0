"""Property-based fuzzing of the prototxt parser and emitter (hypothesis).

(a) Arbitrary text, token soups and mutations of the upstream prototxts either parse or raise
    ``PrototxtError`` with a sane line:column — never another exception, never slowly; what
    does parse survives emit → parse unchanged.
(b) Random messages built from the Caffe schema (extreme numbers, strings full of quotes,
    backslashes, control and non-ASCII characters) survive emit → parse unchanged.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reproduce.caffe import Message, PrototxtError, emit, parse
from reproduce.caffe.schema import ENUMS, MESSAGES, NotCaffeError, project_extensions

FUZZ = settings(max_examples=200, deadline=1000,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SOURCES = ("voc-fcn8s/train.prototxt", "voc-fcn8s/deploy.prototxt", "voc-fcn8s/solver.prototxt",
           "voc-fcn-alexnet/val.prototxt")


@lru_cache(maxsize=None)
def _source(root: str, name: str) -> str:
    return (Path(root) / name).read_text()


def _message_type(name: str) -> str:
    return "SolverParameter" if "solver" in name else "NetParameter"


def _parse_or_reject(text: str | bytes, message_type: str = "NetParameter") -> Message | None:
    """Parse; a rejection must be a PrototxtError pointing inside the text."""
    try:
        message = parse(text, message_type, path="fuzz.prototxt")
    except PrototxtError as err:
        match = re.fullmatch(r"line (\d+):(\d+)", err.where)
        assert match, f"error place {err.where!r} is not line:column"
        if isinstance(text, bytes):
            text = text.decode("utf-8", "surrogateescape")
        lines = text.split("\n")
        line, column = int(match[1]), int(match[2])
        assert 1 <= line <= len(lines) and 1 <= column <= len(lines[line - 1]) + 1
        assert str(err).startswith(f"fuzz.prototxt:{line}:{column}: ")
        return None
    if project_extensions(message):   # the project's own fields: parsed, never written for Caffe
        with pytest.raises(NotCaffeError, match="extension"):
            emit(message)
        return message
    again = parse(emit(message), message_type)
    assert again == message
    return message


# ------------------------------------------------------------------ (a) hostile text

TOKENS = ["layer", "layers", "name", "type", "top", "bottom", "param", "lr_mult", "input_dim",
          "convolution_param", "pad", "pooling_param", "pool", "MAX", "AVE", "crop_param",
          "offset", "loss_param", "normalize", "true", "t", "0", "1", "-", "-1", "4294967296",
          "0x1F", "010", "09", "1e-10", "1e", ".5", "5.", "1f", "inf", "nan", "{", "}", "<", ">",
          "[", "]", ":", ";", ",", '"x"', "'y'", '"\\', '"\\x"', '"\\777"', '"\\u12"', "#",
          "\n", " ", "\t", '"', "'", "\\", "é", "\x00", "input_param", "shape", "dim",
          "python_param", "param_str", "include", "phase", "TRAIN"]


@FUZZ
@given(st.text(max_size=300))
def test_random_text(text):
    _parse_or_reject(text)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(data):
    _parse_or_reject(data)


@FUZZ
@given(st.lists(st.sampled_from(TOKENS), max_size=60), st.sampled_from(["", " ", "\n"]))
def test_token_soup(tokens, separator):
    _parse_or_reject(separator.join(tokens))


@st.composite
def _mutations(draw):
    name = draw(st.sampled_from(SOURCES))
    edits = draw(st.lists(st.tuples(st.sampled_from(["insert", "delete", "replace"]),
                                    st.floats(0, 1), st.integers(1, 8),
                                    st.text(min_size=1, max_size=4) | st.sampled_from(TOKENS)),
                          min_size=1, max_size=4))
    return name, edits


def _mutate(text: str, edits) -> str:
    for kind, where, length, insert in edits:
        at = int(where * len(text))
        if kind == "insert":
            text = text[:at] + insert + text[at:]
        elif kind == "delete":
            text = text[:at] + text[at + length:]
        else:
            text = text[:at] + insert + text[at + len(insert):]
    return text


@settings(FUZZ, max_examples=150)
@given(_mutations())
def test_mutated_upstream_prototxts(upstream, mutation):
    name, edits = mutation
    _parse_or_reject(_mutate(_source(str(upstream), name), edits), _message_type(name))


# ------------------------------------------------------------------ (b) random messages

_INT_BOUNDS = {"int32": 31, "int64": 63}
SPECIAL_TEXT = st.text(st.sampled_from('"\'\\\n\t\r\x00\x7f é€😀#{}:<>[] ab'), max_size=12)


def _scalars(type_name: str):
    if type_name in _INT_BOUNDS:
        bits = _INT_BOUNDS[type_name]
        return st.integers(-2**bits, 2**bits - 1)
    if type_name in ("uint32", "uint64"):
        return st.integers(0, 2**(32 if type_name == "uint32" else 64) - 1)
    if type_name == "float":
        return st.floats(width=32, allow_nan=False)
    if type_name == "double":
        return st.floats(allow_nan=False)
    if type_name == "bool":
        return st.booleans()
    if type_name == "string":
        return st.text(max_size=12) | SPECIAL_TEXT
    if type_name == "bytes":
        return st.binary(max_size=12)
    return st.sampled_from(list(ENUMS[type_name]))


@st.composite
def messages(draw, type_name: str, depth: int = 0):
    fields = [f for f in MESSAGES[type_name].fields.values() if not f.extension]
    if depth >= 3:
        fields = [f for f in fields if not f.is_message]
    chosen = draw(st.lists(st.sampled_from(fields), max_size=5 if depth else 8, unique=True)) \
        if fields else []
    message = Message(type_name)
    for f in chosen:
        values = messages(f.type, depth + 1) if f.is_message else _scalars(f.type)
        if f.repeated:
            setattr(message, f.name, draw(st.lists(values, min_size=1, max_size=3)))
        else:
            setattr(message, f.name, draw(values))
    return message


@FUZZ
@given(st.sampled_from(["NetParameter", "LayerParameter", "SolverParameter", "BlobProto"])
       .flatmap(messages))
def test_random_messages_round_trip(message):
    text = emit(message)
    again = parse(text, message.type_name)
    assert again == message
    assert emit(again) == text

"""``google.protobuf.text_format`` for the ``caffe_pb2`` messages (``Merge``, ``Parse``,
``MessageToString``, ``PrintMessage``), on the project's prototxt parser and emitter.

``text_format.Merge(open("solver.prototxt").read(), caffe_pb2.SolverParameter())`` is how
pycaffe scripts read prototxts; the real protobuf module does not know these message classes,
so such scripts use ``caffe.proto.text_format`` (or this module) instead. Parse errors are
``reproduce.caffe.errors.CaffeFormatError`` with line and column.
"""
from __future__ import annotations

from reproduce.caffe import text

from .messages import ProtoMessage


def Merge(text_data: str | bytes, message: ProtoMessage, **_: object) -> ProtoMessage:
    """Parse ``text_data`` into ``message``, merging with what it holds; returns it."""
    message.MergeFrom(text.parse(text_data, message.type_name))
    return message


def Parse(text_data: str | bytes, message: ProtoMessage, **_: object) -> ProtoMessage:
    """Like ``Merge``, after clearing ``message``."""
    message.Clear()
    return Merge(text_data, message)


def MessageToString(message: ProtoMessage, **_: object) -> str:
    return text.emit(message)


def PrintMessage(message: ProtoMessage, out, **_: object) -> None:
    out.write(text.emit(message))

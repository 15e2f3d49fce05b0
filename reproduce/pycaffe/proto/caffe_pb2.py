"""``caffe.proto.caffe_pb2``: one class per message of caffe.proto, and the top-level enum
values as constants (``TRAIN``, ``TEST``), over the project's schema (see ``proto``)."""
from __future__ import annotations

from .messages import CLASSES, TOP_LEVEL_ENUMS

globals().update(CLASSES)
globals().update(TOP_LEVEL_ENUMS)

__all__ = sorted(CLASSES) + sorted(TOP_LEVEL_ENUMS)

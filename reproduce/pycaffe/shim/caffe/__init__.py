"""``import caffe`` resolving to ``reproduce.pycaffe`` (pycaffe on PyTorch).

``python -m reproduce pycaffe --path`` prints the folder holding this package; put it on
``PYTHONPATH`` and an unmodified ``import caffe`` (``caffe.io``, ``caffe.proto.caffe_pb2``,
``caffe.net_spec``, ``caffe.coord_map``, ``caffe.classifier``, ``caffe.detector``,
``caffe.draw``, ``from caffe import layers as L, params as P``) is this
project's port. It shadows a real Caffe installed elsewhere on the path.

Importing it sends the solver's Caffe-style log lines to stderr, as glog does under pycaffe.
The module registers ``reproduce.pycaffe`` itself, and each of its public submodules, under
the ``caffe`` names in ``sys.modules``, so both names give the same objects (one
``caffe_pb2.NetParameter`` class, one ``caffe.Layer``).
"""
import sys
from pathlib import Path

try:
    import reproduce  # noqa: F401
except ImportError:   # the shim folder on PYTHONPATH, the project not installed: its root
    sys.path.insert(0, str(Path(__file__).resolve().parents[4]))

import reproduce.pycaffe as _pycaffe
from reproduce.pycaffe import classifier as _classifier
from reproduce.pycaffe import coord_map as _coord_map
from reproduce.pycaffe import detector as _detector
from reproduce.pycaffe import draw as _draw
from reproduce.pycaffe import io as _io
from reproduce.pycaffe import net_spec as _net_spec
from reproduce.pycaffe import proto as _proto
from reproduce.pycaffe.proto import caffe_pb2 as _caffe_pb2
from reproduce.pycaffe.proto import text_format as _text_format

from reproduce.pycaffe.mode import log_to_stderr as _log_to_stderr

_log_to_stderr()   # glog's lines on stderr, as pycaffe scripts print them
_text_format.install_in_protobuf()   # legacy scripts' google.protobuf.text_format on caffe_pb2

sys.modules.update({
    "caffe": _pycaffe,
    "caffe.io": _io,
    "caffe.proto": _proto,
    "caffe.proto.caffe_pb2": _caffe_pb2,
    "caffe.proto.text_format": _text_format,
    "caffe.net_spec": _net_spec,
    "caffe.coord_map": _coord_map,
    "caffe.classifier": _classifier,
    "caffe.detector": _detector,
    "caffe.draw": _draw,
    "caffe.pycaffe": _pycaffe,
    "caffe._caffe": _pycaffe,
})

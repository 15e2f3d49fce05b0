"""Caffe's file formats without Caffe: prototxt, binary caffemodel, HDF5 caffemodel.

Imports no torch, so the formats can be read, written and fuzzed on their own.
"""
from .errors import CaffeFormatError, PrototxtError, UpgradeError, WeightsError, WireFormatError
from .schema import Message
from .text import emit, parse, read
from .upgrade import read_net, read_solver, upgrade_net, upgrade_solver

__all__ = [
    "CaffeFormatError", "PrototxtError", "UpgradeError", "WeightsError", "WireFormatError",
    "Message", "emit", "parse", "read", "read_net", "read_solver", "upgrade_net", "upgrade_solver",
]

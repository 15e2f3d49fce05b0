"""Caffe's file formats without Caffe: prototxt, binary caffemodel, HDF5 caffemodel.

Imports no torch, so the formats can be read, written and fuzzed on their own.
"""
from .errors import CaffeFormatError, PrototxtError, UpgradeError, WeightsError, WireFormatError
from .schema import Message, NotCaffeError
from .text import emit, parse, read
from .upgrade import read_net, read_solver, upgrade_net, upgrade_solver
from .weights import read_caffemodel, read_hdf5, read_weights, write_caffemodel, write_hdf5
from .wire import decode, encode

__all__ = [
    "CaffeFormatError", "PrototxtError", "UpgradeError", "WeightsError", "WireFormatError", "NotCaffeError",
    "Message", "emit", "parse", "read", "read_net", "read_solver", "upgrade_net", "upgrade_solver",
    "read_caffemodel", "read_hdf5", "read_weights", "write_caffemodel", "write_hdf5", "decode", "encode",
]

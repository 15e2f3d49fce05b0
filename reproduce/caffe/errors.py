"""The exceptions every Caffe format reader raises: one type per format, all ``CaffeFormatError``.

Caffe itself aborts with a glog ``CHECK`` failure on bad input; here each malformed file
raises exactly one of these, naming the file (``path``) and the place in it (``where``:
``"line 12:5"`` for text, ``"byte 1234"`` for binary), so a caller can catch
``CaffeFormatError`` and report it without a traceback.
"""
from __future__ import annotations

import os


class CaffeFormatError(Exception):
    """A file (or string) that is not valid for the Caffe format being read.

    ``str(err)`` reads ``"net.prototxt:12:5: expected '}' but found end of file"`` for a line
    position, ``"net.caffemodel: byte 1234: truncated varint"`` for a byte offset, and
    ``"net.prototxt: message"`` when there is no place to name.
    """

    def __init__(self, message: str, path: str | os.PathLike = "<string>", where: str = ""):
        self.path = os.fspath(path) if path is not None else "<string>"
        self.where = where
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.where.startswith("line "):
            return f"{self.path}:{self.where[len('line '):]}: {self.message}"
        if self.where:
            return f"{self.path}: {self.where}: {self.message}"
        return f"{self.path}: {self.message}"

    def __reduce__(self):  # keep pickling (multiprocessing, pytest-xdist) working
        return (type(self), (self.message, self.path, self.where))


class PrototxtError(CaffeFormatError):
    """Malformed protobuf text format, or text that does not fit the Caffe schema."""


class WireFormatError(CaffeFormatError):
    """Malformed protobuf binary (wire) format."""


class WeightsError(CaffeFormatError):
    """A weights file (binary or HDF5 caffemodel) whose content does not fit the net."""


class UpgradeError(CaffeFormatError):
    """A legacy net or solver that Caffe itself refuses to upgrade."""

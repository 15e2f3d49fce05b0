"""What Caffe's data layers read: ``Datum`` records in LMDB/LevelDB, images, mean files.

Caffe-facing and torch-free. ``open_db(source, backend)`` opens a database as Caffe's ``db::GetDB``
does — LMDB through the ``lmdb`` package, LevelDB through ``plyvel`` — and refuses in one line,
naming the package, when it is not installed. ``RecordCursor`` walks the records in key order
(the order of Caffe's ``Cursor``), wrapping to the first after the last ("Restarting data
prefetching from start"), and knows its position so that a snapshot can resume it.
``datum_array`` turns a ``Datum`` into the ``C×H×W`` array Caffe's transformer reads: raw bytes
(uint8), ``float_data`` (float32) or, when ``encoded``, an image decoded as OpenCV's
``imdecode`` does (BGR; colour forced or kept, as ``DecodeDatumToCVMat``/``…Native``).
``read_mean_file`` reads a ``binaryproto`` mean (a ``BlobProto``).
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from . import wire
from .errors import WireFormatError
from .schema import Message


class DataSourceError(ValueError):
    """A data layer's source that cannot be read as Caffe would read it."""


def _needs(package: str, pip_name: str, what: str):
    try:
        return __import__(package)
    except ImportError:
        raise DataSourceError(f"{what} needs the {pip_name!r} package: pip install {pip_name} "
                              f"(or pip install 'reproduce[data]')") from None


class RecordCursor:
    """The records of one LMDB or LevelDB database in key order (see the module docstring)."""

    def __init__(self, source: str | os.PathLike, backend: str, owner: str = "?"):
        self.source, self.backend, self.owner = os.fspath(source), backend, owner
        what = f"{backend} source {self.source}"
        if not Path(self.source).exists():
            raise DataSourceError(f"{what}: no such database (relative sources are taken from the "
                                  f"working directory, as Caffe does)")
        if backend == "LMDB":
            lmdb = _needs("lmdb", "lmdb", what)
            self._env = _lmdb_env(lmdb, self.source, what)
            with self._env.begin() as txn:
                self.count = int(txn.stat()["entries"])
        elif backend == "LEVELDB":
            plyvel = _needs("plyvel", "plyvel", what)
            try:
                self._db = plyvel.DB(self.source, create_if_missing=False)
            except plyvel.Error as err:
                raise DataSourceError(f"{what}: cannot open: {err}") from None
            self.count = sum(1 for _ in self._db.iterator(include_value=False))
        else:
            raise DataSourceError(f"{what}: unknown backend")
        if self.count == 0:
            raise DataSourceError(f"{what}: the database holds no records")
        self.position = 0
        self._iter = None

    def _fresh(self):
        if self.backend == "LMDB":
            txn = self._env.begin(buffers=False)
            cursor = txn.cursor()
            cursor.first()
            return iter(cursor)
        return self._db.iterator()

    def rewind(self) -> None:
        """Back to the first record; the next read opens a fresh transaction (in its thread)."""
        self.position, self._iter = 0, None

    def seek(self, position: int) -> None:
        """Move to record ``position`` (modulo the count)."""
        self.position = int(position) % self.count
        self._iter = self._fresh()
        for _ in range(self.position):
            next(self._iter)

    def next(self) -> tuple[bytes, bytes]:
        """The current record's ``(key, value)``; moves on, wrapping after the last."""
        if self._iter is None:
            self.seek(self.position)
        key, value = next(self._iter)
        self.position += 1
        if self.position == self.count:
            self.position = 0
            self._iter = self._fresh()
        return bytes(key), bytes(value)


_ENVS: dict = {}   # one lmdb Environment per database and process (lmdb allows no second)
_ENVS_LOCK = threading.Lock()


def _lmdb_env(lmdb, source: str, what: str):
    key = os.path.realpath(source)
    with _ENVS_LOCK:
        if key not in _ENVS:
            try:
                _ENVS[key] = lmdb.open(source, readonly=True, lock=False, readahead=False,
                                       subdir=Path(source).is_dir(), max_readers=126)
            except lmdb.Error as err:
                raise DataSourceError(f"{what}: cannot open: {err}") from None
        return _ENVS[key]


def decode_datum(value: bytes, where: str) -> Message:
    try:
        return wire.decode(value, "Datum", path=where)
    except WireFormatError as err:
        raise DataSourceError(f"{where}: not a Caffe Datum ({err})") from None


def datum_array(datum: Message, where: str, force_color: bool = False,
                force_gray: bool = False) -> np.ndarray:
    """The ``C×H×W`` values of ``datum`` (uint8 or float32), as Caffe's transformer reads them."""
    if datum.encoded:
        cv2 = _needs("cv2", "opencv-python-headless", f"{where}: an encoded Datum")
        buffer = np.frombuffer(datum.data, np.uint8)
        flag = (cv2.IMREAD_COLOR if force_color else cv2.IMREAD_GRAYSCALE if force_gray
                else cv2.IMREAD_UNCHANGED)
        image = cv2.imdecode(buffer, flag) if buffer.size else None
        if image is None:
            raise DataSourceError(f"{where}: Could not decode datum")
        return hwc_to_chw(image)
    c, h, w = int(datum.channels), int(datum.height), int(datum.width)
    if min(c, h, w) <= 0:
        raise DataSourceError(f"{where}: Datum shape {c}×{h}×{w} is not positive")
    if datum.data:
        values = np.frombuffer(datum.data, np.uint8)
    else:
        values = np.asarray(datum.float_data, np.float32)
    if values.size != c * h * w:
        raise DataSourceError(f"{where}: Datum {c}×{h}×{w} holds {values.size} values")
    return values.reshape(c, h, w)


def hwc_to_chw(image: np.ndarray) -> np.ndarray:
    """An OpenCV image (H×W or H×W×C) as C×H×W, as Caffe copies a ``cv::Mat``."""
    return image[None] if image.ndim == 2 else np.ascontiguousarray(image.transpose(2, 0, 1))


def read_image(path: str | os.PathLike, new_height: int, new_width: int, is_color: bool,
               where: str) -> np.ndarray:
    """Caffe's ``ReadImageToCVMat``: ``imread`` colour (BGR) or grey, then ``resize`` (bilinear)
    to ``new_height × new_width`` when both are given; C×H×W uint8."""
    cv2 = _needs("cv2", "opencv-python-headless", f"{where}: reading images")
    image = cv2.imread(os.fspath(path), cv2.IMREAD_COLOR if is_color else cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise DataSourceError(f"{where}: Could not open or find file {os.fspath(path)}")
    if new_height > 0 and new_width > 0:
        image = cv2.resize(image, (new_width, new_height))
    return hwc_to_chw(image)


def read_mean_file(path: str | os.PathLike, where: str) -> np.ndarray:
    """A ``binaryproto`` mean (``BlobProto``) as a float32 ``C×H×W`` array."""
    from .weights import blob_array

    try:
        blob = wire.decode(Path(path).read_bytes(), "BlobProto", path=os.fspath(path))
    except OSError as err:
        raise DataSourceError(f"{where}: mean_file {os.fspath(path)}: {err.strerror}") from None
    except WireFormatError as err:
        raise DataSourceError(f"{where}: mean_file {os.fspath(path)} is not a BlobProto ({err})") from None
    array = blob_array(blob, where, "Data", 0, path)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3:
        raise DataSourceError(f"{where}: mean_file {os.fspath(path)} has shape {array.shape}, "
                              f"not 1×C×H×W")
    return array

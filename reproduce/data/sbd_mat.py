"""SBD's class labels read straight out of their MATLAB files: ``GTcls.Segmentation`` only.

The reference reads an SBD label with ``scipy.io.loadmat(path)['GTcls'][0]['Segmentation'][0]``,
which also builds the 20 sparse ``Boundaries`` matrices of every file and its other fields —
about half of a training sample's loading time (BENCHMARKS.md, "Data loading"). The label
needs none of it. ``read_segmentation(path)`` walks the file's MATLAB 5 elements (the format of
``save``, compressed or not; see MathWorks' "MAT-File Format", level 5), skips every field of
the struct but ``Segmentation`` by its byte count, and returns that matrix as the reference's
line followed by ``.astype(np.uint8)`` does: the same values, dtype and memory order.

It reads only the layout SBD's files have — a numeric, real, non-sparse ``Segmentation``
stored as unsigned bytes (whose values then survive any numeric class and the cast to uint8
unchanged) in a 1×1 struct ``GTcls``. For anything else it returns ``None`` and the caller
takes ``loadmat``, so an unusual file is read (or refused) exactly as the reference would.

``gtcls_struct(segmentation)`` is the other direction, for tests and benchmarks: the
``GTcls`` struct of an SBD file for a class map, ready for ``scipy.io.savemat``.
"""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

MI_INT8, MI_UINT8, MI_INT32, MI_UINT32, MI_MATRIX, MI_COMPRESSED = 1, 2, 5, 6, 14, 15
MX_STRUCT, MX_SPARSE = 2, 5
MX_NUMERIC = range(6, 16)  # double, single, int8 … uint64
COMPLEX, GLOBAL, LOGICAL = 0x0800, 0x0400, 0x0200


class _Unsupported(Exception):
    """A layout this reader leaves to loadmat."""


def read_segmentation(path: str | Path, variable: str = "GTcls",
                      field: str = "Segmentation") -> np.ndarray | None:
    """``loadmat(path)[variable][0][field][0].astype(np.uint8)``, or ``None`` where this reader
    does not handle the file's layout (the caller then reads it with loadmat)."""
    try:
        data = Path(path).read_bytes()
        if len(data) < 128 or data[126:128] not in (b"IM", b"MI") or data[124:126] not in (
                b"\x00\x01", b"\x01\x00"):
            return None  # not a level-5 MAT-file (v4, v7.3/HDF5): loadmat's business
        endian = "<" if data[126:128] == b"IM" else ">"
        found = None
        for kind, body in _elements(data, 128, len(data), endian):
            if kind == MI_COMPRESSED:
                body = zlib.decompress(body)
                inner = list(_elements(body, 0, len(body), endian))
                if len(inner) != 1:
                    return None
                kind, body = inner[0]
            if kind != MI_MATRIX:
                return None
            name, result = _top_level(body, endian, variable, field)
            if name == variable:
                found = result  # loadmat keeps the last variable of a name
        return found
    except (_Unsupported, zlib.error, ValueError, IndexError):
        return None


def _tag(data, offset: int, endian: str) -> tuple[int, int, int, int]:
    """(type, byte count, data offset, offset of the next element) of the element at ``offset``."""
    if offset + 8 > len(data):
        raise _Unsupported("truncated")
    first, second = np.frombuffer(data, endian + "u4", 2, offset)
    first, second = int(first), int(second)
    if first >> 16:  # small data element: type and size in 4 bytes, the data in the next 4
        return first & 0xFFFF, first >> 16, offset + 4, offset + 8
    end = offset + 8 + second
    if end > len(data):
        raise _Unsupported("truncated")
    # data is padded to 8 bytes, except a compressed element's
    return first, second, offset + 8, end if first == MI_COMPRESSED else offset + 8 + (second + 7) // 8 * 8


def _elements(data, start: int, stop: int, endian: str):
    offset = start
    while offset < stop:
        kind, size, at, offset = _tag(data, offset, endian)
        yield kind, data[at:at + size]


def _subelements(body, endian: str):
    """The sub-elements of a matrix element: (type, bytes) in order."""
    return _elements(body, 0, len(body), endian)


def _header(elements, endian: str) -> tuple[int, int, tuple[int, ...], str]:
    """Class, flags, dimensions and name of a matrix from its first three sub-elements."""
    kind, flags = next(elements)
    if kind != MI_UINT32 or len(flags) != 8:
        raise _Unsupported("array flags")
    word = int(np.frombuffer(flags, endian + "u4", 1)[0])
    kind, dims = next(elements)
    if kind != MI_INT32 or len(dims) % 4:
        raise _Unsupported("dimensions")
    shape = tuple(int(d) for d in np.frombuffer(dims, endian + "i4"))
    kind, name = next(elements)
    if kind != MI_INT8:
        raise _Unsupported("name")
    return word & 0xFF, word & 0xFF00, shape, name.decode("latin-1")


def _top_level(body, endian: str, variable: str, field: str):
    """(variable name, the field's uint8 array or None) of a top-level matrix."""
    elements = _subelements(body, endian)
    cls, flags, shape, name = _header(elements, endian)
    if name != variable:
        return name, None
    if cls != MX_STRUCT or flags & COMPLEX or shape != (1, 1):
        raise _Unsupported("not a 1×1 struct")
    kind, length = next(elements)
    if kind != MI_INT32 or len(length) != 4:
        raise _Unsupported("field name length")
    width = int(np.frombuffer(length, endian + "i4", 1)[0])
    kind, names = next(elements)
    if kind != MI_INT8 or width <= 0 or len(names) % width:
        raise _Unsupported("field names")
    fields = [names[i:i + width].split(b"\0", 1)[0].decode("latin-1") for i in range(0, len(names), width)]
    if fields.count(field) != 1:
        raise _Unsupported("no such field")
    values = list(elements)
    if len(values) != len(fields):
        raise _Unsupported("field count")
    kind, matrix = values[fields.index(field)]
    if kind != MI_MATRIX:
        raise _Unsupported("field is not a matrix")
    return name, _uint8_matrix(matrix, endian)


def _uint8_matrix(body, endian: str) -> np.ndarray:
    elements = _subelements(body, endian)
    cls, flags, shape, _ = _header(elements, endian)
    if cls not in MX_NUMERIC or cls == MX_SPARSE or flags & (COMPLEX | LOGICAL) or len(shape) != 2:
        raise _Unsupported("not a real numeric 2-D matrix")
    kind, data = next(elements)
    if kind != MI_UINT8 or len(data) != shape[0] * shape[1] or next(elements, None) is not None:
        raise _Unsupported("not stored as bytes")
    # loadmat's array is Fortran-ordered; .astype(np.uint8) keeps that order
    return np.frombuffer(data, np.uint8).reshape(shape, order="F").copy(order="F")


def gtcls_struct(segmentation: np.ndarray, classes: int = 20) -> dict:
    """``{"GTcls": …}`` as SBD's ``cls/<id>.mat`` hold it for the uint8 class map
    ``segmentation`` (255 void): ``Boundaries``, a ``classes``×1 cell of sparse maps (a class's
    pixels beside another's), ``Segmentation`` and ``CategoriesPresent``."""
    import scipy.sparse

    clean = np.where(segmentation == 255, 0, segmentation).astype(np.uint8)
    edge = np.zeros(clean.shape, bool)
    edge[:, 1:] |= clean[:, 1:] != clean[:, :-1]
    edge[1:, :] |= clean[1:, :] != clean[:-1, :]
    boundaries = np.empty((classes, 1), object)
    for k in range(1, classes + 1):
        boundaries[k - 1, 0] = scipy.sparse.csc_matrix(edge & (clean == k))
    present = np.unique(clean[clean > 0]).astype(np.uint8).reshape(-1, 1)
    return {"GTcls": {"Boundaries": boundaries, "Segmentation": clean, "CategoriesPresent": present}}

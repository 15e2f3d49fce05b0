"""Caffe-style preprocessing shared by the data layers, as in the reference ``*_layers.py``.

``load_caffe_image`` is the reference ``load_image``: PIL open, ``float32`` array, RGB → BGR,
subtract the mean *in place* (so a float64 mean is subtracted in float64 and rounded back to
float32, exactly as ``in_ -= self.mean`` does), HWC → CHW, no scaling. ``read_split`` is the
reference ``open(split_f).read().splitlines()``; ``read_mat_variable`` its ``scipy.io.loadmat``
of a label file, with an error naming the file.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def read_split(path: str | Path) -> list[str]:
    """The ids of a split list, in file order (``read().splitlines()``)."""
    with open(path, "r") as handle:
        return handle.read().splitlines()


def open_image_array(path: str | Path, dtype=np.float32) -> np.ndarray:
    """``np.array(Image.open(path), dtype=dtype)``, the file closed afterwards."""
    with Image.open(path) as image:
        return np.array(image, dtype=dtype)


def read_mat_variable(path: str | Path, name: str, what: str) -> np.ndarray:
    """``scipy.io.loadmat(path)[name]``; a file that is not such a ``.mat`` raises
    ``ValueError`` naming the file and what it should have been (``what``)."""
    import scipy.io
    from scipy.io.matlab import MatReadError

    try:
        return scipy.io.loadmat(str(path))[name]
    except (KeyError, IndexError, ValueError, TypeError, MatReadError) as error:
        raise ValueError(f"{path}: not {what} (expected a variable {name!r}): "
                         f"{type(error).__name__}: {error}") from None


def load_caffe_image(path: str | Path, mean) -> np.ndarray:
    """An RGB image as a ``3 × H × W`` float32 BGR array minus ``mean`` (given in BGR order).

    An 8-bit RGB image (every JPEG and PNG photo) takes a table lookup instead of the
    reference's float conversion, in-place subtraction and transposition: the table holds the
    reference's own ``in_ -= mean`` applied to the 256 possible values of each channel (the
    same ufunc, dtypes and casting), so each pixel gets exactly the value the reference computes,
    at a fraction of the cost (BENCHMARKS.md, "Data loading"). Any other image or mean takes
    the reference's steps as written.
    """
    from PIL import Image

    with Image.open(path) as image:
        if image.mode == "RGB":
            table = _mean_table(mean)
            if table is not None:
                return _lookup_bgr(np.asarray(image), table)
        in_ = np.array(image, dtype=np.float32)
    if in_.ndim != 3 or in_.shape[2] != 3:
        raise ValueError(f"{path}: expected an RGB image, got an array of shape {in_.shape}")
    in_ = in_[:, :, ::-1]
    in_ -= mean
    return np.ascontiguousarray(in_.transpose((2, 0, 1)))


_MEAN_TABLES: dict = {}


def _mean_table(mean) -> np.ndarray | None:
    """``table[v, c]`` = the reference's float32 ``v - mean[c]`` for v in 0..255 (BGR channel
    c); ``None`` for a mean that is not one value or three (a mean image, say)."""
    mean_array = np.asarray(mean)
    if mean_array.shape not in ((), (1,), (3,)):
        return None
    key = (mean_array.dtype.str, mean_array.shape, mean_array.tobytes())
    if key not in _MEAN_TABLES:
        values = np.repeat(np.arange(256, dtype=np.float32)[:, None], 3, axis=1)
        try:
            values -= mean   # the reference's in-place subtraction, value by value
        except (ValueError, TypeError):
            return None
        _MEAN_TABLES[key] = values.T.copy()
    return _MEAN_TABLES[key]


def _lookup_bgr(rgb: np.ndarray, table: np.ndarray) -> np.ndarray:
    """A uint8 H×W×3 RGB array as the reference's 3×H×W float32 BGR-minus-mean array."""
    out = np.empty((3, *rgb.shape[:2]), np.float32)
    for c in range(3):  # BGR channel c is RGB channel 2 - c
        # Straight into ``out``: mode "clip" (never clipping: a uint8 index is < 256) spares the
        # copy that "raise" makes of ``out`` and the temporary that ``out[c] = np.take(…)`` does;
        # freeing such temporaries let glibc hand the pages back, and the next sample faulted
        # them in again (~1,000 page faults a 500×375 image, 5× the lookup's time; BENCHMARKS.md)
        np.take(table[c], rgb[:, :, 2 - c], out=out[c], mode="clip")
    return out


class DeferredImage:
    """An 8-bit RGB image whose reference preprocessing is left to its consumer.

    What a DataLoader worker hands over instead of the 3×H×W float32 array (a quarter of the
    bytes): ``rgb``, the decoded H×W×3 uint8 picture, and ``table``, the 3×256 float32 table of
    the reference's own ``v - mean`` per BGR channel (``_mean_table``). ``finish()`` (or
    ``reproduce.data.torch_loader.caffe_image`` on a device) gives exactly the array
    ``load_caffe_image`` gives; ``shape`` is that array's, for the datasets' size checks.
    """

    __slots__ = ("rgb", "table")

    def __init__(self, rgb: np.ndarray, table: np.ndarray):
        self.rgb, self.table = rgb, table

    @property
    def shape(self) -> tuple[int, int, int]:
        return (3, *self.rgb.shape[:2])

    def finish(self) -> np.ndarray:
        return _lookup_bgr(self.rgb, self.table)


def load_caffe_image_deferred(path: str | Path, mean):
    """``load_caffe_image``'s result, deferred (a ``DeferredImage``) where it takes the table
    lookup — an 8-bit RGB image and a mean of one or three values — else the array itself."""
    with Image.open(path) as image:
        if image.mode == "RGB":
            table = _mean_table(mean)
            if table is not None:
                return DeferredImage(np.array(image), table)   # writable: torch takes it as is
    return load_caffe_image(path, mean)


def with_channel_axis(label: np.ndarray, path: str | Path) -> np.ndarray:
    """A 2-D label map as ``1 × H × W`` (the leading axis the loss layer needs)."""
    if label.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D label map, got shape {label.shape}")
    return label[np.newaxis, ...]


def check_same_size(image: np.ndarray, image_path, label: np.ndarray, label_path) -> None:
    """Raise ``ValueError`` naming both files when image and label sizes differ."""
    if image.shape[-2:] != label.shape[-2:]:
        raise ValueError(f"image {image_path} is {image.shape[-2]}×{image.shape[-1]} (H×W) but "
                         f"its label {label_path} is {label.shape[-2]}×{label.shape[-1]}")

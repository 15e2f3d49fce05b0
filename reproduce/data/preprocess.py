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
    """An RGB image as a ``3 × H × W`` float32 BGR array minus ``mean`` (given in BGR order)."""
    in_ = open_image_array(path, np.float32)
    if in_.ndim != 3 or in_.shape[2] != 3:
        raise ValueError(f"{path}: expected an RGB image, got an array of shape {in_.shape}")
    in_ = in_[:, :, ::-1]
    in_ -= mean
    return np.ascontiguousarray(in_.transpose((2, 0, 1)))


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

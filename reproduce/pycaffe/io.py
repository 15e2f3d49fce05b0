"""``caffe.io``: blob/datum conversion, the ``Transformer``, image loading and resizing.

What it mirrors of pycaffe's ``io.py``:

* ``blobproto_to_array`` (the legacy num/channels/height/width shape when any of them is set,
  else ``shape.dim``; ``return_diff``), ``array_to_blobproto``, ``arraylist_to_blobprotovector_str``,
  ``blobprotovector_str_to_arraylist``, ``array_to_datum`` (uint8 arrays as bytes in ``data``,
  others as ``float_data``), ``datum_to_array`` — on ``caffe_pb2`` messages;
* ``Transformer(inputs)``: per input ``set_transpose``, ``set_channel_swap``, ``set_raw_scale``,
  ``set_mean`` (per channel, or element-wise, resized to the input when its size differs),
  ``set_input_scale``; ``preprocess`` (float32, resize to the input's H×W, transpose, channel
  swap, raw scale, mean, input scale — in that order) and ``deprocess`` (the inverse);
* ``load_image(filename, color=True)``: float32 in [0, 1], H×W×3 (RGB; grey images repeated)
  or H×W×1 with ``color=False`` (colour images converted with skimage's ``rgb2gray``
  weights), alpha dropped. Read with PIL here (pycaffe used skimage, which this project does
  not depend on); the values are ``img_as_float``'s — integer images divided by their type's
  maximum;
* ``resize_image(im, new_dims, interp_order=1)``: skimage's ``resize(…, mode='constant')`` as
  pycaffe calls it (1- and 3-channel images normalised to [0, 1] around it, a constant image
  returned as is), computed with ``scipy.ndimage.map_coordinates`` on skimage's pixel-centre
  grid (no anti-aliasing, as the skimage of Caffe's day); other channel counts with
  ``scipy.ndimage.zoom``, as pycaffe;
* ``oversample(images, crop_dims)``: the four corners and the centre, and their mirrors.
"""
from __future__ import annotations

import numpy as np

from .proto import caffe_pb2


# ---------------------------------------------------------------------------- protos
def blobproto_to_array(blob, return_diff: bool = False) -> np.ndarray:
    data = np.array(blob.diff if return_diff else blob.data)
    if any(blob.HasField(f) for f in ("num", "channels", "height", "width")):
        return data.reshape(blob.num, blob.channels, blob.height, blob.width)
    return data.reshape(list(blob.shape.dim))


def array_to_blobproto(arr: np.ndarray, diff: np.ndarray | None = None):
    arr = np.asarray(arr)
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend(int(d) for d in arr.shape)
    blob.data.extend(arr.astype(float).flat)
    if diff is not None:
        blob.diff.extend(np.asarray(diff).astype(float).flat)
    return blob


def arraylist_to_blobprotovector_str(arraylist) -> bytes:
    vec = caffe_pb2.BlobProtoVector()
    vec.blobs.extend(array_to_blobproto(a) for a in arraylist)
    return vec.SerializeToString()


def blobprotovector_str_to_arraylist(data: bytes) -> list[np.ndarray]:
    vec = caffe_pb2.BlobProtoVector()
    vec.ParseFromString(data)
    return [blobproto_to_array(blob) for blob in vec.blobs]


def array_to_datum(arr: np.ndarray, label: int | None = None):
    arr = np.asarray(arr)
    if arr.ndim != 3:
        raise ValueError("Incorrect array shape.")
    datum = caffe_pb2.Datum()
    datum.channels, datum.height, datum.width = (int(d) for d in arr.shape)
    if arr.dtype == np.uint8:
        datum.data = arr.tobytes()
    else:
        datum.float_data.extend(arr.astype(float).flat)
    if label is not None:
        datum.label = int(label)
    return datum


def datum_to_array(datum) -> np.ndarray:
    shape = (datum.channels, datum.height, datum.width)
    if len(datum.data):
        return np.frombuffer(bytes(datum.data), dtype=np.uint8).reshape(shape).copy()
    return np.array(datum.float_data).astype(float).reshape(shape)


# ---------------------------------------------------------------------------- pre-processing
class Transformer:
    """pycaffe's ``caffe.io.Transformer`` (see the module docstring)."""

    def __init__(self, inputs: dict):
        self.inputs = {name: tuple(int(d) for d in shape) for name, shape in inputs.items()}
        self.transpose: dict = {}
        self.channel_swap: dict = {}
        self.raw_scale: dict = {}
        self.mean: dict = {}
        self.input_scale: dict = {}

    def _check_input(self, in_: str) -> None:
        if in_ not in self.inputs:
            raise ValueError(f"{in_} is not one of the net inputs: {self.inputs}")

    def preprocess(self, in_: str, data: np.ndarray) -> np.ndarray:
        self._check_input(in_)
        caffe_in = np.asarray(data).astype(np.float32, copy=False)
        in_dims = self.inputs[in_][2:]
        if caffe_in.shape[:2] != in_dims:
            caffe_in = resize_image(caffe_in, in_dims)
        if in_ in self.transpose:
            caffe_in = caffe_in.transpose(self.transpose[in_])
        if in_ in self.channel_swap:
            caffe_in = caffe_in[list(self.channel_swap[in_]), :, :]
        if in_ in self.raw_scale:
            caffe_in = caffe_in * self.raw_scale[in_]
        if in_ in self.mean:
            caffe_in = caffe_in - self.mean[in_]
        if in_ in self.input_scale:
            caffe_in = caffe_in * self.input_scale[in_]
        return caffe_in

    def deprocess(self, in_: str, data: np.ndarray) -> np.ndarray:
        self._check_input(in_)
        decaf_in = np.array(data, copy=True).squeeze()
        if in_ in self.input_scale:
            decaf_in = decaf_in / self.input_scale[in_]
        if in_ in self.mean:
            decaf_in = decaf_in + self.mean[in_]
        if in_ in self.raw_scale:
            decaf_in = decaf_in / self.raw_scale[in_]
        if in_ in self.channel_swap:
            decaf_in = decaf_in[np.argsort(self.channel_swap[in_]), :, :]
        if in_ in self.transpose:
            decaf_in = decaf_in.transpose(np.argsort(self.transpose[in_]))
        return decaf_in

    def set_transpose(self, in_: str, order) -> None:
        self._check_input(in_)
        if len(order) != len(self.inputs[in_]) - 1:
            raise ValueError("Transpose order needs to have the same number of dimensions as "
                             "the input.")
        self.transpose[in_] = tuple(order)

    def set_channel_swap(self, in_: str, order) -> None:
        self._check_input(in_)
        if len(order) != self.inputs[in_][1]:
            raise ValueError("Channel swap needs to have the same number of dimensions as the "
                             "input channels.")
        self.channel_swap[in_] = tuple(order)

    def set_raw_scale(self, in_: str, scale: float) -> None:
        self._check_input(in_)
        self.raw_scale[in_] = scale

    def set_mean(self, in_: str, mean: np.ndarray) -> None:
        self._check_input(in_)
        mean = np.asarray(mean)
        if mean.ndim == 1:
            if mean.shape[0] != self.inputs[in_][1]:
                raise ValueError("Mean channels incompatible with input.")
            mean = mean[:, np.newaxis, np.newaxis]
        else:
            shape = mean.shape if mean.ndim != 2 else (1,) + mean.shape
            if len(shape) != 3:
                raise ValueError("Mean shape invalid")
            if shape != self.inputs[in_][1:]:
                mean = mean.reshape(shape)
                low, high = mean.min(), mean.max()
                normal = (mean - low) / (high - low)
                mean = resize_image(normal.transpose((1, 2, 0)),
                                    self.inputs[in_][2:]).transpose((2, 0, 1)) * (high - low) + low
        self.mean[in_] = mean

    def set_input_scale(self, in_: str, scale: float) -> None:
        self._check_input(in_)
        self.input_scale[in_] = scale


# ---------------------------------------------------------------------------- images
_GREY = np.array([0.2125, 0.7154, 0.0721])   # skimage.color.rgb2gray


def load_image(filename: str, color: bool = True) -> np.ndarray:
    from PIL import Image

    with Image.open(filename) as im:
        im.load()
        array = np.asarray(im)
        if im.mode == "P":
            array = np.asarray(im.convert("RGBA" if "transparency" in im.info else "RGB"))
    if array.dtype == bool:
        img = array.astype(np.float64)
    elif array.dtype.kind in "ui":
        img = array.astype(np.float64) / np.iinfo(array.dtype).max
    else:
        img = array.astype(np.float64)
    if img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    if not color and img.ndim == 3:
        img = img @ _GREY
    img = img.astype(np.float32)
    if img.ndim == 2:
        img = img[:, :, np.newaxis]
        if color:
            img = np.tile(img, (1, 1, 3))
    return img


def _resize(im: np.ndarray, new_dims, order: int) -> np.ndarray:
    from scipy import ndimage

    rows, cols = int(new_dims[0]), int(new_dims[1])
    scale_r, scale_c = im.shape[0] / rows, im.shape[1] / cols
    r = (np.arange(rows) + 0.5) * scale_r - 0.5
    c = (np.arange(cols) + 0.5) * scale_c - 0.5
    grid_r, grid_c = np.meshgrid(r, c, indexing="ij")
    out = np.empty((rows, cols, im.shape[2]), dtype=np.float64)
    for k in range(im.shape[2]):
        out[:, :, k] = ndimage.map_coordinates(im[:, :, k].astype(np.float64), [grid_r, grid_c],
                                               order=order, mode="constant", cval=0.0)
    return out


def resize_image(im: np.ndarray, new_dims, interp_order: int = 1) -> np.ndarray:
    im = np.asarray(im)
    if im.shape[-1] in (1, 3):
        low, high = im.min(), im.max()
        if high > low:
            standard = (im - low) / (high - low)
            resized = _resize(standard, new_dims, interp_order) * (high - low) + low
        else:
            out = np.empty((int(new_dims[0]), int(new_dims[1]), im.shape[-1]), dtype=np.float32)
            out.fill(low)
            return out
    else:
        from scipy.ndimage import zoom

        scale = tuple(np.array(new_dims, dtype=float) / np.array(im.shape[:2]))
        resized = zoom(im, scale + (1,), order=interp_order)
    return resized.astype(np.float32)


def oversample(images, crop_dims) -> np.ndarray:
    im_shape = np.array(images[0].shape)
    crop_dims = np.array(crop_dims)
    center = im_shape[:2] / 2.0
    corners = [(i, j, i + crop_dims[0], j + crop_dims[1])
               for i in (0, im_shape[0] - crop_dims[0]) for j in (0, im_shape[1] - crop_dims[1])]
    crops_ix = np.empty((5, 4), dtype=int)
    crops_ix[:4] = corners
    crops_ix[4] = np.tile(center, (1, 2)) + np.concatenate([-crop_dims / 2.0, crop_dims / 2.0])
    crops_ix = np.tile(crops_ix, (2, 1))
    crops = np.empty((10 * len(images), crop_dims[0], crop_dims[1], im_shape[-1]), dtype=np.float32)
    ix = 0
    for im in images:
        for crop in crops_ix:
            crops[ix] = im[crop[0]:crop[2], crop[1]:crop[3], :]
            ix += 1
        crops[ix - 5:ix] = crops[ix - 5:ix, :, ::-1, :]
    return crops

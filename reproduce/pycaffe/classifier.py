"""``caffe.Classifier``: pycaffe's image classifier over ``caffe.Net`` (``classifier.py``).

What it mirrors of pycaffe:

* ``Classifier(model_file, pretrained_file, image_dims=None, mean=None, input_scale=None,
  raw_scale=None, channel_swap=None)`` is ``Net(model_file, caffe.TEST, weights=pretrained_file)``
  with a ``caffe.io.Transformer`` for the first input (``transformer``): transpose ``(2, 0, 1)``
  (H×W×K images to K×H×W), then whichever of ``mean``, ``input_scale``, ``raw_scale``,
  ``channel_swap`` are given. ``crop_dims`` is the input blob's H×W; ``image_dims`` (the size
  every image is first resized to) defaults to it;
* ``predict(inputs, oversample=True)``: every H×W×K image resized to ``image_dims``
  (``caffe.io.resize_image``, float32); with ``oversample`` the ten crops of
  ``caffe.io.oversample`` (four corners and centre, and their mirrors) of ``crop_dims``, else
  the centre crop (bounds ``image_dims / 2 ∓ crop_dims / 2`` truncated to integers);
  each crop preprocessed by the transformer, the whole batch through ``forward_all`` and the
  first output returned, N×C — with ``oversample`` the mean over each image's ten crops.

Where it is stricter than pycaffe (which would fail later inside numpy, or crop silently
wrong): an empty ``inputs``, an image that is not H×W×K, images with differing channel
counts, images whose channel count is not the input's, an ``image_dims`` that is not two
sizes, or one smaller than the net's input crop, are each one ``ValueError`` saying so.
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from . import io as caffe_io
from .layer import TEST
from .net import Net


def _image_dims(image_dims: Any, crop_dims: np.ndarray) -> np.ndarray:
    if image_dims is None or len(image_dims) == 0:   # pycaffe's ``if not image_dims``
        return crop_dims
    dims = np.asarray(image_dims)
    if dims.shape != (2,) or not all(float(d).is_integer() and d > 0 for d in dims):
        raise ValueError(f"Classifier image_dims must be two positive sizes (height, width), "
                         f"got {image_dims!r}")
    return dims.astype(int)


def check_images(inputs: Sequence[Any], what: str) -> list[np.ndarray]:
    """``inputs`` as a list of H×W×K arrays of one channel count, or a ``ValueError``."""
    if inputs is None or len(inputs) == 0:
        raise ValueError(f"{what} needs at least one H x W x K image, got none")
    images = [np.asarray(im) for im in inputs]
    for i, im in enumerate(images):
        if im.ndim != 3 or 0 in im.shape:
            raise ValueError(f"{what}: image {i} must be a non-empty H x W x K array, "
                             f"got shape {im.shape}")
        if im.shape[2] != images[0].shape[2]:
            raise ValueError(f"{what}: image {i} has {im.shape[2]} channels, image 0 has "
                             f"{images[0].shape[2]}")
    return images


def configure_transformer(net: Net, what: str, mean, input_scale, raw_scale, channel_swap):
    """pycaffe's pre-processing set-up of ``Classifier`` and ``Detector`` (``what``) for the
    first input, which must be a 4-axis N x K x H x W blob."""
    if not net.inputs:
        raise ValueError(f"the net has no Input layer (the {what} feeds its first input)")
    in_ = net.inputs[0]
    if len(net.blobs[in_].data.shape) != 4:
        raise ValueError(f"{what} needs a 4-axis (N x K x H x W) input blob, "
                         f"{in_} has shape {net.blobs[in_].data.shape}")
    transformer = caffe_io.Transformer({in_: net.blobs[in_].data.shape})
    transformer.set_transpose(in_, (2, 0, 1))
    if mean is not None:
        transformer.set_mean(in_, mean)
    if input_scale is not None:
        transformer.set_input_scale(in_, input_scale)
    if raw_scale is not None:
        transformer.set_raw_scale(in_, raw_scale)
    if channel_swap is not None:
        transformer.set_channel_swap(in_, channel_swap)
    return transformer


class Classifier(Net):
    """pycaffe's ``caffe.Classifier`` (see the module docstring)."""

    def __init__(self, model_file: str | os.PathLike, pretrained_file: str | os.PathLike,
                 image_dims=None, mean=None, input_scale=None, raw_scale=None,
                 channel_swap=None):
        Net.__init__(self, model_file, TEST, weights=pretrained_file)
        self.transformer = configure_transformer(self, "Classifier", mean, input_scale,
                                                 raw_scale, channel_swap)
        in_ = self.inputs[0]
        self.crop_dims = np.array(self.blobs[in_].data.shape[2:])
        self.image_dims = _image_dims(image_dims, self.crop_dims)

    def predict(self, inputs, oversample: bool = True) -> np.ndarray:
        """Class scores (the first output) of each H×W×K image: N×C."""
        images = check_images(inputs, "Classifier.predict")
        in_ = self.inputs[0]
        channels = self.blobs[in_].data.shape[1]
        if images[0].shape[2] != channels:
            raise ValueError(f"Classifier.predict: the images have {images[0].shape[2]} channels, "
                             f"the net's input {in_} takes {channels}")
        rows, cols = (int(d) for d in self.image_dims)
        if rows < self.crop_dims[0] or cols < self.crop_dims[1]:
            raise ValueError(f"Classifier image_dims {rows}x{cols} are smaller than the net's "
                             f"input {self.crop_dims[0]}x{self.crop_dims[1]} it crops")
        resized = np.zeros((len(images), rows, cols, images[0].shape[2]), dtype=np.float32)
        for i, image in enumerate(images):
            resized[i] = caffe_io.resize_image(image, (rows, cols))

        if oversample:
            crops = caffe_io.oversample(resized, self.crop_dims)
        else:
            half = self.crop_dims / 2.0
            top, left = (np.array([rows, cols]) / 2.0 - half).astype(int)
            bottom, right = (np.array([rows, cols]) / 2.0 + half).astype(int)
            crops = resized[:, top:bottom, left:right, :]

        caffe_in = np.zeros((crops.shape[0], crops.shape[3], crops.shape[1], crops.shape[2]),
                            dtype=np.float32)
        for i, crop in enumerate(crops):
            caffe_in[i] = self.transformer.preprocess(in_, crop)
        predictions = self.forward_all(**{in_: caffe_in})[self.outputs[0]]
        if oversample:
            predictions = predictions.reshape((len(predictions) // 10, 10, -1)).mean(1)
        return predictions

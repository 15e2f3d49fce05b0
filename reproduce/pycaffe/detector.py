"""``caffe.Detector``: pycaffe's windowed detection over ``caffe.Net`` (``detector.py``), after
R-CNN (Girshick, Donahue, Darrell, Malik, arXiv:1311.2524).

What it mirrors of pycaffe:

* ``Detector(model_file, pretrained_file, mean=None, input_scale=None, raw_scale=None,
  channel_swap=None, context_pad=None)``: ``Net(model_file, caffe.TEST, weights=…)``, the
  ``transformer`` set up as ``Classifier``'s, then ``configure_crop(context_pad)``;
* ``configure_crop(context_pad)``: ``crop_dims`` is the input blob's ``shape[1:]`` permuted by
  ``[t[t[0]], t[t[1]], t[t[2]]]`` of the transpose ``t`` (for ``(2, 0, 1)``: H×W×K); with a
  ``context_pad``, ``crop_mean`` is the transformer's mean brought back to raw input space —
  transposed the same way, its channel swap undone, divided by the raw scale — or zeros
  (``crop_dims``) without a mean;
* ``crop(im, window)``: the window ``(ymin, xmin, ymax, xmax)`` sliced from the H×W×K image;
  with a ``context_pad``, R-CNN's context crop: the box grown about its centre by
  ``s = crop_size / (crop_size - 2 * context_pad)`` (``crop_size`` the input's width, the net
  input assumed square; half sizes ``(ymax - ymin + 1) / 2``), rounded (``np.round``, half to
  even), clipped to ``[0, H]``/``[0, W]``; the part inside the image (``im[y0:y1, x0:x1]``,
  the end rows excluded, as pycaffe slices) resized to ``round(clip_h * crop_size / full_h)`` ×
  ``round(clip_w * crop_size / full_w)`` (cut to fit the input) and placed at
  ``round(out_of_bounds * scale)`` from the top-left of a ``crop_dims`` canvas filled with
  ``crop_mean``;
* ``detect_windows(images_windows)``: for each ``(image filename, windows)``, the image read
  by ``caffe.io.load_image`` (float32), each window cropped, every crop preprocessed (so
  warped to the input size), all of them through ``forward_all``; a list of
  ``{'window', 'prediction', 'filename'}`` dicts (the first output's row per window), in
  order;
* ``detect_selective_search(image_fnames)``: the windows of the external
  ``selective_search_ijcv_with_python`` module (``get_windows(absolute paths,
  cmd='selective_search_rcnn')``, which runs MATLAB), imported when called, as pycaffe does.
  Without it, one ``ImportError`` saying where it comes from.

Where it differs: ``images_windows`` is read into a list first, so a one-shot iterator (the
``zip`` pycaffe itself passes from ``detect_selective_search``, empty on the second pass under
Python 3) gives its detections. Stricter than pycaffe (which would fail later in numpy or
crop silently wrong): no windows at all, a window that is not four whole numbers, a negative
coordinate without ``context_pad``, an empty crop, a ``context_pad`` of half the input or more
or on a non-square input, and an image whose channel count is not the input's, are each one
``ValueError`` naming the image and window.
"""
from __future__ import annotations

import os

import numpy as np

from . import io as caffe_io
from .classifier import configure_transformer
from .layer import TEST
from .net import Net


def _window_coords(window, where: str) -> tuple[int, int, int, int]:
    values = np.asarray(window).reshape(-1) if np.ndim(window) else None
    if values is None or values.shape != (4,) or values.dtype.kind not in "uif" \
            or not all(float(v).is_integer() for v in values):
        raise ValueError(f"{where}: a window is four whole numbers (ymin, xmin, ymax, xmax), "
                         f"got {window!r}")
    return tuple(int(v) for v in values)


class Detector(Net):
    """pycaffe's ``caffe.Detector`` (see the module docstring)."""

    def __init__(self, model_file: str | os.PathLike, pretrained_file: str | os.PathLike,
                 mean=None, input_scale=None, raw_scale=None, channel_swap=None,
                 context_pad=None):
        Net.__init__(self, model_file, TEST, weights=pretrained_file)
        self.transformer = configure_transformer(self, "Detector", mean, input_scale,
                                                 raw_scale, channel_swap)
        self.configure_crop(context_pad)

    # ------------------------------------------------------------------ detection
    def detect_windows(self, images_windows) -> list[dict]:
        """Predictions of every window of every image (see the module docstring)."""
        images_windows = [(fname, list(windows)) for fname, windows in images_windows]
        in_ = self.inputs[0]
        channels = self.blobs[in_].data.shape[1]
        window_inputs = []
        for fname, windows in images_windows:
            image = caffe_io.load_image(fname).astype(np.float32)
            if image.shape[2] != channels:
                raise ValueError(f"Detector: image {fname} has {image.shape[2]} channels, the "
                                 f"net's input {in_} takes {channels}")
            for window in windows:
                window_inputs.append(self._crop(image, window, f"Detector: image {fname}"))
        if not window_inputs:
            raise ValueError("Detector.detect_windows got no windows to detect in")

        caffe_in = np.zeros((len(window_inputs), window_inputs[0].shape[2])
                            + tuple(self.blobs[in_].data.shape[2:]), dtype=np.float32)
        for i, window_in in enumerate(window_inputs):
            caffe_in[i] = self.transformer.preprocess(in_, window_in)
        predictions = self.forward_all(**{in_: caffe_in})[self.outputs[0]]

        detections = []
        i = 0
        for fname, windows in images_windows:
            for window in windows:
                detections.append({"window": window, "prediction": predictions[i],
                                   "filename": fname})
                i += 1
        return detections

    def detect_selective_search(self, image_fnames) -> list[dict]:
        """``detect_windows`` over the Selective Search proposals of each image."""
        try:
            import selective_search_ijcv_with_python as selective_search
        except ImportError as err:
            raise ImportError(
                "Detector.detect_selective_search needs the selective_search_ijcv_with_python "
                "module (https://github.com/sergeyk/selective_search_ijcv_with_python, which "
                f"runs MATLAB) importable on sys.path; importing it failed: {err}") from err
        image_fnames = [os.path.abspath(f) for f in image_fnames]
        windows_list = selective_search.get_windows(image_fnames, cmd="selective_search_rcnn")
        return self.detect_windows(list(zip(image_fnames, windows_list)))

    # ------------------------------------------------------------------ cropping
    def crop(self, im, window) -> np.ndarray:
        """The window of ``im`` (H×W×K), with context as ``configure_crop`` set it."""
        return self._crop(np.asarray(im), window, "Detector.crop")

    def _crop(self, im: np.ndarray, window, where: str) -> np.ndarray:
        if im.ndim != 3:
            raise ValueError(f"{where}: the image must be H x W x K, got shape {im.shape}")
        ymin, xmin, ymax, xmax = _window_coords(window, where)
        if not self.context_pad:
            if min(ymin, xmin, ymax, xmax) < 0:
                raise ValueError(f"{where}: window {window!r} has a negative coordinate")
            crop = im[ymin:ymax, xmin:xmax]
            if crop.size == 0:
                raise ValueError(f"{where}: window {window!r} crops nothing of the "
                                 f"{im.shape[0]}x{im.shape[1]} image")
            return crop

        crop_size = self.blobs[self.inputs[0]].width   # pycaffe assumes a square input
        scale = crop_size / (1.0 * crop_size - self.context_pad * 2)
        half_h = (ymax - ymin + 1) / 2.0
        half_w = (xmax - xmin + 1) / 2.0
        center = (ymin + half_h, xmin + half_w)
        box = np.round(np.tile(center, 2) + scale * np.array((-half_h, -half_w, half_h, half_w)))
        full_h = box[2] - box[0] + 1
        full_w = box[3] - box[1] + 1
        scale_h = crop_size / full_h
        scale_w = crop_size / full_w
        pad_y = int(round(float(max(0, -box[0]) * scale_h)))   # the part out of the image
        pad_x = int(round(float(max(0, -box[1]) * scale_w)))

        im_h, im_w = im.shape[:2]
        box = np.clip(box, 0.0, [im_h, im_w, im_h, im_w])
        clip_h = box[2] - box[0] + 1
        clip_w = box[3] - box[1] + 1
        crop_h = int(round(float(clip_h * scale_h)))
        crop_w = int(round(float(clip_w * scale_w)))
        crop_h = min(crop_h, crop_size - pad_y)
        crop_w = min(crop_w, crop_size - pad_x)

        y0, x0, y1, x1 = (int(v) for v in box)
        context_crop = im[y0:y1, x0:x1]
        if context_crop.size == 0 or crop_h <= 0 or crop_w <= 0:
            raise ValueError(f"{where}: window {window!r} with context_pad {self.context_pad} "
                             f"crops nothing of the {im_h}x{im_w} image")
        context_crop = caffe_io.resize_image(context_crop, (crop_h, crop_w))
        crop = np.ones(self.crop_dims, dtype=np.float32) * self.crop_mean
        crop[pad_y:pad_y + crop_h, pad_x:pad_x + crop_w] = context_crop
        return crop

    def configure_crop(self, context_pad) -> None:
        """``crop_dims`` and, with ``context_pad``, the raw-space mean to pad context with."""
        in_ = self.inputs[0]
        tpose = self.transformer.transpose[in_]
        inv_tpose = [tpose[t] for t in tpose]
        self.crop_dims = np.array(self.blobs[in_].data.shape[1:])[inv_tpose]
        if context_pad:
            crop_size = self.blobs[in_].width
            if self.blobs[in_].height != crop_size:
                raise ValueError(f"Detector context_pad needs a square net input (pycaffe sizes "
                                 f"the context from its width), {in_} is "
                                 f"{self.blobs[in_].height}x{crop_size}")
            if not 0 < 2 * context_pad < crop_size:
                raise ValueError(f"Detector context_pad {context_pad!r} must be positive and "
                                 f"under half the input width {crop_size}")
        self.context_pad = context_pad
        if not self.context_pad:
            return
        channel_order = self.transformer.channel_swap.get(in_)
        raw_scale = self.transformer.raw_scale.get(in_)
        mean = self.transformer.mean.get(in_)
        if mean is None:
            self.crop_mean = np.zeros(self.crop_dims, dtype=np.float32)
            return
        crop_mean = np.array(mean, copy=True).transpose(inv_tpose)
        if channel_order is not None:
            order = list(channel_order)
            crop_mean = crop_mean[:, :, [order.index(i) for i in range(crop_mean.shape[2])]]
        if raw_scale is not None:
            crop_mean = crop_mean / raw_scale
        self.crop_mean = crop_mean

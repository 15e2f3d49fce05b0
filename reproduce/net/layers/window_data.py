"""WindowData (Caffe's ``WindowDataLayer``, R-CNN's fine-tuning layer): warped object windows.

As Caffe (``window_data_layer.cpp``). The window file (``window_data_param.source``) repeats::

    # image_index
    image_path            (root_folder + path)
    channels height width
    num_windows
    label overlap x1 y1 x2 y2     (num_windows lines)

A window with ``overlap >= fg_threshold`` is foreground (its label must be positive); one with
``overlap < bg_threshold`` background (label and overlap forced to 0); others are dropped. Each
batch draws ``batch_size - int(batch_size * fg_fraction)`` background windows, then the rest
foreground, each uniformly (a raw 32-bit draw modulo the list's size), then a mirror coin when
``transform_param.mirror``. The window is taken from the colour image — with ``context_pad``
or ``crop_mode: "square"`` first widened (squared) about its centre so that after warping
``context_pad`` pixels of context surround it, clipped to the image, and the clipped part's
share of the ``crop_size`` square kept as zero padding — warped to ``crop_size`` (bilinear,
OpenCV's ``resize``), mirrored, written at the padding offset (the rest of the item is 0), minus
``transform_param``'s mean (a mean file indexed at its centre crop) and times
``window_data_param.scale`` (Caffe reads that scale, not ``transform_param``'s). Windows index
the images by the ``image_index`` the file gives them (Caffe's ``image_database_[index]``).
``cache_images`` reads every image file once at set-up. Read ahead and resumable like Data; an
image that cannot be read is an error naming it (Caffe logs it and leaves the batch unfinished).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from reproduce.caffe.datum import DataSourceError, hwc_to_chw, read_mean_file

from .prefetch import PrefetchingDataLayer
from .registry import register

F32 = np.float32


def _round(x) -> int:
    """C's ``round``: halves away from zero."""
    return int(math.copysign(math.floor(abs(float(x)) + 0.5), float(x)))


@register("WindowData")
class WindowData(PrefetchingDataLayer):
    """Caffe's WindowData layer (see the module docstring)."""

    tops = (2, 2)
    export_refusal = "a WindowData source; export the net with Input layers in its place"

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        p, t = layer_param.window_data_param, layer_param.transform_param
        self.batch_size = int(p.batch_size)
        if self.batch_size <= 0:
            raise self.error("window_data_param.batch_size must be positive")
        self.crop = int(t.crop_size)
        if self.crop <= 0:
            raise self.error("transform_param.crop_size must be positive (the warped size)")
        self.mirror, self.scale = bool(t.mirror), F32(p.scale)
        self.context_pad, self.square = int(p.context_pad), p.crop_mode == "square"
        self.fg_fraction = float(p.fg_fraction)
        self.images: list[str] = []
        self.fg: list[tuple[int, int, int, int, int, int]] = []   # image, label, x1, y1, x2, y2
        self.bg: list[tuple[int, int, int, int, int, int]] = []
        self._read_windows(p)
        self.mean_file = None
        self.mean_values = [F32(v) for v in t.mean_value]
        if t.has("mean_file"):
            if self.mean_values:
                raise self.error("Cannot specify mean_file and mean_value at the same time")
            try:
                self.mean_file = read_mean_file(t.mean_file, "transform_param")
            except DataSourceError as err:
                raise self.error(str(err)) from None
        if self.mean_values and len(self.mean_values) not in (1, self.channels):
            raise self.error(f"Specify either 1 mean_value or as many as channels: {self.channels}")
        self.cache = None
        if p.cache_images:
            self.cache = {}
            for path in self.images:
                try:
                    with open(path, "rb") as f:
                        self.cache[path] = f.read()
                except OSError as err:
                    raise self.error(f"Could not open or find file {path} ({err.strerror})") from None
        self._begin()

    def _read_windows(self, p) -> None:
        try:
            with open(p.source, encoding="utf-8") as f:
                words = f.read().split()
        except OSError as err:
            raise self.error(f"Failed to open window file {p.source} ({err.strerror})") from None
        if not words:
            raise self.error(f"{p.source}: Window file is empty")
        pos, fg_t, bg_t = 0, float(p.fg_threshold), float(p.bg_threshold)
        try:
            while pos < len(words):
                if words[pos] != "#":
                    raise ValueError(f"expected '#', got {words[pos]!r}")
                index, path = int(words[pos + 1]), p.root_folder + words[pos + 2]
                self.channels = int(words[pos + 3])
                count = int(words[pos + 6])
                pos += 7
                self.images.append(path)
                for _ in range(count):
                    label, overlap = int(words[pos]), float(words[pos + 1])
                    x1, y1, x2, y2 = (int(w) for w in words[pos + 2:pos + 6])
                    pos += 6
                    if overlap >= fg_t:
                        if label <= 0:
                            raise ValueError(f"foreground window of image {index} has label {label}")
                        self.fg.append((index, label, x1, y1, x2, y2))
                    elif overlap < bg_t:
                        self.bg.append((index, 0, x1, y1, x2, y2))
        except (ValueError, IndexError) as err:
            raise self.error(f"{p.source}: malformed window file near word {pos}: {err}") from None
        if not self.fg or not self.bg:
            raise self.error(f"{p.source}: needs foreground and background windows (got "
                             f"{len(self.fg)} and {len(self.bg)})")

    def start_state(self):
        return {}

    def top_shapes(self, bottom_shapes):
        return [(self.batch_size, self.channels, self.crop, self.crop), (self.batch_size,)]

    def _image(self, index: int) -> np.ndarray:
        import cv2

        if not 0 <= index < len(self.images):
            raise self.error(f"a window names image {index}; the file lists {len(self.images)}")
        path = self.images[index]
        if self.cache is not None:
            image = cv2.imdecode(np.frombuffer(self.cache[path], np.uint8), cv2.IMREAD_COLOR)
        else:
            image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise self.error(f"Could not open or find file {path}")
        return image

    def load_batch(self, state, rng):
        data = np.zeros((self.batch_size, self.channels, self.crop, self.crop), np.float32)
        labels = np.zeros(self.batch_size, np.float32)
        num_fg = int(F32(self.batch_size) * F32(self.fg_fraction))
        item = 0
        for windows, count in ((self.bg, self.batch_size - num_fg), (self.fg, num_fg)):
            for _ in range(count):
                draw = int(torch.randint(2**32, (), generator=rng))
                window = windows[draw % len(windows)]
                flip = self.mirror and int(torch.randint(2**32, (), generator=rng)) % 2 == 1
                data[item], labels[item] = self.window_item(window, flip), window[1]
                item += 1
        return data, labels

    def window_item(self, window: tuple[int, int, int, int, int, int], flip: bool) -> np.ndarray:
        """One window ``(image, label, x1, y1, x2, y2)`` as ``load_batch`` writes it into the
        batch — widened, clipped, warped, mirrored when ``flip``, padded, minus the mean, scaled
        (``C×crop×crop`` float32)."""
        import cv2

        crop = self.crop
        out = np.zeros((self.channels, crop, crop), np.float32)
        index, _, x1, y1, x2, y2 = window
        image = self._image(index)
        rows, cols = image.shape[:2]
        size_w = size_h = crop
        pad_w = pad_h = 0
        if self.context_pad > 0 or self.square:
            context = F32(crop) / F32(crop - 2 * self.context_pad)
            half_h, half_w = F32(y2 - y1 + 1) / F32(2), F32(x2 - x1 + 1) / F32(2)
            cx, cy = F32(x1) + half_w, F32(y1) + half_h
            if self.square:
                half_h = half_w = max(half_h, half_w)
            x1, x2 = _round(cx - half_w * context), _round(cx + half_w * context)
            y1, y2 = _round(cy - half_h * context), _round(cy + half_h * context)
            full_h, full_w = y2 - y1 + 1, x2 - x1 + 1
            px1, py1 = max(0, -x1), max(0, -y1)
            px2, py2 = max(0, x2 - cols + 1), max(0, y2 - rows + 1)
            x1, x2, y1, y2 = x1 + px1, x2 - px2, y1 + py1, y2 - py2
            scale_x, scale_y = F32(crop) / F32(full_w), F32(crop) / F32(full_h)
            size_w = _round(F32(x2 - x1 + 1) * scale_x)
            size_h = _round(F32(y2 - y1 + 1) * scale_y)
            px1, px2 = _round(F32(px1) * scale_x), _round(F32(px2) * scale_x)
            pad_h = _round(F32(py1) * scale_y)
            pad_w = px2 if flip else px1
            size_h = min(size_h, crop - pad_h)
            size_w = min(size_w, crop - pad_w)
        if not (0 <= x1 <= x2 < cols and 0 <= y1 <= y2 < rows):
            raise self.error(f"window ({x1}, {y1}, {x2}, {y2}) lies outside image "
                             f"{self.images[index]} ({cols}×{rows})")
        warped = cv2.resize(image[y1:y2 + 1, x1:x2 + 1], (size_w, size_h),
                            interpolation=cv2.INTER_LINEAR)
        if flip:
            warped = warped[:, ::-1]
        pixels = hwc_to_chw(warped).astype(np.float32)
        h, w = pixels.shape[1:]
        if self.mean_file is not None:
            off = (self.mean_file.shape[2] - crop) // 2
            pixels = pixels - self.mean_file[:, off + pad_h:off + pad_h + h,
                                             off + pad_w:off + pad_w + w]
        elif self.mean_values:
            mean = np.asarray(self.mean_values * (self.channels if len(self.mean_values) == 1
                                                  else 1), np.float32)
            pixels = pixels - mean[:, None, None]
        out[:, pad_h:pad_h + h, pad_w:pad_w + w] = pixels * self.scale
        return out

"""ImageData (Caffe's ``ImageDataLayer``): batches of images named in a list file, with labels.

As Caffe (``image_data_layer.cpp``): each line of ``image_data_param.source`` is a path, a
space, an integer label (split at the last space); the image is ``root_folder`` + path
(string concatenation, as Caffe's), read colour (BGR) or grey (``is_color``) and resized to
``new_height × new_width`` when both are given (giving one alone is refused). ``shuffle``
shuffles the list when the layer is set up and again after every pass; ``rand_skip`` starts at a
random line below it. Each batch takes its shape from its first image; both tops (data, label)
are required. Items go through ``transform_param``; read ahead, and resumable, like Data
(``PrefetchingDataLayer``). Needs OpenCV (``opencv-python-headless``) to read images.
"""
from __future__ import annotations

import numpy as np
import torch

from reproduce.caffe.datum import DataSourceError, read_image

from .data_transformer import DataTransformer
from .prefetch import PrefetchingDataLayer
from .registry import register


@register("ImageData")
class ImageData(PrefetchingDataLayer):
    """Caffe's ImageData layer (see the module docstring)."""

    tops = (2, 2)
    export_refusal = "an ImageData source; export the net with Input layers in its place"

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        p = layer_param.image_data_param
        self.batch_size = int(p.batch_size)
        if self.batch_size <= 0:
            raise self.error("Positive batch size required")
        self.new_height, self.new_width = int(p.new_height), int(p.new_width)
        if (self.new_height > 0) != (self.new_width > 0):
            raise self.error("Current implementation requires new_height and new_width to be "
                             "set at the same time.")
        self.is_color, self.root = bool(p.is_color), str(p.root_folder)
        self.shuffle = bool(p.shuffle)
        try:
            with open(p.source, encoding="utf-8") as f:
                text = f.read().splitlines()
        except OSError as err:
            raise self.error(f"source {p.source}: {err.strerror} (relative sources are taken "
                             f"from the working directory, as Caffe does)") from None
        self.lines: list[tuple[str, int]] = []
        for number, line in enumerate(text, 1):
            if not line.strip():
                continue
            path, _, label = line.rpartition(" ")
            try:
                self.lines.append((path, int(label)))
            except ValueError:
                raise self.error(f"{p.source} line {number}: expected 'path label', got "
                                 f"{line!r}") from None
        if not self.lines:
            raise self.error(f"{p.source}: File is empty")
        order = list(range(len(self.lines)))
        if self.shuffle:
            order = self._shuffled(order)
        start = 0
        if p.rand_skip:
            start = int(torch.randint(2**31, (), generator=self._rng)) % int(p.rand_skip)
            if start >= len(self.lines):
                raise self.error(f"Not enough points to skip ({start} of {len(self.lines)})")
        self._start = {"order": order, "line": start}
        try:
            self.transformer = DataTransformer(layer_param.transform_param, self.phase,
                                               self.error, "transform_param")
            first = self._image(self.lines[order[start]][0])
        except DataSourceError as err:
            raise self.error(str(err)) from None
        self.item_shape = self.transformer.shape(first.shape)
        self._begin()

    def _shuffled(self, order: list[int]) -> list[int]:
        return [order[i] for i in torch.randperm(len(order), generator=self._rng).tolist()]

    def _image(self, path: str) -> np.ndarray:
        return read_image(self.root + path, self.new_height, self.new_width, self.is_color,
                          self.layer_param.image_data_param.source)

    def start_state(self):
        return dict(self._start)

    def top_shapes(self, bottom_shapes):
        return [(self.batch_size, *self.item_shape), (self.batch_size,)]

    def load_batch(self, state, rng):
        data, labels = None, np.zeros(self.batch_size, np.float32)
        for i in range(self.batch_size):
            path, label = self.lines[state["order"][state["line"]]]
            try:
                item = self.transformer(self._image(path), rng)
            except DataSourceError as err:
                raise self.error(str(err)) from None
            if data is None:
                data = np.empty((self.batch_size, *item.shape), np.float32)
            elif item.shape != data.shape[1:]:
                raise self.error(f"{self.root + path} gives shape {item.shape}, the batch's first "
                                 f"image {data.shape[1:]} (give new_height/new_width or crop_size)")
            data[i], labels[i] = item, label
            state["line"] += 1
            if state["line"] >= len(self.lines):
                state["line"] = 0
                if self.shuffle:
                    state["order"] = [state["order"][j] for j in
                                      torch.randperm(len(self.lines), generator=rng).tolist()]
        return data, labels

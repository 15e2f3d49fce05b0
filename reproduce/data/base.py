"""The shape every dataset loader shares: a split list of ids and per-id sample loading.

A ``SplitDataset`` reads its split file in file order (as the reference layers do), checks
up front that the directory has the layout it expects (raising ``DatasetError`` with the
layout and the first missing file), and loads sample ``i`` as a tuple of arrays, one per
top, without the batch axis; a sample file that exists but cannot be loaded is a
``SampleError`` naming the sample and the file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from .errors import DatasetError, SampleError
from .preprocess import load_caffe_image, load_caffe_image_deferred, read_split


class SplitDataset:
    """Base class: ``ids`` from a split file, ``load(id)`` → one array per name in ``tops``."""

    dataset_name = "segmentation"
    tops: tuple[str, ...] = ("data", "label")
    layout = ""
    # DataLoader workers set it (reproduce.data.torch_loader): 8-bit RGB images come back as
    # ``DeferredImage`` (uint8 + the mean's table), preprocessed by the consumer, exactly
    defer_images = False

    def __init__(self, root: str | Path, split: str, check_files: bool = True):
        self.root = Path(root)
        self.split = split
        if not self.root.is_dir():
            self._fail(f"directory {self.root} does not exist")
        split_path = self.split_path()
        if not split_path.is_file():
            self._fail(f"split list {split_path} does not exist")
        self.ids = read_split(split_path)
        if not self.ids:
            self._fail(f"split list {split_path} is empty")
        for line_number, sample_id in enumerate(self.ids, 1):
            if not sample_id.strip():
                self._fail(f"split list {split_path} has a blank line ({line_number})")
        if check_files:
            self.check_files()

    # -- what subclasses define -------------------------------------------------------------
    def split_path(self) -> Path:
        raise NotImplementedError

    def sample_paths(self, sample_id: str) -> Iterable[Path]:
        """Every file sample ``sample_id`` reads (for the up-front layout check)."""
        raise NotImplementedError

    def load(self, sample_id: str) -> tuple[np.ndarray, ...]:
        raise NotImplementedError

    # -- shared -----------------------------------------------------------------------------
    def caffe_image(self, path: Path, mean):
        """The reference ``load_image`` of ``path`` (``load_caffe_image``), or with
        ``defer_images`` its ``DeferredImage`` where it has one."""
        if self.defer_images:
            return load_caffe_image_deferred(path, mean)
        return load_caffe_image(path, mean)

    def check_files(self) -> None:
        """Raise ``DatasetError`` naming the first missing file of any sample of the split."""
        missing = [path for sample_id in self.ids for path in self.sample_paths(sample_id)
                   if not path.is_file()]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            self._fail(f"missing file {missing[0]}{more}, listed in split {self.split_path()}")

    def _fail(self, problem: str):
        raise DatasetError(self.dataset_name, self.root, problem,
                           self.layout.format(root=self.root, split=self.split))

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[np.ndarray, ...]:
        sample_id = self.ids[index]
        try:
            return self.load(sample_id)
        except (DatasetError, SampleError):
            raise
        except Exception as err:  # whatever PIL, scipy or numpy raise on a bad file
            raise SampleError(f"{self.dataset_name} sample {sample_id!r} of {self.split_path()}: "
                              f"{type(err).__name__}: {err}") from err

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r}, split={self.split!r}, n={len(self)})"

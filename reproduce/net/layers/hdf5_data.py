"""HDF5Data and HDF5Output (Caffe's ``HDF5DataLayer``, ``HDF5OutputLayer``).

HDF5Data, as Caffe (``hdf5_data_layer.cpp``): ``hdf5_data_param.source`` lists ``.h5`` files
(whitespace-separated, as ``ifstream >> line`` reads them); every top reads the dataset of its
own name, as float32, all with the same number of rows; a top's shape is that dataset's with
``batch_size`` rows. Rows are served in order, file after file, wrapping to the first file;
with ``shuffle`` the file order is shuffled at set-up and after each pass over the files, and
the rows of each file when it is loaded and after each pass over it. ``transform_param`` is
refused ("does not transform data"). Caffe shuffles with ``std::random_shuffle``; here the
layer's own generator (seeded from the net's) does, and the position is kept in solver
snapshots. Not read ahead (Caffe's is not either).

HDF5Output, as Caffe (``hdf5_output_layer.cpp``): two bottoms, no top; a forward writes them
as the datasets ``data`` and ``label`` of ``hdf5_output_param.file_name`` (float32). Caffe
creates both datasets on the first forward and fails on the next ("Failed to make float
dataset", the names being taken); this refuses a second forward in one line instead.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from reproduce.caffe.files import atomic_output

from .base import CaffeLayer
from .prefetch import layer_generator
from .registry import register


@register("HDF5Data")
class HDF5Data(CaffeLayer):
    """Caffe's HDF5Data layer (see the module docstring)."""

    bottoms = (0, 0)
    tops = (1, None)
    export_refusal = "an HDF5Data source; export the net with Input layers in its place"

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        if layer_param.has("transform_param"):
            raise self.error("HDF5Data does not transform data.")
        p = layer_param.hdf5_data_param
        self.batch_size = int(p.batch_size)
        if self.batch_size <= 0:
            raise self.error("hdf5_data_param.batch_size must be positive")
        self.shuffle = bool(p.shuffle)
        try:
            with open(p.source, encoding="utf-8") as f:
                self.files = f.read().split()
        except OSError as err:
            raise self.error(f"Failed to open source file: {p.source} ({err.strerror}; relative "
                             f"sources are taken from the working directory, as Caffe does)") from None
        if not self.files:
            raise self.error(f"Must have at least 1 HDF5 filename listed in {p.source}")
        self._rng = layer_generator(generator)
        self.register_buffer("device_marker", torch.zeros(0), persistent=False)
        order = list(range(len(self.files)))
        if self.shuffle:
            order = self._permuted(order)
        self._state = {"files": order, "file": 0, "row": 0}
        self._load(order[0])
        self.row_shapes = [a.shape[1:] for a in self._arrays]

    def _permuted(self, order):
        return [order[i] for i in torch.randperm(len(order), generator=self._rng).tolist()]

    def _load(self, index: int, rows: list[int] | None = None) -> None:
        """Caffe's ``LoadHDF5FileData``: every top's dataset, and the row order."""
        import h5py

        path = self.files[index]
        arrays = []
        try:
            with h5py.File(path, "r") as f:
                for top in self.layer_param.top:
                    if top not in f:
                        raise self.error(f"{path}: no dataset {top!r} for top {top!r} (datasets: "
                                         f"{sorted(f.keys())})")
                    array = np.asarray(f[top], dtype=np.float32)
                    if array.ndim < 1:
                        raise self.error(f"{path}: dataset {top!r}: Input must have at least 1 axis.")
                    arrays.append(array)
        except OSError as err:
            raise self.error(f"Failed to open HDF5 file {path}: {err}") from None
        if len({a.shape[0] for a in arrays}) != 1:
            raise self.error(f"{path}: the datasets {list(self.layer_param.top)} differ in rows "
                             f"({[a.shape[0] for a in arrays]})")
        if hasattr(self, "row_shapes") and [a.shape[1:] for a in arrays] != self.row_shapes:
            raise self.error(f"{path}: row shapes {[a.shape[1:] for a in arrays]} differ from the "
                             f"first file's {self.row_shapes}")
        if arrays[0].shape[0] == 0:
            raise self.error(f"{path}: the datasets hold no rows")
        self._arrays, self._loaded = arrays, index
        if rows is None:
            rows = list(range(arrays[0].shape[0]))
            if self.shuffle:
                rows = self._permuted(rows)
        self._state["rows"] = rows

    def top_shapes(self, bottom_shapes):
        return [(self.batch_size, *shape) for shape in self.row_shapes]

    def forward(self):
        s = self._state
        out = [np.empty((self.batch_size, *shape), np.float32) for shape in self.row_shapes]
        for i in range(self.batch_size):
            row = s["rows"][s["row"]]
            for top, array in zip(out, self._arrays):
                top[i] = array[row]
            s["row"] += 1
            if s["row"] == len(s["rows"]):   # Caffe's Next()
                if len(self.files) > 1:
                    s["file"] += 1
                    if s["file"] == len(self.files):
                        s["file"] = 0
                        if self.shuffle:
                            s["files"] = self._permuted(s["files"])
                    self._load(s["files"][s["file"]])
                s["row"] = 0
                if self.shuffle:
                    s["rows"] = self._permuted(s["rows"])
        device = self.device_marker.device
        return tuple(torch.from_numpy(a).to(device) for a in out)

    def state_dict_data(self):
        return {"reader": {k: (list(v) if isinstance(v, list) else v) for k, v in self._state.items()},
                "rng": self._rng.get_state()}

    def load_state_dict_data(self, state):
        reader = state["reader"]
        self._state = {k: (list(v) if isinstance(v, list) else v) for k, v in reader.items()}
        self._load(self._state["files"][self._state["file"]], rows=list(reader["rows"]))
        self._rng.set_state(state["rng"])


@register("HDF5Output")
class HDF5Output(CaffeLayer):
    """Caffe's HDF5Output layer (see the module docstring)."""

    bottoms = (2, 2)
    tops = (0, 0)
    export_refusal = "an HDF5Output sink (it writes a file); export the net without it"

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        self.file_name = layer_param.hdf5_output_param.file_name
        if not self.file_name:
            raise self.error("hdf5_output_param.file_name is required")
        self.written = False

    def top_shapes(self, bottom_shapes):
        return []

    def forward(self, data, label):
        import h5py

        if self.written:
            raise self.error(f"{self.file_name} already holds 'data' and 'label' from an earlier "
                             f"forward; Caffe fails here too (Failed to make float dataset)")
        with atomic_output(self.file_name) as tmp, h5py.File(tmp, "w") as f:
            f.create_dataset("data", data=data.detach().cpu().numpy().astype(np.float32))
            f.create_dataset("label", data=label.detach().cpu().numpy().astype(np.float32))
        self.written = True
        return ()

    def extra_repr(self):
        return f"{super().extra_repr()} → {os.fspath(self.file_name)}"

"""HDF5 caffemodels (``Net.save_hdf5``): read and write the ``/data/<layer>/<i>`` layout.

Mirrors ``Net::ToHDF5`` and ``Net::CopyTrainedLayersFromHDF5`` (``hdf5.cpp``): one group per
layer under ``/data`` (layers without parameters get an empty group), one contiguous
dataset per parameter blob named by its index (``"0"``, ``"1"``), holding the blob in its
own shape as native float32. Caffe visits the layer groups in name order
(``H5_INDEX_NAME``), so that is the order ``read_hdf5`` returns; it accepts any float or
integer dataset and converts it to float32, as ``H5LTread_dataset_float`` does. A diff
group (``write_diff``) is ignored when reading and written on request.

Also Caffe's HDF5 solver state (``SGDSolver::SnapshotSolverStateToHDF5``, a
``<prefix>_iter_<N>.solverstate.h5``): scalar ``iter`` and ``current_step``, string
``learned_net``, and one dataset per history blob under ``/history``, named by index.
``read_hdf5_solverstate`` returns it as the same ``SolverState`` message the binary
``.solverstate`` decodes to, so one restore serves both.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from contextlib import contextmanager

import numpy as np

from .errors import WeightsError
from .files import Progress, ProgressReport, atomic_output
from .schema import Message
from .blobs import (MAX_BLOB_AXES, StoredWeights, Weights, blob_message, check_diffs, float32_blob,
                    net_layers)


def read_hdf5(path: str | os.PathLike, progress: Progress = None) -> Weights:
    """``{layer: [blob, …]}`` of an HDF5 caffemodel, layers in name order, empty layers left out."""
    with _opened(path) as f:
        return _read_layers(f, path, progress)


@contextmanager
def _opened(path: str | os.PathLike):
    """The file open for reading; h5py's errors become a ``WeightsError`` naming it."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise WeightsError(f"not a readable HDF5 file ({_first_line(err)})", path) from None
    try:
        with f:
            yield f
    except (OSError, KeyError, RuntimeError) as err:   # h5py's errors for damaged structures
        raise WeightsError(f"damaged HDF5 file ({_first_line(err)})", path) from None


def _read_layers(f, path: str | os.PathLike, progress: Progress) -> Weights:
    import h5py

    weights = StoredWeights(source=os.fspath(path))
    data = f.get("data")
    if not isinstance(data, h5py.Group):
        raise WeightsError("no /data group: not an HDF5 caffemodel written by Caffe", path)
    layers = _items(data, path, "/data")
    total = sum(_size(item) for _, item in layers)
    report = ProgressReport(progress, total, f"reading {os.path.basename(path)}")
    done = 0
    try:
        for name, group in layers:
            where = f"/data/{name}"
            if not isinstance(group, h5py.Group):
                raise WeightsError("is not a group (one group per layer expected)", path, where)
            datasets = dict(_items(group, path, where))
            expected = [str(i) for i in range(len(datasets))]
            if sorted(datasets, key=_index_key) != expected:
                raise WeightsError(f"datasets {sorted(datasets)} are not named 0…{len(datasets) - 1} "
                                   "(a shared parameter Caffe did not save?)", path, where)
            blobs = []
            for key in expected:
                blobs.append(_read_blob(datasets[key], path, f"{where}/{key}"))
                done += blobs[-1].nbytes
                report(done)
            if blobs:
                weights[name] = blobs
            else:
                weights.empty[name] = ""
    finally:
        report.close()
    return weights


def read_hdf5_solverstate(path: str | os.PathLike) -> Message:
    """Caffe's ``.solverstate.h5`` as a ``SolverState`` message (iter, current_step,
    learned_net when present, history in index order), as ``RestoreSolverStateFromHDF5``."""
    import h5py

    with _opened(path) as f:
        state = Message("SolverState")
        for key in ("iter", "current_step"):
            setattr(state, key, _read_int(f, key, path))
        if "learned_net" in f:
            state.learned_net = _read_string(f, "learned_net", path)
        history = f.get("history")
        if not isinstance(history, h5py.Group):
            raise WeightsError("no /history group: not a solver state written by Caffe", path)
        datasets = dict(_items(history, path, "/history"))
        expected = [str(i) for i in range(len(datasets))]
        if sorted(datasets, key=_index_key) != expected:
            raise WeightsError(f"datasets {sorted(datasets)} are not named 0…{len(datasets) - 1}",
                               path, "/history")
        state.history = [blob_message(_read_blob(datasets[key], path, f"/history/{key}"))
                         for key in expected]
        return state


def _read_int(f, key: str, path) -> int:
    value = _read_blob(_dataset(f, key, path), path, f"/{key}").reshape(-1)
    if value.size != 1 or not np.isfinite(value[0]) or value[0] != np.trunc(value[0]):
        raise WeightsError(f"holds {value[:4].tolist()}, not one integer", path, f"/{key}")
    return int(value[0])


def _read_string(f, key: str, path) -> str:
    import h5py

    dataset = _dataset(f, key, path)
    if h5py.check_string_dtype(dataset.dtype) is None and dataset.dtype.kind != "S":
        raise WeightsError(f"holds {dataset.dtype}, not a string", path, f"/{key}")
    value = dataset[()]
    value = value.reshape(-1)[0] if hasattr(value, "reshape") else value
    return value.decode("utf-8", "replace").rstrip("\0") if isinstance(value, bytes) else str(value)


def _dataset(f, key: str, path):
    import h5py

    dataset = f.get(key)
    if not isinstance(dataset, h5py.Dataset):
        raise WeightsError(f"no /{key} dataset: not a solver state written by Caffe", path)
    return dataset


def _items(group, path, where):
    try:
        return list(group.items())
    except (OSError, KeyError, RuntimeError) as err:
        raise WeightsError(f"unreadable HDF5 group ({_first_line(err)})", path, where) from None


def _size(group) -> int:
    import h5py

    if not isinstance(group, h5py.Group):
        return 0
    try:
        return sum(int(d.size) * 4 for d in group.values() if isinstance(d, h5py.Dataset))
    except (OSError, KeyError, RuntimeError, TypeError):
        return 0


def _index_key(name: str):
    return (0, int(name)) if name.isdigit() else (1, name)


def _read_blob(dataset, path, where: str) -> np.ndarray:
    import h5py

    if not isinstance(dataset, h5py.Dataset):
        raise WeightsError("is not a dataset", path, where)
    if dataset.dtype.kind not in "fiu":
        raise WeightsError(f"holds {dataset.dtype}, not numbers (Caffe reads float or integer "
                           "datasets)", path, where)
    if dataset.ndim > MAX_BLOB_AXES:
        raise WeightsError(f"{dataset.ndim} axes (Caffe allows {MAX_BLOB_AXES})", path, where)
    _check_storage(dataset, path, where)
    try:
        values = dataset[()]
    except (OSError, ValueError, RuntimeError) as err:
        raise WeightsError(f"unreadable dataset ({_first_line(err)})", path, where) from None
    return np.asarray(values, dtype=np.float32, order="C")


# deflate expands at most ~1032:1; a dataset declaring more than that over the file's size is a lie
_MAX_EXPANSION = 1100


def _check_storage(dataset, path, where: str) -> None:
    """Refuse what Caffe's writer never makes and a reader must not follow or allocate: data
    stored in *another* file (external storage, virtual datasets), or a declared size the file
    cannot hold (checked before any allocation, as the binary reader checks its counts)."""
    if dataset.external:
        files = ", ".join(str(entry[0]) for entry in dataset.external)
        raise WeightsError(f"stores its data in another file ({files}; HDF5 external storage) — refused",
                           path, where)
    if getattr(dataset, "is_virtual", False):
        raise WeightsError("is a virtual dataset (its data live in other files) — refused", path, where)
    count = int(np.prod(dataset.shape, dtype=np.float64)) if dataset.shape else 1
    if count > 2**31 - 1:
        raise WeightsError(f"shape {dataset.shape} holds {count:,} values, more than Caffe's blob limit of "
                           f"2^31 - 1", path, where)
    declared = count * dataset.dtype.itemsize
    size = os.path.getsize(path)
    limit = size * (_MAX_EXPANSION if dataset.compression or dataset.chunks else 1)
    if declared > limit + 4096:
        raise WeightsError(f"declares {declared:,} bytes of data in a {size:,}-byte file (truncated or "
                           f"forged) — not read", path, where)


def write_hdf5(path: str | os.PathLike, weights: Mapping[str, Sequence[np.ndarray]],
               net: Message | None = None, progress: Progress = None,
               diffs: Mapping[str, Sequence[np.ndarray]] | None = None) -> None:
    """Write ``weights`` in ``Net.save_hdf5``'s layout, atomically.

    With ``net`` every layer of the net gets its group (as Caffe writes, parameterless layers
    included); without it, each entry of ``weights`` does. ``diffs`` (the solver's
    ``snapshot_diff``) go to a ``/diff`` group of the same layout, as ``ToHDF5(…, write_diff)``.
    """
    import h5py

    diffs = check_diffs(weights, diffs)

    names = list(weights)
    if net is not None:
        layer_names = [layer.name for layer in net_layers(net)]
        missing = set(weights) - set(layer_names)
        if missing:
            raise ValueError(f"weights for layers the net does not have: {', '.join(sorted(missing))}")
        names = layer_names
    if len(set(names)) != len(names):
        raise ValueError("duplicate layer names: HDF5 has one group per name (Caffe fails here too)")
    for name in names:
        if not isinstance(name, str) or not name or "/" in name or name == ".":
            raise ValueError(f"layer name {name!r} cannot name an HDF5 group")
    groups = {"data": weights} if diffs is None else {"data": weights, "diff": diffs}
    blobs = {(group, name): [float32_blob(a, name) for a in arrays[name]]
             for group, arrays in groups.items() for name in names if name in arrays}
    total = sum(a.nbytes for arrays in blobs.values() for a in arrays)
    report = ProgressReport(progress, total, f"writing {os.path.basename(path)}")
    done = 0
    try:
        with atomic_output(path) as tmp:
            with h5py.File(tmp, "w") as f:
                for top in groups:
                    layers = f.create_group(top)
                    for name in names:
                        group = layers.create_group(name)
                        for i, array in enumerate(blobs.get((top, name), [])):
                            group.create_dataset(str(i), data=array)
                            done += array.nbytes
                            report(done)
    finally:
        report.close()


def _first_line(err: Exception) -> str:
    text = str(err)
    return text.splitlines()[0] if text else type(err).__name__

"""Weights between Caffe's form and PyTorch's: ``{layer: [blob, …]}`` ⇄ state_dict, and files.

A state_dict names Caffe blob ``i`` of layer ``L`` as ``L.weight`` (i = 0), ``L.bias``
(i = 1) and ``L.blob<i>`` (i ≥ 2), holding the shapes Caffe holds after its legacy upgrade.
``.pth`` files are plain state_dicts, saved with ``torch.save`` and always read with
``torch.load(..., weights_only=True)``: a ``.pth`` from elsewhere cannot run code.
"""
from __future__ import annotations

import os
import re
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from reproduce.caffe.errors import WeightsError

if TYPE_CHECKING:  # torch is imported where it is used: reading a caffemodel needs none
    import torch

_BLOB_KEY = re.compile(r"^(?P<layer>.+)\.(?P<blob>weight|bias|blob(?P<index>\d+))$")
CAFFE_SUFFIXES = (".caffemodel", ".caffemodel.h5", ".h5", ".hdf5")


def blob_key(layer: str, index: int) -> str:
    return f"{layer}.{('weight', 'bias')[index] if index < 2 else f'blob{index}'}"


def weights_to_state_dict(weights: Mapping[str, Sequence[np.ndarray]]) -> "OrderedDict[str, torch.Tensor]":
    import torch

    state = OrderedDict()
    for layer, blobs in weights.items():
        for i, blob in enumerate(blobs):
            state[blob_key(layer, i)] = torch.from_numpy(np.array(blob, dtype=np.float32, copy=True))
    return state


def state_dict_to_weights(state: Mapping[str, torch.Tensor], source: str = "<state_dict>") -> "OrderedDict[str, list[np.ndarray]]":
    """Group a state_dict back into Caffe blobs; blob indices must run 0, 1, … without gaps."""
    indexed: "OrderedDict[str, dict[int, np.ndarray]]" = OrderedDict()
    for key, tensor in state.items():
        m = _BLOB_KEY.match(key)
        if not m:
            raise WeightsError("not a Caffe blob name (expected <layer>.weight, <layer>.bias or "
                               "<layer>.blob<i>)", source, f"key {key!r}")
        index = {"weight": 0, "bias": 1}.get(m["blob"], int(m["index"] or 0))
        indexed.setdefault(m["layer"], {})[index] = _blob_array(tensor, source, key)
    weights = OrderedDict()
    for layer, blobs in indexed.items():
        if sorted(blobs) != list(range(len(blobs))):
            raise WeightsError(f"blob indices {sorted(blobs)} have a gap", source, f"layer {layer!r}")
        weights[layer] = [blobs[i] for i in range(len(blobs))]
    return weights


def _blob_array(value, source: str, key: str) -> np.ndarray:
    """A state_dict entry as a float32 blob: real tensors or arrays only (blobs are float)."""
    import torch

    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray):
        raise WeightsError(f"holds a value of type {type(value).__name__}, not a tensor", source,
                           f"key {key!r}")
    if value.dtype.kind not in "biuf":
        raise WeightsError(f"a {value.dtype} tensor; Caffe blobs hold real numbers", source,
                           f"key {key!r}")
    return value.astype(np.float32, copy=False)


def check_weights_fit(net_param, weights: Mapping[str, Sequence[np.ndarray]], source: str) -> None:
    """Raise ``NetError`` unless Caffe's ``CopyTrainedLayersFrom`` would load ``weights`` into
    the net: every layer the net has in either phase gets as many blobs as it holds, each of
    its shape (a legacy 4-axis shape where Caffe accepts one). Layers the net lacks are
    ignored, as Caffe ignores them."""
    from reproduce.net import Net

    phases = ["test"]
    if any(layer.include or layer.exclude for layer in net_param.layer):
        phases.append("train")
    for phase in phases:
        Net(net_param, phase=phase).copy_from(weights, name=source)


def is_caffe_weights(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(CAFFE_SUFFIXES)


def load_weights(path: str | os.PathLike, progress: bool = False) -> "OrderedDict[str, list[np.ndarray]]":
    """Read ``.caffemodel`` (V1 or current), ``.caffemodel.h5`` or ``.pth`` into Caffe blobs."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such weights file")
    if path.suffix.lower() in (".pth", ".pt"):
        from reproduce.weights.safe_load import TensorFileError, load_tensors

        try:
            state = load_tensors(path)
        except TensorFileError as err:
            raise WeightsError(f"not a plain PyTorch state_dict: {err}", path) from None
        if not isinstance(state, Mapping):
            raise WeightsError(f"holds a {type(state).__name__}, not a state_dict", path)
        return state_dict_to_weights(state, str(path))
    from reproduce.caffe.weights import read_weights

    return read_weights(path, progress=progress) if progress else read_weights(path)


def save_weights(path: str | os.PathLike, weights: Mapping[str, Sequence[np.ndarray]], net=None) -> Path:
    """Write ``.pth``, ``.caffemodel`` or ``.caffemodel.h5`` by the file name, atomically."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith((".pth", ".pt")):
        _atomic_torch_save(weights_to_state_dict(weights), path)
    elif name.endswith((".h5", ".hdf5")):
        from reproduce.caffe.weights import write_hdf5

        write_hdf5(path, weights, net)
    elif name.endswith(".caffemodel"):
        from reproduce.caffe.weights import write_caffemodel

        write_caffemodel(path, weights, net)
    else:
        raise WeightsError("unknown output format (use .pth, .caffemodel or .caffemodel.h5)", path)
    return path


def _atomic_torch_save(obj, path: Path) -> None:
    """``torch.save`` through ``atomic_output``: the permissions of every other output (umask),
    a planted symlink replaced rather than followed, and a killed writer's temporary removed
    by the next write."""
    import torch

    from reproduce.caffe.files import atomic_output

    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:
            torch.save(obj, f)

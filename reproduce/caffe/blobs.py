"""The BlobProto helpers binary and HDF5 caffemodels share (``weights`` and ``hdf5`` both use
them, so neither has to import the other's internals): float32 blobs as ``Blob<float>`` holds
them, ``Blob::ToProto``'s BlobProto, diffs checked against their blobs, and a net's layer list
after the V1 upgrade ``Net`` applies.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .schema import Message
from .upgrade import upgrade_net

MAX_BLOB_AXES = 32            # Caffe's kMaxBlobAxes

Weights = dict[str, list[np.ndarray]]


class StoredWeights(dict):
    """``{layer: [blob, …]}`` as read from a file, which also remembers the file (``source``)
    and the layers stored there *without* blobs (``empty``: name → type, "" where the format
    keeps no type). Caffe's ``CopyTrainedLayersFrom`` checks the blob count of every source
    layer the net has, so a parameter layer stored with no blobs is an error there
    ("Incompatible number of blobs for layer …"), not a layer to skip."""

    def __init__(self, *args, source: str = "", empty: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.source = source
        self.empty: dict[str, str] = dict(empty or {})


def empty_layers(weights) -> dict[str, str]:
    """The layers ``weights`` (a ``StoredWeights``) holds with no blobs; {} for a plain dict."""
    return dict(getattr(weights, "empty", {}) or {})


def weights_source(weights, default: str = "<dict>") -> str:
    """The file ``weights`` was read from, for messages; ``default`` for a plain dict."""
    return getattr(weights, "source", "") or default


def blob_message(array: np.ndarray, layer: str = "?", diff: np.ndarray | None = None) -> Message:
    """A BlobProto as ``Blob<float>::ToProto`` writes it: ``shape`` (absent for 0 axes), packed
    data, and packed diff when ``diff`` is given (``write_diff``)."""
    array = float32_blob(array, layer)
    blob = Message("BlobProto")
    if array.ndim:
        blob.mutable("shape").dim = [int(d) for d in array.shape]
    blob.data = array.reshape(-1)
    if diff is not None:
        blob.diff = float32_blob(diff, layer).reshape(-1)
    return blob


def check_diffs(weights: Mapping[str, Sequence[np.ndarray]],
                diffs: Mapping[str, Sequence[np.ndarray]] | None):
    """``diffs`` if it gives every blob of ``weights`` one diff of the blob's shape, else a
    ValueError naming the layer (Caffe's diff is the blob's own second buffer)."""
    if diffs is None:
        return None
    if set(diffs) != set(weights):
        raise ValueError(f"diffs are for layers {sorted(diffs)}, the weights for {sorted(weights)}")
    for name, params in weights.items():
        if len(diffs[name]) != len(params) or any(
                np.shape(d) != np.shape(a) for a, d in zip(params, diffs[name])):
            raise ValueError(f"layer {name!r}: diff shapes {[np.shape(d) for d in diffs[name]]} "
                             f"differ from the blob shapes {[np.shape(a) for a in params]}")
    return diffs


def float32_blob(array, layer: str) -> np.ndarray:
    """``array`` as a C-contiguous float32 array (no copy when it is one), or a clear error."""
    array = np.asarray(array)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise TypeError(f"layer {layer!r}: blob of dtype {array.dtype} cannot be written as float32")
    if array.ndim > MAX_BLOB_AXES:
        raise ValueError(f"layer {layer!r}: blob with {array.ndim} axes (Caffe allows {MAX_BLOB_AXES})")
    with np.errstate(over="ignore"):
        return np.asarray(array, dtype=np.float32, order="C")  # keeps 0-d blobs 0-d


def net_layers(net: Message) -> list[Message]:
    """The ``layer`` list of a NetParameter, upgrading a V1 net (``layers``) first."""
    if net.has("layers"):
        net, _ = upgrade_net(net)
    return net.layer

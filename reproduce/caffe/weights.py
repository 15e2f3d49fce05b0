"""Binary caffemodels (a serialized NetParameter) read and written as Caffe does; HDF5 by dispatch
(``hdf5``; the blob helpers both formats share are in ``blobs``).

Reading mirrors ``Net::CopyTrainedLayersFrom``: Caffe picks the HDF5 reader by content
(``H5Fis_hdf5``), otherwise parses the whole file as a NetParameter, V1 (``layers``) or
current (``layer``), and copies each layer's blobs by layer name. ``read_weights`` returns
those blobs as float32 arrays in the shapes Caffe's net holds after the copy:

* a blob's ``shape`` gives its shape, unless any legacy ``num/channels/height/width`` field is
  set — then, as ``Blob::FromProto``/``ShapeEquals`` do, the shape is that 4-d legacy one,
  which Caffe matches against the layer's own blob padded with leading 1s. So a legacy
  InnerProduct weight 1×1×out×in is held as out×in, every legacy bias 1×1×1×n as n, and
  convolution weights stay 4-d (other layer types keep the 4-d legacy shape; see
  ``held_shape``);
* ``double_data``, when present, wins over ``data`` and is rounded to float32, as Caffe's
  float net does.

The file is read into one writable buffer and the arrays are views of it: peak memory is
the file size. Writing mirrors ``Net::ToProto`` + ``WriteProtoToBinaryFile``: the net name,
then one ``layer`` per layer with its full LayerParameter and its blobs (``shape`` + packed
``data``), streamed to a temporary file that atomically replaces the target.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence

import numpy as np

from . import wire
from .blobs import MAX_BLOB_AXES, StoredWeights, Weights, blob_message, check_diffs, float32_blob, net_layers
from .errors import UpgradeError, WeightsError
from .files import SNIFF_BYTES, Progress, ProgressReport, atomic_output, foreign_format, is_hdf5
from .hdf5 import read_hdf5, write_hdf5
from .schema import Message

MAX_BLOB_COUNT = 2**31 - 1    # Blob::Reshape checks count <= INT_MAX
PROTOBUF_LIMIT = 2**31 - 1    # kProtoReadBytesLimit, and protobuf's own serialization limit
_READ_CHUNK = 64 << 20
_LEGACY_FIELDS = ("num", "channels", "height", "width")
_CONVOLUTIONS = frozenset({"Convolution", "Deconvolution", "CONVOLUTION", "DECONVOLUTION"})
_INNER_PRODUCTS = frozenset({"InnerProduct", "INNER_PRODUCT"})


# --------------------------------------------------------------------------- reading


def read_caffemodel(path: str | os.PathLike, progress: Progress = None) -> Message:
    """The NetParameter of a binary caffemodel, exactly as stored (V1 files stay V1).

    Blob ``data`` (and ``double_data``) are writable views of one buffer holding the file.
    """
    net, _ = _read_net(path, progress)
    return net


def read_weights(path: str | os.PathLike, progress: Progress = None) -> Weights:
    """``{layer name: [blob, …]}`` of a binary or HDF5 caffemodel, in file order, as Caffe holds them.

    Layers without blobs are left out of the dict but listed in its ``empty`` (name → type):
    a net layer with parameters refuses them when copying, as Caffe does. When two layers
    share a name the later one wins, as it does when Caffe copies them one after the other.
    """
    if is_hdf5(path):
        return read_hdf5(path, progress)
    net, positions = _read_net(path, progress)
    weights = StoredWeights(source=os.fspath(path))
    for name, type_, blobs in caffemodel_layers(net, path, positions):
        weights.pop(name, None)
        weights.empty.pop(name, None)
        if blobs:
            weights[name] = blobs
        else:
            weights.empty[name] = str(type_)
    return weights


def caffemodel_layers(net: Message, path: str | os.PathLike = "<net>",
                      positions: dict[int, int] | None = None) -> list[tuple[str, str, list[np.ndarray]]]:
    """``(name, type, blobs)`` of every layer of a decoded caffemodel, blobs as ``read_weights`` gives them.

    ``type`` is the type string, or the V1 enum name (``"CONVOLUTION"``) for V1 layers.
    """
    if net.has("layer") and net.has("layers"):
        where = f"byte {positions[id(net.layers[0])]}" if positions and id(net.layers[0]) in positions else ""
        raise UpgradeError("holds both 'layer' and 'layers' (Caffe refuses to upgrade such an "
                           "inconsistent NetParameter)", path, where)
    rows = []
    for layer in (net.layers if net.has("layers") else net.layer):
        blobs = [blob_array(blob, layer.name, layer.type, i, path, positions)
                 for i, blob in enumerate(layer.blobs)]
        rows.append((layer.name, layer.type, blobs))
    return rows


def blob_array(blob: Message, layer_name: str, layer_type: str, index: int,
               path: str | os.PathLike = "<net>", positions: dict[int, int] | None = None) -> np.ndarray:
    """One BlobProto's data as the float32 array Caffe holds (see the module docstring)."""
    where = f"byte {positions[id(blob)]}" if positions and id(blob) in positions else ""
    what = f"layer {layer_name!r} blob {index}"
    legacy = _is_legacy(blob)
    stored = tuple(getattr(blob, name) for name in _LEGACY_FIELDS) if legacy else tuple(blob.shape.dim)
    if len(stored) > MAX_BLOB_AXES:
        raise WeightsError(f"{what}: {len(stored)} axes (Caffe allows {MAX_BLOB_AXES})", path, where)
    if any(d < 0 for d in stored):
        raise WeightsError(f"{what}: negative dimension in shape {stored}", path, where)
    count = math.prod(stored)
    if count > MAX_BLOB_COUNT:
        raise WeightsError(f"{what}: shape {stored} holds {count} values, more than Caffe's "
                           f"blob limit of 2^31 - 1", path, where)
    if blob.has("double_data"):   # Blob::FromProto prefers double_data when it is non-empty
        data = np.asarray(blob.double_data, dtype=np.float64).astype(np.float32)
        source = "double_data"
    else:
        data = np.asarray(blob.data, dtype=np.float32)
        source = "data"
    if data.size != count:
        raise WeightsError(f"{what}: shape {'×'.join(map(str, stored)) or 'scalar'} holds {count} "
                           f"values but {source} has {data.size}", path, where)
    return data.reshape(held_shape(stored, layer_type, index) if legacy else stored)


def held_shape(legacy: tuple[int, int, int, int], layer_type: str, index: int) -> tuple[int, ...]:
    """The shape Caffe's layer holds for a blob stored with legacy ``(num, channels, height, width)``.

    Legacy blobs were indexed from the end: an InnerProduct weight N×K was stored 1×1×N×K and
    every bias N as 1×1×1×N; ``ShapeEquals`` accepts them against the 2-d / 1-d blobs the
    layers create. Convolution weights are 4-d anyway. Other layer types keep the 4-d shape:
    which shape they hold depends on their parameters, not on the file.
    """
    num, channels, height, width = legacy
    if layer_type in _CONVOLUTIONS and index == 0:
        return legacy
    if layer_type in _CONVOLUTIONS | _INNER_PRODUCTS and index == 1 and num == channels == height == 1:
        return (width,)
    if layer_type in _INNER_PRODUCTS and index == 0 and num == channels == 1:
        return (height, width)
    return legacy


def _is_legacy(blob: Message) -> bool:
    """Blob::FromProto's test: any legacy dimension set means the 4-d legacy shape, ``shape`` ignored."""
    return any(blob.has(name) for name in _LEGACY_FIELDS)


def _read_net(path: str | os.PathLike, progress: Progress) -> tuple[Message, dict[int, int]]:
    buffer = _read_whole_file(path, progress)
    positions: dict[int, int] = {}
    unknown: dict[tuple[str, int], int] = {}
    net = wire.decode(buffer, "NetParameter", path, positions=positions, unknown=unknown)
    v0_layer = unknown.get(("V1LayerParameter", 1))   # caffe.proto's V0LayerParameter, not in our schema
    if v0_layer is not None:
        raise UpgradeError("a V0 net (layers { layer { … } }), which this suite does not read; "
                           "upgrade it with Caffe's upgrade_net_proto_binary", path, f"byte {v0_layer}")
    if not net.has("layer") and not net.has("layers"):
        raise WeightsError("no layers: not a Caffe model (a NetParameter without layers)", path, "byte 0")
    return net, positions


def _read_whole_file(path: str | os.PathLike, progress: Progress) -> np.ndarray:
    """The file's bytes in one writable uint8 array, after checking it is not a foreign format."""
    with open(path, "rb", buffering=0) as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise WeightsError("empty file, not a Caffe binary model", path, "byte 0")
        head = f.read(SNIFF_BYTES)
        foreign = foreign_format(head, complete=len(head) == size)
        if foreign == "an HDF5 file":
            raise WeightsError("an HDF5 caffemodel, not a binary one: read it with read_weights",
                               path, "byte 0")
        if foreign:
            raise WeightsError(f"not a Caffe binary model: {foreign}", path, "byte 0")
        buffer = np.empty(size, dtype=np.uint8)
        view = memoryview(buffer)
        view[:len(head)] = head
        done = len(head)
        report = ProgressReport(progress, size, f"reading {os.path.basename(path)}")
        try:
            while done < size:
                n = f.readinto(view[done:done + _READ_CHUNK])
                if not n:
                    raise WeightsError("file shrank while being read", path, f"byte {done}")
                done += n
                report(done)
            report(done)
        finally:
            report.close()
    return buffer


# --------------------------------------------------------------------------- writing


def write_caffemodel(path: str | os.PathLike, weights: Mapping[str, Sequence[np.ndarray]],
                     net: Message | None = None, progress: Progress = None,
                     diffs: Mapping[str, Sequence[np.ndarray]] | None = None) -> None:
    """Write ``weights`` as a binary caffemodel in ``Net.save``'s layout, atomically.

    With ``net`` (a NetParameter; V1 is upgraded first) every layer of the net is written
    with its full LayerParameter and, when ``weights`` has its name, its blobs (the net's own
    blobs are not written); every name in ``weights`` must be a layer of the net. Without
    ``net`` each entry becomes a layer holding just its name and blobs, which is all
    ``CopyTrainedLayersFrom`` reads. ``diffs`` (the solver's ``snapshot_diff``) gives each
    layer's blob diffs, written beside the data as ``ToProto(…, write_diff=true)`` does.
    """
    model = caffemodel_message(weights, net, diffs)
    total = wire.encoded_size(model)
    if total > PROTOBUF_LIMIT:
        raise ValueError(f"{os.fspath(path)}: {total} bytes exceed the 2 GB protobuf limit; "
                         "Caffe could not read this caffemodel")
    report = ProgressReport(progress, total, f"writing {os.path.basename(path)}")
    try:
        with atomic_output(path) as tmp, open(tmp, "wb") as f:
            wire.write_message(model, f, report)
        report(total)
    finally:
        report.close()


def caffemodel_message(weights: Mapping[str, Sequence[np.ndarray]], net: Message | None = None,
                       diffs: Mapping[str, Sequence[np.ndarray]] | None = None) -> Message:
    """The NetParameter ``write_caffemodel`` writes (arrays referenced, not copied, when float32)."""
    diffs = check_diffs(weights, diffs)
    model = Message("NetParameter")
    model.name = net.name if net is not None else ""   # Net::ToProto always sets the name
    for name, params in weights.items():
        if not isinstance(name, str):
            raise TypeError(f"layer names must be str, got {name!r}")
        if isinstance(params, np.ndarray):
            raise TypeError(f"layer {name!r}: expected a list of blobs, got a single array")
    if net is None:
        for name, params in weights.items():
            model.layer.append(Message("LayerParameter", name=name,
                                       blobs=_blob_messages(name, params, diffs)))
        return model
    layers = list(net_layers(net))
    missing = set(weights) - {layer.name for layer in layers}
    if missing:
        raise ValueError(f"weights for layers the net does not have: {', '.join(sorted(missing))}")
    for source in layers:
        layer = Message("LayerParameter")
        for f, value in source.present_fields():
            if f.name != "blobs":
                setattr(layer, f.name, value)
        if source.name in weights:
            layer.blobs = _blob_messages(source.name, weights[source.name], diffs)
        model.layer.append(layer)
    return model


def _blob_messages(name: str, params: Sequence[np.ndarray],
                   diffs: Mapping[str, Sequence[np.ndarray]] | None) -> list[Message]:
    return [blob_message(a, name, None if diffs is None else diffs[name][i])
            for i, a in enumerate(params)]

"""Write nets and weights in Caffe's legacy V1 format, as ``VGG_ILSVRC_16_layers.caffemodel`` is.

The demo's pre-trained classifier is saved the way the real ILSVRC base nets were released,
so the stages read it through the same path as the real file (``upgrade_net`` and the
legacy blob shapes of ``caffe.weights``). This is the inverse of Caffe's ``UpgradeV1Net``:

* ``layer { type: "Convolution" param { lr_mult decay_mult } }`` → ``layers { type: CONVOLUTION
  blobs_lr weight_decay }`` (the enum names of ``V1LayerParameter.LayerType``);
* an ``Input`` layer → net-level ``input:`` / ``input_dim:`` (four per input);
* blobs carry only the legacy ``num/channels/height/width``: convolution weights
  out×in×kh×kw, InnerProduct weights 1×1×out×in, biases 1×1×1×n (as the 2014 files do).
"""
from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np

from reproduce.caffe import wire
from reproduce.caffe.files import atomic_output
from reproduce.caffe.schema import Message
from reproduce.caffe.upgrade import V1_LAYER_TYPES

V1_ENUM_OF_TYPE = {type_name: enum for enum, type_name in V1_LAYER_TYPES.items() if type_name}
_V1_PARAM_FIELDS = tuple(name for name in Message("V1LayerParameter").descriptor.fields
                         if name.endswith("_param"))


class LegacyExportError(ValueError):
    """A net that cannot be expressed in the V1 format."""


def downgrade_net(net: Message) -> Message:
    """The V1 NetParameter (``layers``, enum types, net-level inputs) of a current one."""
    v1 = Message("NetParameter")
    if net.has("name"):
        v1.name = net.name
    for layer in net.layer:
        if layer.type == "Input":
            shapes = list(layer.input_param.shape)
            if len(shapes) not in (1, len(layer.top)):
                raise LegacyExportError(f"Input layer {layer.name!r}: {len(layer.top)} tops but "
                                        f"{len(shapes)} shapes")
            for i, top in enumerate(layer.top):
                dims = [int(d) for d in shapes[min(i, len(shapes) - 1)].dim]
                if len(dims) != 4:
                    raise LegacyExportError(f"input {top!r}: V1 input_dim needs 4 axes, got {dims}")
                v1.input.append(top)
                v1.input_dim.extend(dims)
            continue
        v1.layers.append(downgrade_layer(layer))
    return v1


def downgrade_layer(layer: Message) -> Message:
    if layer.type not in V1_ENUM_OF_TYPE:
        raise LegacyExportError(f"layer {layer.name!r}: type {layer.type!r} has no V1 equivalent")
    v1 = Message("V1LayerParameter", name=layer.name, type=V1_ENUM_OF_TYPE[layer.type])
    v1.bottom = list(layer.bottom)
    v1.top = list(layer.top)
    for param in layer.param:
        if param.has("name") or param.has("share_mode"):
            raise LegacyExportError(f"layer {layer.name!r}: shared parameters are not exported")
        v1.blobs_lr.append(float(param.lr_mult))
        v1.weight_decay.append(float(param.decay_mult))
    if layer.has("include"):
        v1.include = [i.copy() for i in layer.include]
    if layer.has("exclude"):
        v1.exclude = [e.copy() for e in layer.exclude]
    if layer.has("loss_weight"):
        v1.loss_weight = list(layer.loss_weight)
    for name in _V1_PARAM_FIELDS:
        if layer.has(name):
            setattr(v1, name, getattr(layer, name).copy())
    return v1


def legacy_blob(array: np.ndarray, layer_type: str, index: int) -> Message:
    """A BlobProto with only num/channels/height/width, shaped as the 2014 caffemodels are."""
    array = np.ascontiguousarray(array, dtype=np.float32)
    if array.ndim == 4:
        dims = array.shape
    elif layer_type == "InnerProduct" and index == 0 and array.ndim == 2:
        dims = (1, 1) + array.shape
    elif array.ndim == 1:
        dims = (1, 1, 1, array.shape[0])
    elif array.ndim < 4:
        dims = (1,) * (4 - array.ndim) + array.shape
    else:
        raise LegacyExportError(f"a {array.ndim}-axis blob cannot be stored with legacy dimensions")
    blob = Message("BlobProto", num=int(dims[0]), channels=int(dims[1]),
                   height=int(dims[2]), width=int(dims[3]))
    blob.data = array.reshape(-1)
    return blob


def v1_caffemodel(v1_net: Message, weights: Mapping[str, Sequence[np.ndarray]]) -> Message:
    """The V1 NetParameter with blobs (what ``write_v1_caffemodel`` writes).

    As the released files: the net name, net-level ``input``/``input_dim``, then the layer
    definitions of ``v1_net`` with their blobs.
    """
    names = {layer.name for layer in v1_net.layers}
    unknown = sorted(set(weights) - names)
    if unknown:
        raise LegacyExportError(f"weights for layers the net does not have: {', '.join(unknown)}")
    model = Message("NetParameter", name=v1_net.name)
    if v1_net.has("input"):
        model.input = list(v1_net.input)
        model.input_dim = list(v1_net.input_dim)
    type_of = {enum: type_name for enum, type_name in V1_LAYER_TYPES.items()}
    for layer in v1_net.layers:
        copy = layer.copy()
        if layer.name in weights:
            copy.blobs = [legacy_blob(a, type_of[layer.type], i) for i, a in enumerate(weights[layer.name])]
        model.layers.append(copy)
    return model


def write_v1_caffemodel(path: str | os.PathLike, weights: Mapping[str, Sequence[np.ndarray]],
                        v1_net: Message) -> None:
    """Write ``weights`` into a V1 binary caffemodel at ``path``, atomically."""
    data = wire.encode(v1_caffemodel(v1_net, weights))
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        f.write(data)

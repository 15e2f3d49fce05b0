"""Per-parameter learning-rate and weight-decay multipliers, read off a net description.

Caffe gives parameter blob ``i`` of a layer the layer's ``param[i]`` ``ParamSpec`` (default
``lr_mult: 1``, ``decay_mult: 1`` when the layer lists fewer specs than it has blobs). How
many blobs a layer has depends on its type and settings (a Deconvolution with
``bias_term: false`` has one). ``param_specs`` applies these rules to a NetParameter without
building it, so the solver settings of a model can be listed (or turned into optimizer
groups) from the same description the net is emitted from.
"""
from __future__ import annotations

from collections import OrderedDict

from reproduce.caffe.schema import Message

from .build import net_param, splits
from .widths import Widths

ParamSpecs = "OrderedDict[str, list[tuple[float, float]]]"


def learnable_blob_count(layer: Message) -> int:
    """How many parameter blobs Caffe gives ``layer`` (0 for types without parameters)."""
    kind = layer.type
    if kind in ("Convolution", "Deconvolution"):
        return 1 + bool(layer.convolution_param.bias_term)
    if kind == "InnerProduct":
        return 1 + bool(layer.inner_product_param.bias_term)
    if kind == "Embed":
        return 1 + bool(layer.embed_param.bias_term)
    if kind == "Scale":  # a second bottom supplies the scale instead of a blob
        return (len(layer.bottom) == 1) + bool(layer.scale_param.bias_term)
    if kind == "Bias":
        return int(len(layer.bottom) == 1)
    if kind == "PReLU":
        return 1
    if kind == "BatchNorm":
        return 3
    return 0


def param_specs(net: Message) -> ParamSpecs:
    """Layer name → ``[(lr_mult, decay_mult)]`` per parameter blob, for every layer with
    parameters, in net order (the same table as ``reproduce.net.Net.param_specs``)."""
    table: ParamSpecs = OrderedDict()
    for layer in net.layer:
        count = learnable_blob_count(layer)
        if count:
            specs = layer.param
            table[layer.name] = [
                (float(specs[i].lr_mult), float(specs[i].decay_mult)) if i < len(specs)
                else (1.0, 1.0) for i in range(count)]
    return table


def param_groups(name: str, num_classes=None, widths: Widths = "full") -> ParamSpecs:
    """The ``(lr_mult, decay_mult)`` of every parameter of model ``name``'s training net."""
    return param_specs(net_param(name, splits(name)[0], num_classes=num_classes, widths=widths))

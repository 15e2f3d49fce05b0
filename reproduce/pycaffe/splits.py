"""Caffe's ``InsertSplits`` (``insert_splits.cpp``): the ``Split`` layers ``Net::Init`` adds.

A top read by more than one bottom (a loss weight on it counts as one more reader) gets a
``Split`` layer right after the layer producing it, named ``<blob>_<layer>_<top index>_split``,
with tops ``<blob>_<layer>_<top index>_split_<k>``; the readers' bottoms are renamed to those
tops in order. A split of a loss top carries the loss weight on its first top (and 0 on the
others) instead of the producing layer. Only loss weights the prototxt gives count (a loss
layer's default weight 1 is set later, by the layer). A split layer sets no phase (Caffe's
``ConfigureSplitLayer`` clears it): ``Net::Init`` gives it the net's.

``caffe.Net`` builds its net from the layer list this returns, so its layers, blobs, names
and saved files are Caffe's (see ``reproduce.pycaffe.net``).
"""
from __future__ import annotations

from reproduce.caffe.schema import Message
from reproduce.net.net import NetError


def split_layer_name(layer: str, blob: str, index: int) -> str:
    return f"{blob}_{layer}_{index}_split"


def split_blob_name(layer: str, blob: str, index: int, split: int) -> str:
    return f"{blob}_{layer}_{index}_split_{split}"


def insert_splits(layers: list[Message]) -> list[Message]:
    """The layer list with Caffe's split layers inserted (copies; the input is untouched)."""
    last_top: dict[str, tuple[int, int]] = {}
    source: dict[tuple[int, int], tuple[int, int]] = {}
    readers: dict[tuple[int, int], int] = {}
    loss_weight: dict[tuple[int, int], float] = {}
    for i, layer in enumerate(layers):
        for j, blob in enumerate(layer.bottom):
            if blob not in last_top:
                raise NetError(f"Unknown bottom blob '{blob}' (layer '{layer.name}', bottom "
                               f"index {j})")
            top = last_top[blob]
            source[(i, j)] = top
            readers[top] = readers.get(top, 0) + 1
        for j, blob in enumerate(layer.top):
            last_top[blob] = (i, j)
        for j in range(min(len(layer.loss_weight), len(layer.top))):
            top = last_top[layer.top[j]]
            loss_weight[top] = float(layer.loss_weight[j])
            if loss_weight[top]:
                readers[top] = readers.get(top, 0) + 1
    next_split: dict[tuple[int, int], int] = {}
    result: list[Message] = []
    for i, original in enumerate(layers):
        layer = original.copy()
        result.append(layer)
        bottoms = list(layer.bottom)
        for j, blob in enumerate(bottoms):
            top = source[(i, j)]
            if readers.get(top, 0) > 1:
                k = next_split.get(top, 0)
                next_split[top] = k + 1
                bottoms[j] = split_blob_name(layers[top[0]].name, blob, top[1], k)
        if bottoms:
            layer.bottom = bottoms
        for j, blob in enumerate(list(layer.top)):
            count = readers.get((i, j), 0)
            if count <= 1:
                continue
            weight = loss_weight.get((i, j), 0.0)
            split = Message("LayerParameter", name=split_layer_name(layer.name, blob, j),
                            type="Split", bottom=[blob],
                            top=[split_blob_name(layer.name, blob, j, k) for k in range(count)])
            if weight:
                split.loss_weight = [weight] + [0.0] * (count - 1)
                layer.clear("loss_weight")
                next_split[(i, j)] = next_split.get((i, j), 0) + 1
            result.append(split)
    return result

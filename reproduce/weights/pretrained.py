"""A named FCN net with weights from a file: what ``verify`` and ``infer`` load.

``load_net("fcn8s", "weights/fcn8s-heavy-pascal.pth", split="val")`` builds
``reproduce.models.net_param(name, split, num_classes, widths)`` as a TEST-phase
``reproduce.net.Net`` and copies the weights in by layer name, as Caffe's
``Net(prototxt, caffemodel, caffe.TEST)`` does. The weights file may be a ``.caffemodel``
(V1 or current), ``.caffemodel.h5`` or ``.pth`` (``reproduce.weights.convert.load_weights``).

``widths="auto"`` reads the width preset (``full`` or ``tiny``) off the first convolution's
output count, and ``num_classes=None`` off ``score_fr``'s, so the demo's tiny nets and the
released full nets load the same way. Unlike Caffe, which keeps filler values for layers a
file lacks, a file missing any parameter layer of the net is refused: for scoring, such a
file is not that net's weights (the ``upscore*`` deconvolutions would be zero).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

__all__ = ["detect_widths", "detect_num_classes", "load_net", "resolve_device"]

_FIRST_CONV = {"vgg16": ("conv1_1", 64), "alexnet": ("conv1", 96), "googlenet": ("conv1/7x7_s2", 64)}


def _first_conv(net_name: str) -> tuple[str, int]:
    """The first convolution's name and full width (``conv1_1``; NYUDv2's ``conv1_1_bgrd``,
    ``conv1_1color``)."""
    from reproduce.models import model

    m = model(net_name)
    layer, full = _FIRST_CONV[m.backbone]
    if m.first_conv:
        return m.first_conv, full
    return (f"{layer}{m.inputs[0]}" if m.fusion == "late" else layer), full


def _score_layers(net_name: str) -> dict[str, str]:
    """``{score blob: the layer whose outputs are its classes}`` (``score_fr``, ``score_fr_sem``…)."""
    from reproduce.models import model

    m = model(net_name)
    if m.fusion == "late":
        return {m.heads[0].score: f"score_fr{m.inputs[0]}"}
    return {h.score: f"score_fr{h.suffix}" for h in m.heads}


def detect_widths(net_name: str, weights: Mapping[str, Sequence[np.ndarray]], source: str = "weights") -> str:
    """The width preset whose first convolution has as many outputs as ``weights``' one."""
    from reproduce.models import WIDTH_PRESETS, width_map

    layer, full = _first_conv(net_name)
    if layer not in weights or not len(weights[layer]):
        raise ValueError(f"{source}: no layer {layer!r}; these are not {net_name} weights")
    outputs = int(np.shape(weights[layer][0])[0])
    for preset in WIDTH_PRESETS:
        if width_map(preset)(full) == outputs:
            return preset
    raise ValueError(f"{source}: layer {layer!r} has {outputs} outputs, which no width preset "
                     f"({', '.join(WIDTH_PRESETS)}) gives {net_name}")


def detect_num_classes(weights: Mapping[str, Sequence[np.ndarray]], default: int = 21,
                       net_name: str | None = None):
    """The class count(s) the weights score: an int, or for a net with several heads
    ``{score blob: classes}`` (``None`` entries fall back to the release's counts)."""
    if net_name is None:
        blobs = weights.get("score_fr")
        return int(np.shape(blobs[0])[0]) if blobs else default
    layers = _score_layers(net_name)
    counts = {score: int(np.shape(weights[layer][0])[0]) for score, layer in layers.items()
              if weights.get(layer)}
    if len(layers) == 1:
        return next(iter(counts.values()), None)
    return counts or None


def resolve_device(device: str = "auto"):
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_net(net_name: str, weights: str | os.PathLike | Mapping[str, Sequence[np.ndarray]], *,
             split: str = "deploy", widths: str = "auto", num_classes=None,
             device: str = "cpu"):
    """Net ``net_name`` (``reproduce.models`` name) for ``split`` with ``weights`` copied in."""
    from reproduce.weights.convert import load_weights
    from reproduce.models import net_param
    from reproduce.net import Net

    source = "weights"
    if isinstance(weights, (str, os.PathLike)):
        source = str(weights)
        weights = load_weights(Path(weights))
    if widths == "auto":
        widths = detect_widths(net_name, weights, source)
    if num_classes is None:
        num_classes = detect_num_classes(weights, net_name=net_name)
    net = Net(net_param(net_name, split, num_classes=num_classes, widths=widths), phase="test")
    missing = [name for name in net.params if name not in weights]
    if missing:
        raise ValueError(f"{source}: lacks layer(s) {', '.join(missing[:5])}"
                         f"{' …' if len(missing) > 5 else ''} of {net_name}")
    net.copy_from(weights)
    return net.to(resolve_device(device))


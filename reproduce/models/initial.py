"""The starting weights of an FCN module, as the release's ``solve.py`` leaves a net before training.

A net built from its description alone has Caffe's default filler everywhere: zeros. The
release never trains it that way: its ``solve.py`` copies a trunk in (the ILSVRC classifier by
the reference surgery, or the previous stage's result), and sets every ``up`` layer to bilinear
upsampling (``surgery.interp``); the score layers stay at their zero filler. This module does
the same to a ``reproduce.net.Net`` in place:

* ``bilinear_upsampling(net)`` — ``surgery.interp`` on every ``up`` layer (the fixed final
  upsampling, and the 2× steps of FCN-16s/8s);
* ``random_trunk(net)`` — for a module built without any weights: the trunk's convolutions
  drawn from Caffe's ``msra`` filler (He et al.: normal, ``std = sqrt(2 / fan_in)``), biases 0
  (a convolution its description already fills, as GoogLeNet's xavier, keeps that), so that a net trained from scratch gets gradients at all (all-zero weights give none); the
  score layers and fixed layers are left as the description fills them;
* ``transplant_backbone(net, source)`` — the stage's surgery from ``source``: an ILSVRC
  classifier (matching layers copied, fc6/fc7 coerced into convolutions, fc8 dropped —
  ``surgery.transplant``) or a trained FCN of the release (the trunk copied; a score or
  upsampling layer whose class count differs from the net's is re-made, zero-initialised,
  and says so). Every decision is returned in the surgery's words.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from reproduce.weights import surgery



def read_weights(weights: str | os.PathLike | Mapping[str, Sequence[Any]]) -> tuple[Mapping, str]:
    """``(weights as {layer: [arrays]}, what to call them in errors)``."""
    if isinstance(weights, (str, os.PathLike)):
        from reproduce.weights.convert import load_weights

        return load_weights(Path(weights)), os.fspath(weights)
    return weights, "<weights>"


def bilinear_upsampling(net) -> list[str]:
    """Set every ``up`` layer of ``net`` to bilinear kernels (``surgery.interp``); their names."""
    weights = net.weights_dict()
    up = surgery.interp_layer_names(weights)
    surgery.interp(weights, up)
    net.copy_from({name: weights[name] for name in up})
    return up


def random_trunk(net, generator: torch.Generator | None = None) -> list[str]:
    """Draw the trunk's learned convolutions from Caffe's msra filler (biases 0); their names."""
    from reproduce.caffe.schema import Message
    from reproduce.net.fillers import fill

    msra = Message("FillerParameter")
    msra.type = "msra"
    filled = []
    for name, blobs in net.params.items():
        layer = net.layer(name)
        if (name.startswith(surgery.CLASS_LAYERS) or layer.layer_type != "Convolution"
                or bool(blobs[0].detach().ne(0).any())):  # a filler of its own (GoogLeNet's xavier)
            continue
        with torch.no_grad():
            blobs[0].copy_(fill(msra, blobs[0].shape, generator, owner=name))
            for bias in blobs[1:]:
                bias.zero_()
        filled.append(name)
    return filled


def transplant_backbone(net, source: Mapping[str, Sequence[Any]], name: str = "<weights>") -> list[str]:
    """Transplant ``source`` (an ILSVRC classifier or a release FCN) into ``net`` in place, as
    the stage's surgery does, re-making the class-dependent layers whose shapes differ; then
    bilinear upsampling on every ``up`` layer. Returns the decisions, one line each."""
    target = net.weights_dict()
    lines: list[str] = []
    kept = surgery.without_class_layers(target, source, log=lines.append)
    try:
        result = surgery.transplant(target, kept, log=lines.append)
    except surgery.SurgeryError as err:
        raise ValueError(f"{name}: {err}") from None
    if not any(line.startswith(("copying ", "coercing ")) for line in lines):
        names = ", ".join(list(source)[:3]) + (" …" if len(source) > 3 else "")
        raise ValueError(f"{name}: none of its layers ({names}) is a layer of {net.name}; "
                         "is it the ILSVRC classifier or an FCN of this backbone?")
    net.copy_from(result, name=name)
    lines.extend(f"interp {layer} (bilinear)" for layer in bilinear_upsampling(net))
    return lines

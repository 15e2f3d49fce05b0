"""Net surgery as the reference ``surgery.py`` does it: transplant, bilinear interp, expand_score.

Everything works on weights in Caffe's form, ``{layer name: [array, …]}`` in blob order,
so the same code serves a caffemodel on disk and a live ``Net`` (see ``net_weights``).

* ``transplant(target, source)`` copies every source blob into the target blob of the same
  layer and index: *copying* when shapes match, *coercing* by flat copy when only the
  element counts match (fc6 InnerProduct 4096×25088 → 7×7 convolution 4096×512×7×7),
  *dropping* layers (and surplus blobs) the target lacks. It logs each decision in the
  reference's words and refuses a coercion whose element counts differ.
* ``interp(weights, layers)`` sets deconvolution kernels to bilinear upsampling, on the
  channel diagonal only (the reference writes ``filt`` to ``[range(m), range(k)]``).
* ``expand_score(…)`` copies a score layer's classes into one with more classes.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

Weights = "OrderedDict[str, list[np.ndarray]]"


class SurgeryError(ValueError):
    """A transplant or interp that cannot be done as asked."""


def transplant(target: Mapping[str, Sequence[np.ndarray]], source: Mapping[str, Sequence[np.ndarray]],
               suffix: str = "", log: Callable[[str], None] = print) -> "OrderedDict[str, list[np.ndarray]]":
    """Return a copy of ``target`` with ``source``'s blobs transplanted in (reference semantics)."""
    result = OrderedDict((name, [np.array(b, dtype=np.float32, copy=True) for b in blobs])
                         for name, blobs in target.items())
    for name, blobs in source.items():
        new_name = name + suffix
        if new_name not in result:
            log(f"dropping {name}")
            continue
        new_blobs = result[new_name]
        for i, blob in enumerate(blobs):
            if i >= len(new_blobs):
                log(f"dropping {name} {i}")
                break
            blob = np.asarray(blob)
            old = new_blobs[i]
            if blob.shape == old.shape:
                log(f"copying {name} {i} {_shape(blob)} -> {_shape(old)}")
            elif blob.size == old.size:
                log(f"coercing {name} {i} {_shape(blob)} -> {_shape(old)}")
            else:
                raise SurgeryError(
                    f"cannot transplant {name} blob {i}: source shape {blob.shape} "
                    f"({blob.size} values) into target {new_name} shape {old.shape} ({old.size} values)")
            new_blobs[i] = np.ascontiguousarray(blob, dtype=np.float32).reshape(old.shape).copy()
    return result


CLASS_LAYERS = ("score", "upscore")   # an FCN's layers whose shapes follow its class count


def without_class_layers(target: Mapping[str, Sequence[np.ndarray]], source: Mapping[str, Sequence[np.ndarray]],
                         log: Callable[[str], None] = print) -> dict:
    """``source`` less the class-dependent layers (``score*``, ``upscore*``) whose shapes differ
    from ``target``'s: a trained FCN going into a net of another class count keeps its trunk, and
    those layers keep the target's own values — zero scores, and the bilinear kernels ``interp``
    gives every ``up`` layer afterwards. Each such layer is logged as re-made."""
    kept = {}
    for name, blobs in source.items():
        if name.startswith(CLASS_LAYERS) and name in target and any(
                np.shape(b) != np.shape(t) for b, t in zip(blobs, target[name])):
            log(f"re-making {name} for {np.shape(target[name][0])[0]} classes (the init has "
                f"{np.shape(blobs[0])[0]}): " + ("bilinear upsampling" if name.startswith("up") else "zero scores"))
            continue
        kept[name] = blobs
    return kept


def _shape(a: np.ndarray) -> str:
    return str(tuple(int(d) for d in a.shape))


def upsample_filt(size: int) -> np.ndarray:
    """A size×size bilinear upsampling kernel (Caffe's and the reference's definition)."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = np.ogrid[:size, :size]
    return ((1 - abs(og[0] - center) / factor) * (1 - abs(og[1] - center) / factor)).astype(np.float32)


def interp(weights: Mapping[str, list[np.ndarray]], layers: Iterable[str]) -> None:
    """Set blob 0 of each layer to bilinear kernels on the channel diagonal, in place."""
    for name in layers:
        w = weights[name][0]
        m, k, h, ww = w.shape
        if m != k and k != 1:
            raise SurgeryError(f"interp {name}: input and output channels must match or output be 1, got {w.shape}")
        if h != ww:
            raise SurgeryError(f"interp {name}: filters must be square, got {h}×{ww}")
        w[range(m), range(k), :, :] = upsample_filt(h)


def interp_layer_names(layer_names: Iterable[str]) -> list[str]:
    """The layers the reference ``solve.py`` interpolates: every parameter layer named ``*up*``."""
    return [name for name in layer_names if "up" in name]


def expand_score(new_weights: Mapping[str, list[np.ndarray]], new_layer: str,
                 old_weights: Mapping[str, Sequence[np.ndarray]], old_layer: str) -> None:
    """Copy a k-class score layer into the first k outputs of a k'-class one (k < k'), in place.

    The new classes keep whatever the new net's filler gave them, as in the reference.
    """
    old_w, new_w = np.asarray(old_weights[old_layer][0]), new_weights[new_layer][0]
    old_classes = old_w.shape[0]
    if old_classes > new_w.shape[0] or old_w.shape[1:] != new_w.shape[1:]:
        raise SurgeryError(f"expand_score: {old_layer} {old_w.shape} does not fit into {new_layer} {new_w.shape}")
    new_w[:old_classes] = old_w
    if len(old_weights[old_layer]) > 1 and len(new_weights[new_layer]) > 1:
        new_weights[new_layer][1].reshape(-1)[:old_classes] = np.asarray(old_weights[old_layer][1]).reshape(-1)

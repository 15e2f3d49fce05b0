"""Filter rarefaction: a net whose one strided layer no longer subsamples (CVPR 2015 Sec. 3.2).

Long, Shelhamer and Darrell (arXiv 1411.4038, Sec. 3.2 "Shift-and-stitch is filter
rarefaction"): "Consider a layer (convolution or pooling) with input stride s, and a
subsequent convolution layer with filter weights f_ij … Setting the lower layer's input
stride to 1 upsamples its output by a factor of s … To reproduce the trick, rarefy the filter
by enlarging it as f'_ij = f_{i/s, j/s} if s divides both i and j; otherwise 0 …
Reproducing the full net output of the trick involves repeating this filter enlargement
layer-by-layer until all subsampling is removed."

``rarefy(net_param, layer, factor)`` is that construction for one layer, generalised to a
factor that divides its stride, with the enlarged filter written as a dilation so every
parameter keeps its shape (a ``Net`` built from the result takes the original net's
state_dict):

* ``layer`` (a Convolution or Pooling) has its stride divided by ``factor``; nothing before
  it changes; a ceil-mode Pooling also records ``pooling_param.rarefaction: factor`` (the
  project's schema extension), so that Caffe's ceil rounding keeps applying at its coarse
  stride and the last, overhanging window of every shift survives;
* every Convolution and Pooling after it (that reads, directly or not, what ``layer``
  produces) has its dilation and its padding multiplied by ``factor`` — Caffe's dilation is
  exactly the rarefied filter ``f'`` above, and the padding scales with the grid so that each
  dense output stands for a coarse one; their strides stay as they are (a dilated pooling,
  the project's extension ``pooling_param.dilation``, has exactly the outputs of the coarse
  poolings of its interleaved sub-grids: ``reproduce.net.layers.pooling``);
* a Crop after it has its offsets multiplied by ``factor`` (both of its bottoms are on the
  dense grid; the coordinate map of the result, ``reproduce.net.coord_map``, agrees);
* point-wise layers (ReLU, Dropout, Eltwise, channel Concat, Softmax over channels,
  BatchNorm with stored statistics, …) are unchanged.

Semantics: with ``S`` the total stride of an output of the original net, the rarefied output
is ``factor``× denser, and its element ``[factor·k + i, factor·l + j]`` is the original
output ``[k, l]`` for the input with its first ``i·S/factor`` rows and ``j·S/factor`` columns
removed — ``reproduce.shift_and_stitch(net, factor)`` — for every ``k, l`` that shift has.
Keeping the later strides is what makes this exact: a later stride ``s`` on the dense grid is
a stride ``s`` on each of the interleaved coarse grids. With ``factor`` equal to ``S``
(rarefying every strided layer in turn, ``rarefy(rarefy(p, "pool1", 2), "pool2", 2)``) the
shifts are the paper's single pixels. At the stride-aligned positions ``[factor·k,
factor·l]`` (no shift) the rarefied net is the original everywhere, borders included. At the
other positions the two agree wherever no top/left padding enters: removing the first rows
of the input moves the image's top edge, and with it every padding up to the last strided
layer, against the grid; the rarefied net sees the rows that shift-and-stitch cut off
(``tests/test_shift_and_stitch.py`` compares every position whose receptive field does not
reach above or left of the shifted input). The bottom/right edge is the same for every shift.

Refused, each with one error naming the layer: a factor that does not divide the stride, a
layer that is not a strided Convolution or Pooling, and after it a Deconvolution (an
upsampling of a grid that rarefaction already made denser: a transposed convolution reads
every input position for every output, so the interleaved shifts would mix — rarefy the
coarse net before the upsampling, ``coarse_net(p, "score_fr")``), a global pooling, a layer that
mixes positions otherwise (InnerProduct, MVN, within-channel LRN, losses…), or a layer that
reads both a rarefied and an unrarefied blob. The pooling extensions are beyond Caffe's
schema: ``reproduce.Net`` runs them, the prototxt and caffemodel writers refuse them, naming
the layer (a rarefied convolution or floor-mode pooling followed by convolutions only needs
neither, and writes).
"""
from __future__ import annotations

import os
from typing import Union

from reproduce.caffe.schema import Message

from .coord_map import BlobGraph

__all__ = ["RarefyError", "rarefy", "coarse_net"]

# layers that act on each position (and on channels) alone: unchanged on a denser grid
_POINTWISE = frozenset({
    "AbsVal", "Bias", "BNLL", "Dropout", "Eltwise", "ELU", "Exp", "Log", "Power", "ReLU",
    "PReLU", "Scale", "Sigmoid", "Split", "TanH", "Threshold", "BatchNorm", "Silence"})

NetLike = Union[Message, str, os.PathLike]


class RarefyError(ValueError):
    """A net, layer or factor that rarefaction cannot make exact."""


def _load(net: NetLike) -> Message:
    from reproduce.caffe.upgrade import read_net, upgrade_net

    if isinstance(net, Message):
        if net.type_name != "NetParameter":
            raise TypeError(f"rarefy needs a NetParameter, not a {net.type_name}")
        return upgrade_net(net.copy())[0]
    if isinstance(net, (str, os.PathLike)):
        return read_net(net)
    raise TypeError(f"rarefy needs a NetParameter Message or a prototxt path, not {type(net).__name__}")


def check_factor(factor) -> int:
    """``factor`` as a positive int, or one clear error."""
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise RarefyError(f"factor must be a positive integer, got {factor!r}")
    return factor


def _strides(layer: Message) -> tuple[int, int]:
    """The (h, w) stride of a Convolution or Pooling, as its layer reads it."""
    if layer.type == "Pooling":
        p = layer.pooling_param
        if p.global_pooling:
            raise RarefyError(f"layer {layer.name!r}: a global pooling has no stride to rarefy")
        if p.has("stride_h") or p.has("stride_w"):
            return int(p.stride_h), int(p.stride_w)
        return (int(p.stride),) * 2
    p = layer.convolution_param
    if p.has("stride_h") or p.has("stride_w"):
        return int(p.stride_h), int(p.stride_w)
    values = [int(v) for v in p.stride] or [1]
    if len(values) == 1:
        return values[0], values[0]
    if len(values) != 2:
        raise RarefyError(f"layer {layer.name!r}: rarefy handles 2-d convolutions, this one "
                          f"has {len(values)} strides")
    return values[0], values[1]


def _divide_stride(layer: Message, factor: int) -> None:
    sh, sw = _strides(layer)
    if sh % factor or sw % factor:
        raise RarefyError(f"layer {layer.name!r} has stride {sh}×{sw}; factor {factor} does not "
                          f"divide it (rarefaction turns stride s into s/factor)")
    if layer.type == "Pooling":
        p = layer.mutable("pooling_param")
        if p.has("stride_h") or p.has("stride_w"):
            p.stride_h, p.stride_w = sh // factor, sw // factor
        else:
            p.stride = sh // factor
        if p.round_mode == "CEIL" and factor > 1:   # Caffe's ceil rounding at the coarse stride
            p.rarefaction = int(p.rarefaction) * factor
        return
    p = layer.mutable("convolution_param")
    if p.has("stride_h") or p.has("stride_w"):
        p.stride_h, p.stride_w = sh // factor, sw // factor
    else:
        p.stride = [int(v) // factor for v in p.stride]


def _scale_pad(p: Message, factor: int) -> None:
    if p.has("pad_h") or p.has("pad_w"):
        p.pad_h, p.pad_w = int(p.pad_h) * factor, int(p.pad_w) * factor
    elif p.has("pad"):
        value = p.pad
        p.pad = [int(v) * factor for v in value] if isinstance(value, list) else int(value) * factor


def _dilate(layer: Message, factor: int) -> None:
    """Enlarge a later layer's filter as f'_ij = f_{i/factor, j/factor} (dilation), Sec. 3.2."""
    if layer.type == "Pooling":
        p = layer.mutable("pooling_param")
        if p.global_pooling:
            raise RarefyError(f"layer {layer.name!r}: a global pooling after the rarefied layer "
                              f"would pool the interleaved shifts together")
        p.dilation = int(p.dilation) * factor
    else:
        p = layer.mutable("convolution_param")
        if len(p.kernel_size) > 2 or len(p.stride) > 2 or len(p.pad) > 2 or len(p.dilation) > 2:
            raise RarefyError(f"layer {layer.name!r}: rarefy handles 2-d convolutions only")
        p.dilation = [int(d) * factor for d in p.dilation] or [factor]
    _scale_pad(p, factor)


def _scale_crop(layer: Message, factor: int) -> None:
    p = layer.mutable("crop_param")
    if int(p.axis) < 2:
        raise RarefyError(f"layer {layer.name!r}: a Crop after the rarefied layer may only crop "
                          f"spatial axes (axis 2 and on, of N×C×H×W), it crops from axis {p.axis}")
    p.offset = [int(o) * factor for o in p.offset]


def _refusal(layer: Message) -> str | None:
    """Why a layer after the rarefied one cannot follow it onto the denser grid (None: it can)."""
    kind = layer.type
    if kind in ("Convolution", "Pooling", "Crop") or kind in _POINTWISE:
        return None
    if kind == "LRN":
        return (None if layer.lrn_param.norm_region == "ACROSS_CHANNELS" else
                "a within-channel LRN normalises over neighbouring positions of the coarse grid")
    if kind == "Concat":
        p = layer.concat_param
        axis = p.concat_dim if p.has("concat_dim") and not p.has("axis") else p.axis
        return None if axis == 1 else "a Concat along a spatial axis"
    if kind == "Softmax":
        return None if layer.softmax_param.axis == 1 else "a Softmax over another axis than channels"
    if kind == "Deconvolution":
        return ("a Deconvolution upsamples a grid that rarefaction has already made denser; no "
                "rarefied filter reproduces shift-and-stitch through it — rarefy the coarse net "
                "before the upsampling (reproduce.net.rarefy.coarse_net)")
    return (f"a {kind} layer is not a convolution, pooling, crop or point-wise layer, so it has "
            f"no rarefied form")


def rarefy(net_param: NetLike, layer: str, factor: int) -> Message:
    """The net with ``layer``'s stride divided by ``factor`` and every later convolution and
    pooling dilated (and padded) by ``factor`` (see the module docstring; CVPR 2015 Sec. 3.2)."""
    factor = check_factor(factor)
    net = _load(net_param)
    try:
        graph = BlobGraph(net)
    except ValueError as err:
        raise RarefyError(str(err)) from None
    names = [l.name for l in graph.layers]
    if layer not in graph.index:
        strided = [l.name for l in graph.layers if l.type in ("Convolution", "Pooling")]
        raise RarefyError(f"no layer named {layer!r} in net {net.name!r} (its convolutions and "
                          f"poolings: {', '.join(strided) or 'none'})")
    if names.count(layer) > 1:
        raise RarefyError(f"net {net.name!r} has several layers named {layer!r}")
    start = graph.index[layer]
    target = graph.layers[start]
    if target.type not in ("Convolution", "Pooling"):
        raise RarefyError(f"layer {layer!r} is a {target.type}; only a Convolution or Pooling "
                          f"has a stride to rarefy")
    _divide_stride(target, factor)
    if factor == 1:
        return net
    dense = {(start, j) for j in range(len(target.top))}
    for index in range(start + 1, len(graph.layers)):
        current = graph.layers[index]
        refs = graph.bottoms[index]
        on_dense = [ref in dense for ref in refs]
        if not any(on_dense):
            continue
        if not all(on_dense):
            mixed = ", ".join(f"{b!r} ({'rarefied' if d else 'not rarefied'})"
                              for b, d in zip(current.bottom, on_dense))
            raise RarefyError(f"layer {current.name!r} ({current.type}) reads {mixed}: after "
                              f"rarefying {layer!r} by {factor} their grids no longer match")
        reason = _refusal(current)
        if reason is not None:
            raise RarefyError(f"layer {current.name!r} ({current.type}) follows the rarefied "
                              f"layer {layer!r}: {reason}")
        if current.type in ("Convolution", "Pooling"):
            _dilate(current, factor)
        elif current.type == "Crop":
            _scale_crop(current, factor)
        dense.update((index, j) for j in range(len(current.top)))
    return net


def coarse_net(net_param: NetLike, blob: str) -> Message:
    """The part of the net that computes ``blob`` (its layers in order, nothing after it) —
    e.g. the coarse score net of an FCN up to ``score_fr``, before its upsampling (Sec. 3.2
    and 4.2 apply shift-and-stitch and rarefaction to this net)."""
    net = _load(net_param)
    try:
        graph = BlobGraph(net)
        target = graph.blob(blob)
    except ValueError as err:
        raise RarefyError(str(err)) from None
    needed: set[int] = set()
    frontier = [target]
    while frontier:
        index, _ = frontier.pop()
        if index < 0 or index in needed:
            continue
        needed.add(index)
        frontier.extend(graph.bottoms[index])
    out = Message("NetParameter")
    for f, value in net.present_fields():
        if f.name != "layer":
            setattr(out, f.name, value)
    out.layer = [l for i, l in enumerate(graph.layers) if i in needed]
    return out

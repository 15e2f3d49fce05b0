"""Spatial coordinate maps between blobs, and Crop offsets derived from them — Caffe's ``coord_map.py``.

A ``CoordMap(axis, scale, shift)`` takes a coordinate ``x`` in a layer's bottom to the
coordinate ``scale·x + shift`` in its top, along every spatial axis after ``axis`` (the last
non-spatial axis: 1 for N×C×H×W); ``axis`` is ``None`` for layers that move no coordinates
(ReLU, Dropout, Eltwise…). Per layer, as Caffe's ``coord_map``:

* Convolution, Pooling, Im2col: ``(axis, 1/stride, (pad - (k_eff - 1)/2) / stride)`` with
  ``k_eff = (kernel - 1) * dilation + 1`` (a Pooling's dilation is the project's extension
  that ``reproduce.rarefy`` sets; Caffe's poolings have none);
* Deconvolution: ``(axis, stride, (k_eff - 1)/2 - pad)``;
* Crop: ``(axis - 1, 1, -offset)``;
* pass-through layers (Caffe's list, plus Concat along channels): the identity.

Pooling's ceil rounding of the output size does not enter the map (nor does it in Caffe).
Anything else (data layers, InnerProduct, global pooling…) has no map and ends the walk.

``coord_map_from_to`` walks back from two blobs to a common ancestor, composing maps, and
returns the map from the first blob's coordinates to the second's. A Crop layer's offsets are
the negated shift of the map from its first bottom to its second (pixel ``offset`` of the
cropped blob is pixel 0 of the reference), which must be an integer translation: scale 1,
integral non-positive shift — otherwise ``CoordMapError`` names the crop layer and the map.

Two things go beyond Caffe: the maps are exact fractions (so "integral" is exact), and an
ancestor reached along two paths with different maps is an error (Caffe takes whichever path it
walked last). ``_h``/``_w`` geometry fields are honoured per dimension where Caffe refuses them.

Everything works on a NetParameter ``Message`` (in-place layers are followed as Caffe's ``Net``
wires them) or on a ``NetSpec``; ``fill_crop_offsets`` rewrites every Crop of a net.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Union

from reproduce.caffe.schema import Message

from .spec import NetSpec

PASS_THROUGH_LAYERS = frozenset({
    "AbsVal", "BatchNorm", "Bias", "BNLL", "Dropout", "Eltwise", "ELU", "Log", "LRN", "Exp",
    "MVN", "Power", "ReLU", "PReLU", "Scale", "Sigmoid", "Split", "TanH", "Threshold"})
STRIDED_LAYERS = frozenset({"Convolution", "Pooling", "Im2col"})

Numbers = tuple[Fraction, ...]


class CoordMapError(ValueError):
    """Coordinates that cannot be related, or a crop that is not an integer translation."""


class UndefinedMapError(CoordMapError):
    """A layer type without a coordinate map (Caffe's ``UndefinedMapException``)."""


def _broadcast(a: Numbers, b: Numbers, op: Callable) -> Numbers:
    if len(a) != len(b) and 1 not in (len(a), len(b)):
        raise CoordMapError(f"coordinate maps over {len(a)} and {len(b)} spatial dims do not match")
    n = max(len(a), len(b))
    a, b = (a * n if len(a) == 1 else a), (b * n if len(b) == 1 else b)
    return tuple(op(x, y) for x, y in zip(a, b))


@dataclass(frozen=True)
class CoordMap:
    """``(axis, scale, shift)``, one scale and shift per spatial dim (or one for all)."""

    axis: int | None
    scale: Numbers
    shift: Numbers

    @classmethod
    def of(cls, axis: int | None, scale, shift) -> "CoordMap":
        as_tuple = lambda v: tuple(Fraction(x) for x in (v if isinstance(v, (tuple, list)) else (v,)))
        return cls(axis, as_tuple(scale), as_tuple(shift))

    def compose(self, inner: "CoordMap") -> "CoordMap":
        """``self ∘ inner`` — ``inner`` first, then this map (Caffe's ``compose(base, next)``
        with ``self`` as base): scales multiply, ``inner``'s shift is scaled by ours."""
        if self.axis is None:
            axis = inner.axis
        elif inner.axis is None or inner.axis == self.axis:
            axis = self.axis
        else:
            raise CoordMapError(f"cannot compose maps on axis {self.axis} and axis {inner.axis}")
        scale = _broadcast(self.scale, inner.scale, lambda a, b: a * b)
        shift = _broadcast(_broadcast(self.scale, inner.shift, lambda a, b: a * b), self.shift,
                           lambda a, b: a + b)
        return CoordMap(axis, scale, shift)

    def inverse(self) -> "CoordMap":
        """The backward map: de-scale and un-shift."""
        return CoordMap(self.axis, tuple(1 / a for a in self.scale),
                        tuple(-b / a for a, b in zip(*_align(self.scale, self.shift))))

    def __str__(self) -> str:
        text = lambda v: ", ".join(str(x) for x in v)
        return f"(axis {self.axis}, scale {text(self.scale)}, shift {text(self.shift)})"


def _align(a: Numbers, b: Numbers) -> tuple[Numbers, Numbers]:
    n = max(len(a), len(b))
    return (a * n if len(a) == 1 else a), (b * n if len(b) == 1 else b)


IDENTITY = CoordMap.of(None, 1, 0)


# ----------------------------------------------------------------------------- per layer


def _dims(param: Message, plain: str, h_name: str, w_name: str, default: int) -> Numbers:
    """A geometry field per spatial dim: ``<x>_h``/``<x>_w`` if set, else the plain field
    (repeated for convolutions, scalar for pooling), else ``default``."""
    if param.has(h_name) or param.has(w_name):
        return (Fraction(getattr(param, h_name)), Fraction(getattr(param, w_name)))
    value = getattr(param, plain)
    values = list(value) if isinstance(value, list) else ([value] if param.has(plain) else [])
    return tuple(Fraction(v) for v in values) or (Fraction(default),)


def _geometry(layer: Message) -> tuple[int, Numbers, Numbers, Numbers]:
    """``(axis, stride, effective kernel, pad)`` of a convolution-like layer."""
    if layer.type == "Pooling":
        p = layer.pooling_param
        if p.global_pooling:
            raise UndefinedMapError(f"layer {layer.name!r}: global pooling has no coordinate map")
        # dilation: the project's PoolingParameter extension (reproduce.rarefy), 1 in Caffe
        axis, dilation = 1, (Fraction(p.dilation),)
    else:
        p = layer.convolution_param
        axis = p.axis
        dilation = tuple(Fraction(d) for d in p.dilation) or (Fraction(1),)
    kernel = _dims(p, "kernel_size", "kernel_h", "kernel_w", 0)
    if 0 in kernel:
        raise CoordMapError(f"layer {layer.name!r} ({layer.type}) has no kernel size")
    stride = _dims(p, "stride", "stride_h", "stride_w", 1)
    pad = _dims(p, "pad", "pad_h", "pad_w", 0)
    effective = _broadcast(kernel, dilation, lambda k, d: (k - 1) * d + 1)
    return axis, stride, effective, pad


def layer_coord_map(layer: Message) -> CoordMap:
    """The coordinate map of one LayerParameter (Caffe's ``coord_map(fn)``)."""
    kind = layer.type
    if kind in STRIDED_LAYERS or kind == "Deconvolution":
        axis, stride, kernel, pad = _geometry(layer)
        if kind == "Deconvolution":
            shift = _broadcast(kernel, pad, lambda k, p: (k - 1) / 2 - p)
            return CoordMap(axis, *_align(stride, shift))
        offset = _broadcast(pad, kernel, lambda p, k: p - (k - 1) / 2)
        scale, offset = _align(stride, offset)
        return CoordMap(axis, tuple(1 / s for s in scale), tuple(o / s for o, s in zip(offset, scale)))
    if kind in PASS_THROUGH_LAYERS or (kind == "Concat" and _concat_axis(layer) in (1, -3)):
        return IDENTITY
    if kind == "Crop":
        offsets = tuple(Fraction(o) for o in layer.crop_param.offset) or (Fraction(0),)
        return CoordMap(layer.crop_param.axis - 1, (Fraction(1),), tuple(-o for o in offsets))
    raise UndefinedMapError(f"layer {layer.name!r} of type {kind} has no coordinate map")


def _concat_axis(layer: Message) -> int:
    p = layer.concat_param
    return p.concat_dim if p.has("concat_dim") and not p.has("axis") else p.axis


# ----------------------------------------------------------------------------- the blob graph

BlobRef = tuple[int, int]  # (producing layer index, top index); (-1, i) for net-level inputs


class BlobGraph:
    """Which layer produced each blob a layer reads, with in-place tops as distinct versions."""

    def __init__(self, net: Message):
        if net.has("layers") and not net.has("layer"):
            raise CoordMapError("this is a V1 net (layers { … }); upgrade it first "
                                "(reproduce.caffe.upgrade_net)")
        self.layers: list[Message] = list(net.layer)
        self.bottoms: list[list[BlobRef]] = []
        self.index = {layer.name: i for i, layer in enumerate(self.layers)}
        current: dict[str, BlobRef] = {name: (-1, i) for i, name in enumerate(net.input)}
        self.final = current  # blob name → its last version
        for i, layer in enumerate(self.layers):
            refs = []
            for bottom in layer.bottom:
                if bottom not in current:
                    raise CoordMapError(f"layer {layer.name!r} reads blob {bottom!r}, "
                                        f"which no earlier layer produces")
                refs.append(current[bottom])
            self.bottoms.append(refs)
            for j, top in enumerate(layer.top):
                current[top] = (i, j)

    def layer(self, name: str) -> Message:
        try:
            return self.layers[self.index[name]]
        except KeyError:
            raise CoordMapError(f"no layer named {name!r} in the net") from None

    def blob(self, name: str) -> BlobRef:
        """The last version of blob ``name`` (after the in-place layers that rewrite it)."""
        try:
            return self.final[name]
        except KeyError:
            raise CoordMapError(f"no blob named {name!r} in the net") from None

    def describe(self, ref: BlobRef) -> str:
        if ref[0] < 0:
            return f"input #{ref[1]}"
        layer = self.layers[ref[0]]
        return f"blob {layer.top[ref[1]]!r} of layer {layer.name!r}"

    def mappable_bottoms(self, ref: BlobRef) -> list[BlobRef]:
        """The bottoms a walk follows back from ``ref`` (only a Crop's first bottom: its
        second only gives the shape)."""
        if ref[0] < 0:
            return []
        refs = self.bottoms[ref[0]]
        return refs[:1] if self.layers[ref[0]].type == "Crop" else refs

    def steps_back(self, ref: BlobRef) -> list[tuple[BlobRef, CoordMap]]:
        """Each bottom a walk follows back from ``ref``, with the map of ``ref``'s layer
        (none where the layer has no coordinate map)."""
        bottoms = self.mappable_bottoms(ref)
        if not bottoms:
            return []
        try:
            step = layer_coord_map(self.layers[ref[0]])
        except UndefinedMapError:
            return []
        return [(bottom, step) for bottom in bottoms]

    def ancestor_maps(self, start: BlobRef) -> dict[BlobRef, CoordMap]:
        """Every ancestor reachable through mappable layers, with its composed map."""
        maps = {start: IDENTITY}
        frontier = deque([start])
        while frontier:
            ref = frontier.popleft()
            for bottom, step in self.steps_back(ref):
                composed = maps[ref].compose(step)
                known = maps.get(bottom)
                if known is None:
                    maps[bottom] = composed
                    frontier.append(bottom)
                elif known != composed:
                    raise CoordMapError(
                        f"{self.describe(bottom)} is reached along two paths with different "
                        f"coordinate maps {known} and {composed}; the net's branches are "
                        f"misaligned")
        return maps

    def map_from_to(self, source: BlobRef, target: BlobRef) -> CoordMap:
        """Caffe's ``coord_map_from_to``: the map from ``source``'s frame to ``target``'s."""
        from_maps = self.ancestor_maps(source)
        to_maps = {target: IDENTITY}
        frontier = deque([target])
        while frontier:
            ref = frontier.popleft()
            if ref in from_maps:
                return to_maps[ref].compose(from_maps[ref].inverse())
            for bottom, step in self.steps_back(ref):
                if bottom not in to_maps:
                    to_maps[bottom] = to_maps[ref].compose(step)
                    frontier.append(bottom)
        raise CoordMapError(f"could not relate {self.describe(source)} to {self.describe(target)}: "
                            f"they share no ancestor through spatial layers")


NetLike = Union[Message, NetSpec]


def _as_net(net: NetLike) -> Message:
    if isinstance(net, NetSpec):
        return net.to_proto()
    if isinstance(net, Message) and net.type_name == "NetParameter":
        return net.copy()
    raise TypeError(f"needs a NetParameter Message or a NetSpec, not {type(net).__name__}")


def coord_map_from_to(net: NetLike, top_from: str, top_to: str) -> CoordMap:
    """The map from blob ``top_from`` to blob ``top_to`` (each as the net leaves it, after any
    in-place layers), with every Crop's offsets derived from geometry first."""
    graph = BlobGraph(fill_crop_offsets(_as_net(net)))
    return graph.map_from_to(graph.blob(top_from), graph.blob(top_to))


# ----------------------------------------------------------------------------- crops


@dataclass(frozen=True)
class CropGeometry:
    """A Crop layer's ``crop_param`` as its geometry demands: ``axis`` and ``offset``."""

    axis: int
    offset: tuple[int, ...]


def _derive_crop(graph: BlobGraph, index: int) -> CropGeometry:
    layer = graph.layers[index]
    name = layer.name
    if len(layer.bottom) != 2:
        raise CoordMapError(f"crop layer {name!r} has {len(layer.bottom)} bottoms, not 2")
    source, target = graph.bottoms[index]
    try:
        m = graph.map_from_to(source, target)
    except CoordMapError as err:
        raise CoordMapError(f"crop layer {name!r}: {err}") from None
    what = (f"crop layer {name!r} (cropping {layer.bottom[0]!r} to {layer.bottom[1]!r}) "
            f"has coordinate map {m}")
    if any(a != 1 for a in m.scale):
        raise CoordMapError(f"{what}: the scales differ (scale ≠ 1), so no crop aligns them")
    if any(b.denominator != 1 for b in m.shift):
        raise CoordMapError(f"{what}: the shift is not an integer, so no crop aligns them")
    if any(b > 0 for b in m.shift):
        raise CoordMapError(f"{what}: a positive shift would need a negative crop offset")
    if m.axis is None:  # no spatial layer between the two: nothing to crop
        return CropGeometry(layer.crop_param.axis, (0,))
    axis = m.axis + 1  # the map's axis is the last non-spatial one; Crop's the first cropped
    if layer.crop_param.has("axis") and layer.crop_param.axis != axis:
        raise CoordMapError(f"{what}: its crop_param.axis is {layer.crop_param.axis}, but the "
                            f"geometry crops from axis {axis}")
    return CropGeometry(axis, tuple(int(-b) for b in m.shift))


def _fill_crops(net: Message, until: str | None = None) -> CropGeometry | None:
    """Derive and write the Crop layers of ``net`` (in place) in net order, each mapped
    through the crops already derived; stop after layer ``until`` and return its geometry."""
    graph = BlobGraph(net)
    if until is not None:
        layer = graph.layer(until)
        if layer.type != "Crop":
            raise CoordMapError(f"layer {until!r} is a {layer.type}, not a Crop")
    for index, layer in enumerate(graph.layers):
        if layer.type != "Crop":
            continue
        geometry = _derive_crop(graph, index)
        param = layer.mutable("crop_param")
        param.axis = geometry.axis
        param.offset = list(geometry.offset)
        if layer.name == until:
            return geometry
    return None


def crop_geometry(net: NetLike, crop_layer: str) -> CropGeometry:
    """Axis and offsets of Crop layer ``crop_layer`` derived from the net's geometry (the
    crops before it are derived too; offsets already written in the net are not used)."""
    return _fill_crops(_as_net(net), until=crop_layer)


def crop_offsets(net: NetLike, crop_layer: str) -> tuple[int, ...]:
    """The offsets of Crop layer ``crop_layer``, derived by coordinate mapping."""
    return crop_geometry(net, crop_layer).offset


def fill_crop_offsets(net: NetLike) -> Message:
    """A copy of the net whose every Crop layer has ``crop_param.axis`` and ``offset`` derived
    from geometry, in net order (each crop is mapped through the crops already derived)."""
    net = _as_net(net)
    _fill_crops(net)
    return net


def crop_layers(net: Message) -> list[str]:
    """The names of the net's Crop layers, in order."""
    return [layer.name for layer in net.layer if layer.type == "Crop"]

"""``Net``: a Caffe net (any upgraded NetParameter) as one ``torch.nn.Module``, pycaffe-style.

What it mirrors of Caffe's ``Net`` (``net.cpp``) and pycaffe's ``caffe.Net``:

* construction: parse and upgrade the prototxt, keep the layers whose include/exclude rules
  the NetState (phase, level, stages) meets, give every layer the net's phase unless it sets
  its own, wire bottoms and tops by name. A top named like the bottom at the same index is
  computed in place — the blob keeps its name and ``blobs[name]`` ends up holding the last
  value, as Caffe's blob does; any other reuse of a top name is an error ("produced by
  multiple sources"), as is a bottom no earlier layer produced;
* inputs: the tops of ``Input`` layers and of bottomless ``Python`` data layers; shapes for
  building come from ``input_param`` (or ``input_shapes``), any H×W may be fed afterwards
  (the number of axes and the channels stay; a layer that refuses what it is fed is a
  ``NetError`` naming it). ``Python`` layers with bottoms run the PyTorch port registered
  for them (``reproduce.net.python_layers``);
* outputs: the blobs no later layer consumes, in sorted order (Caffe keeps them in a
  ``std::set``);
* loss: ``Σ loss_weight · sum(top)`` over tops with a non-zero weight; layers whose type ends
  in ``Loss`` default to weight 1 on their one top (a loss layer with no top gets an anonymous
  one, Caffe's ``AutoTopBlobs``); a loss layer with several tops must give a weight per top;
* backward: autograd from ``loss``, accumulating into each parameter's ``.grad`` as Caffe
  accumulates diffs (``zero_grad()`` is ``ClearParamDiffs``). Parameters with ``lr_mult: 0``
  have ``requires_grad = False`` — no gradient, like Caffe's ``param_propagate_down`` — except
  under ``force_backward: true``, which (net.cpp) propagates down to every parameter, so they
  get a gradient too (the solver's rate for them is still 0). Inputs get a gradient only with
  ``force_backward: true``; ``propagate_down: false`` cuts a bottom;
* weights: blobs embedded in the net definition (``LayerParameter.blobs``) are loaded first,
  as Caffe's layers start from them; ``copy_from`` copies blobs by layer name like
  ``CopyTrainedLayersFrom`` — layers absent from the net are ignored, layers absent from the
  file keep their filler values; blob counts must match and shapes must be equal, or (legacy)
  the stored 4-d shape must equal the layer's shape padded with leading 1s; ``share_with``
  makes another net's blobs this net's, like ``ShareTrainedLayersWith``;
* shared parameters (``param { name: … }``): later layers reuse the first owner's tensor;
  its lr_mult/decay_mult are the first set explicitly by any sharer, as Caffe's ``AppendParam``.

Every layer is a submodule registered under its exact Caffe name, so ``state_dict`` keys are
``"<layer>.weight"``, ``"<layer>.bias"``, ``"<layer>.blob<i>"``. Names containing ``.`` or equal
to an attribute of ``Net`` are registered all the same (``net.layer(name)`` reaches them);
the net's own state is therefore written with ``object.__setattr__``.
"""
from __future__ import annotations

import contextlib
import math
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from reproduce.caffe.schema import Message

from .layers import CaffeLayer, blob_attribute, layer_class
from .layers.input import DataProvider
from .crop_fusion import crop_fusions
from .plain import exporting, plain, plain_ops
from .threads import threads_for_pass
from .state_rules import filter_layers, net_state

Shape = tuple[int, ...]


def _check_blob_count(layer: str, top: str, shape) -> None:
    """Caffe's ``Blob::Reshape`` check (count ≤ INT_MAX, "blob size exceeds INT_MAX"), before
    anything of that size is planned or allocated (a ``pad: 2000000000`` makes such a top)."""
    count = math.prod(int(d) for d in shape)
    if count > 2**31 - 1:
        raise NetError(f"layer {layer!r}: top blob {top!r} of shape {'×'.join(str(int(d)) for d in shape)} "
                       f"would hold {count:,} values, more than Caffe's blob limit of 2^31 - 1 "
                       f"(blob size exceeds INT_MAX)")


class NetError(ValueError):
    """A net definition, input or weight file Caffe would refuse."""


@dataclass
class _SharedParam:
    """A named (shared) parameter blob: its first owner, its users, the multipliers set."""

    layer: str
    index: int
    blob: nn.Parameter
    users: list = field(default_factory=list)
    explicit: dict = field(default_factory=dict)   # "lr_mult" -> (value, layer that set it)


class _Step:
    """One layer of the forward plan: the module, its bottom/top names, cut bottoms."""

    __slots__ = ("layer", "bottoms", "tops", "cut", "release")

    def __init__(self, layer: CaffeLayer, bottoms: list[str], tops: list[str], cut: list[bool]):
        self.layer, self.bottoms, self.tops, self.cut = layer, bottoms, tops, cut
        self.release: list[str] = []


class Net(nn.Module):
    """A Caffe net in PyTorch (see the module docstring).

    ``Net(net, weights=None, phase="test", *, level=0, stages=(), input_shapes=None,
    generator=None)`` — ``net`` is a prototxt path or a NetParameter ``Message`` (upgraded as
    Caffe upgrades on load); ``weights`` a caffemodel path (binary or HDF5), a ``.pth`` state_dict or a
    ``{layer: [arrays]}`` dict; ``input_shapes`` overrides the build-time shape of inputs;
    ``generator`` drives the fillers (and TRAIN-phase dropout).

    ``keep_blobs`` (default True, as pycaffe) keeps every blob in ``blobs`` after forward;
    set it False to free each blob once its last consumer has run (inference memory).
    Layout: by default activations run channels-last (NHWC) when gradients are off on the
    CPU — faster inference there — and NCHW otherwise (off the CPU every layer also runs its
    plain operators: no constant band, no CPU shortcut); ``use_channels_last(True)`` makes every pass NHWC
    (weights too), ``use_channels_last(False)`` every pass NCHW. ``use_constant_band(False)``
    convolves the constant band that large input padding creates instead of filling it in.
    While ``torch.compile``, ``torch.export`` or ``reproduce.export`` trace it, every layer runs
    its plain formulation instead (``reproduce.net.plain``): standard operators, NCHW, sizes
    symbolic — the same blobs to float32 summation order, at every input size.
    """

    def __init__(self, net: str | os.PathLike | Message,
                 weights: str | os.PathLike | Mapping[str, Sequence[Any]] | None = None,
                 phase: str = "test", *, level: int = 0, stages: Sequence[str] = (),
                 input_shapes: Mapping[str, Sequence[int]] | None = None,
                 generator: torch.Generator | None = None):
        super().__init__()
        param = _load_net(net)
        state = net_state(param, phase, level, stages)
        self._set("name", param.name)
        self._set("phase", state.phase)
        self._set("force_backward", bool(param.force_backward))
        self._set("layer_names", [])
        self._set("inputs", [])
        self._set("outputs", [])
        self._set("loss_blobs", OrderedDict())
        self._set("params", OrderedDict())
        self._set("param_specs", OrderedDict())
        self._set("blob_shapes", OrderedDict())
        self._set("blobs", OrderedDict())
        self._set("loss", None)
        self._set("_plan", [])
        self._set("_layers", OrderedDict())
        self._set("keep_blobs", True)
        self._set("_channels_last", None)  # None: NHWC activations for inference only
        self._set("_constant_band", True)
        self._set("_pass_macs", {})  # input shapes -> the pass's multiply-adds (threads)
        kept = filter_layers(param, state)
        self._build(kept, state.phase, dict(input_shapes or {}), generator)
        embedded = _embedded_blobs(kept)
        if embedded:
            self.copy_from(embedded)
        if weights is not None:
            self.copy_from(weights)

    def _set(self, name: str, value: Any) -> None:
        # bypass nn.Module.__setattr__: a layer may be registered under the same name
        object.__setattr__(self, name, value)

    # ------------------------------------------------------------------ construction
    def _build(self, layer_params: list[Message], phase: str,
               input_shapes: dict[str, Sequence[int]], generator) -> None:
        shapes = self.blob_shapes
        available: set[str] = set()
        shared: dict[str, _SharedParam] = {}
        for index, source in enumerate(layer_params):
            lp = _layer_copy(source)
            if not lp.has("phase"):
                lp.phase = phase
            name = lp.name
            if not name:
                raise NetError(f"layer {index} ({lp.type}) has no name")
            if name in self._layers:
                raise NetError(f"two layers are named {name!r}; layer names must be unique")
            bottoms, tops = list(lp.bottom), list(lp.top)
            if lp.propagate_down and len(lp.propagate_down) != len(bottoms):
                raise NetError(f"layer {name!r}: propagate_down must be given either 0 or "
                               f"bottom_size ({len(bottoms)}) times")
            for i, bottom in enumerate(bottoms):
                if bottom not in shapes:
                    raise NetError(f"unknown bottom blob {bottom!r} (layer {name!r}, "
                                   f"bottom index {i})")
            layer = layer_class(lp.type, name)(lp, [shapes[b] for b in bottoms], generator)
            if not tops and lp.type.endswith("Loss"):
                tops = [f"({name} loss)"]  # Caffe's anonymous "(automatic)" top
            top_shapes = layer.top_shapes([shapes[b] for b in bottoms])
            if isinstance(layer, DataProvider):
                top_shapes = self._input_shapes(name, tops, top_shapes, input_shapes)
            if len(set(tops)) != len(tops):
                raise NetError(f"layer {name!r} names the same top twice: {tops}")
            for i, top in enumerate(tops):
                in_place = i < len(bottoms) and bottoms[i] == top
                if top in shapes and not in_place:
                    raise NetError(f"top blob {top!r} produced by multiple sources "
                                   f"(again by layer {name!r})")
            available.difference_update(bottoms)
            for top, shape in zip(tops, top_shapes):
                _check_blob_count(name, top, shape)
                shapes[top] = tuple(shape)
                if not top.startswith("("):
                    available.add(top)
            self._register_layer(name, layer)
            self._share_params(name, layer, shared)
            if isinstance(layer, DataProvider):
                self.inputs.extend(tops)
            else:
                cut = [not keep for keep in lp.propagate_down] or [False] * len(bottoms)
                self._plan.append(_Step(layer, bottoms, tops, cut))
            self._record_loss_weights(lp, tops)
        unknown = set(input_shapes) - set(self.inputs)
        if unknown:
            raise NetError(f"input_shapes names {sorted(unknown)}, which are not net inputs "
                           f"(inputs: {self.inputs})")
        self.outputs.extend(sorted(available))
        self._plan_releases()
        self._set("_crop_fusions", crop_fusions(self._plan, self.outputs, self.loss_blobs))

    def _plan_releases(self) -> None:
        """For ``keep_blobs = False``: after which step each blob is no longer needed."""
        last_use: dict[str, int] = {}
        for index, step in enumerate(self._plan):
            for bottom in step.bottoms:
                last_use[bottom] = index
        keep = set(self.outputs) | set(self.loss_blobs)
        for step in self._plan:
            step.release = []
        for name, index in last_use.items():
            if name not in keep:
                self._plan[index].release.append(name)

    def _input_shapes(self, name, tops, declared, overrides) -> list[Shape]:
        result = []
        for top, shape in zip(tops, declared):
            if top in overrides:
                shape = tuple(int(d) for d in overrides[top])
            elif not shape:
                raise NetError(f"input {top!r} of layer {name!r} has no shape; give one in "
                               f"input_param or input_shapes")
            result.append(tuple(shape))
        return result

    def _register_layer(self, name: str, layer: CaffeLayer) -> None:
        self._modules[name] = layer  # exact Caffe name, even with '.' (see module docstring)
        self._layers[name] = layer
        self.layer_names.append(name)
        blobs = layer.blobs()
        if len(layer.layer_param.param) > len(blobs):
            raise NetError(f"too many params specified for layer {name!r}: "
                           f"{len(layer.layer_param.param)} param entries, {len(blobs)} blobs")
        if blobs:
            specs = layer.param_specs()
            self.params[name] = blobs
            self.param_specs[name] = specs
            for blob, (lr_mult, _) in zip(blobs, specs):
                # net.cpp: param_propagate_down is lr_mult != 0, or true for every param
                # under force_backward (lr_mult 0 ones then get a diff; the solver's rate is 0)
                blob.requires_grad_(lr_mult != 0 or self.force_backward)

    def _share_params(self, name: str, layer: CaffeLayer, shared: dict) -> None:
        specs = layer.layer_param.param
        for i, blob in enumerate(layer.blobs()):
            key = specs[i].name if i < len(specs) else ""
            if not key:
                continue
            if key not in shared:
                shared[key] = _SharedParam(name, i, blob)
            else:
                owner = shared[key]
                mode = specs[i].share_mode
                same = (tuple(owner.blob.shape) == tuple(blob.shape) if mode == "STRICT"
                        else owner.blob.numel() == blob.numel())
                if not same:
                    raise NetError(f"layer {name!r} param {i} shares {key!r} with layer "
                                   f"{owner.layer!r} param {owner.index} but has shape "
                                   f"{tuple(blob.shape)} vs {tuple(owner.blob.shape)}")
                if tuple(owner.blob.shape) != tuple(blob.shape):
                    raise NetError(f"layer {name!r} param {i}: PERMISSIVE sharing of {key!r} "
                                   f"between different shapes is not supported")
                setattr(layer, blob_attribute(i), owner.blob)
                self.params[name][i] = owner.blob
            self._share_multipliers(shared[key], key, name, i, specs[i])

    def _share_multipliers(self, owner: _SharedParam, key: str, name: str, index: int,
                           spec: Message) -> None:
        """Caffe's ``Net::AppendParam``: a shared blob's lr_mult (and decay_mult) is the first
        one set explicitly by any of its layers, Caffe's 1 if none is; a later explicit value
        that differs is an error ("Shared param … has mismatched lr_mult")."""
        owner.users.append((name, index))
        for multiplier in ("lr_mult", "decay_mult"):
            if not spec.has(multiplier):
                continue
            value = float(getattr(spec, multiplier))
            if multiplier not in owner.explicit:
                owner.explicit[multiplier] = (value, name)
            elif value != owner.explicit[multiplier][0]:
                first, setter = owner.explicit[multiplier]
                raise NetError(f"layer {name!r} param {index}: shared param {key!r} has "
                               f"mismatched {multiplier} ({value:g}; layer {setter!r} set "
                               f"{first:g})")
        effective = tuple(owner.explicit.get(m, (1.0, ""))[0] for m in ("lr_mult", "decay_mult"))
        for user, i in owner.users:
            specs = list(self.param_specs[user])
            specs[i] = effective
            self.param_specs[user] = specs
        owner.blob.requires_grad_(effective[0] != 0 or self.force_backward)

    def _record_loss_weights(self, lp: Message, tops: list[str]) -> None:
        weights = [float(w) for w in lp.loss_weight]
        if not weights and lp.type.endswith("Loss"):
            weights = [1.0]  # LossLayer::LayerSetUp
        if weights and len(weights) != len(tops):
            raise NetError(f"layer {lp.name!r}: loss_weight must be unspecified or specified "
                           f"once per top blob ({len(tops)} tops, {len(weights)} weights)")
        for top, weight in zip(tops, weights):
            if weight != 0:
                self.loss_blobs[top] = weight

    # ------------------------------------------------------------------ access
    def layer(self, name: str) -> CaffeLayer:
        """The layer module named ``name``."""
        try:
            return self._layers[name]
        except KeyError:
            raise KeyError(f"no layer {name!r} in net {self.name!r}") from None

    @property
    def layer_dict(self) -> "OrderedDict[str, CaffeLayer]":
        """Layer name → layer module, in net order (pycaffe's ``layer_dict``)."""
        return OrderedDict(self._layers)

    # ------------------------------------------------------------------ weights
    def copy_from(self, weights: str | os.PathLike | Mapping[str, Sequence[Any]], *,
                  name: str | None = None) -> None:
        """Copy parameter blobs by layer name, as Caffe's ``CopyTrainedLayersFrom``.

        ``name`` is what errors call the weights (default: the path, or ``<dict>``).
        """
        from reproduce.caffe.blobs import empty_layers, weights_source

        if isinstance(weights, (str, os.PathLike)):
            from reproduce.weights.convert import load_weights  # .caffemodel, .caffemodel.h5 or .pth

            source = name or os.fspath(weights)
            weights = load_weights(weights)
        else:
            source = name or weights_source(weights)
        for layer_name in empty_layers(weights):   # stored without blobs: Caffe's CHECK_EQ fails
            held = self._layers[layer_name].blobs() if layer_name in self._layers else []
            if held:
                raise NetError(f"{source}: Incompatible number of blobs for layer {layer_name!r}: "
                               f"the file stores it with none, the net holds {len(held)}")
        for layer_name, arrays in weights.items():
            if layer_name not in self._layers:
                continue  # Caffe: "Ignoring source layer"
            targets = self._layers[layer_name].blobs()
            arrays = list(arrays)
            if len(arrays) != len(targets):
                raise NetError(f"{source}: incompatible number of blobs for layer {layer_name!r}: "
                               f"the file has {len(arrays)}, the net {len(targets)}")
            for j, (array, target) in enumerate(zip(arrays, targets)):
                data = torch.as_tensor(np.asarray(array, dtype=np.float32))
                if not _shape_equals(tuple(target.shape), tuple(data.shape)):
                    raise NetError(f"{source}: cannot copy param {j} weights from layer "
                                   f"{layer_name!r}; shape mismatch. Source param shape is "
                                   f"{tuple(data.shape)}; target param shape is "
                                   f"{tuple(target.shape)}")
                with torch.no_grad():
                    target.copy_(data.reshape(target.shape))

    def share_with(self, other: "Net") -> list[str]:
        """Use ``other``'s parameter tensors for each layer of the same name; the shared names.

        pycaffe's ``share_with`` (Caffe's ``Net::ShareTrainedLayersWith``), as a solver's test
        nets use the train net's weights: the blobs become the same tensors, not copies, so
        training ``other`` updates this net. Layers ``other`` lacks keep their own blobs; the
        blob count and every shape must agree, as Caffe checks.
        """
        shared = []
        for name, source in other.params.items():
            if name not in self.params:
                continue
            mine = self.params[name]
            if len(mine) != len(source):
                raise NetError(f"cannot share layer {name!r} of net {self.name!r}: incompatible "
                               f"number of blobs ({len(source)} in net {other.name!r}, "
                               f"{len(mine)} here)")
            for j, blob in enumerate(source):
                if tuple(mine[j].shape) != tuple(blob.shape):
                    raise NetError(f"cannot share param {j} of layer {name!r}; shape mismatch. "
                                   f"Source param shape is {tuple(blob.shape)} (net "
                                   f"{other.name!r}); target param shape is "
                                   f"{tuple(mine[j].shape)} (net {self.name!r})")
            layer = self._layers[name]
            for j, blob in enumerate(source):
                setattr(layer, blob_attribute(j), blob)
                mine[j] = blob
            shared.append(name)
        return shared

    def weights_dict(self) -> "OrderedDict[str, list[np.ndarray]]":
        """``{layer: [blob arrays]}`` in net and Caffe blob order (what a caffemodel stores)."""
        return OrderedDict((name, [blob.detach().cpu().numpy().copy() for blob in blobs])
                           for name, blobs in self.params.items())

    # ------------------------------------------------------------------ running
    def forward(self, **inputs: Any) -> dict[str, torch.Tensor]:
        """Run the net on ``inputs`` (arrays or tensors, by input name); return its outputs."""
        missing = [name for name in self.inputs if name not in inputs]
        unknown = [name for name in inputs if name not in self.inputs]
        if missing or unknown:
            raise NetError(f"net {self.name!r} takes inputs {self.inputs}; "
                           + (f"missing {missing}" if missing else "")
                           + ("; " if missing and unknown else "")
                           + (f"unknown {unknown}" if unknown else ""))
        blobs: OrderedDict[str, torch.Tensor] = OrderedDict()
        device = self._device()
        if plain():  # traced (export, torch.compile): standard, shape-generic operators only
            for name in self.inputs:
                blobs[name] = _as_float_tensor(inputs[name], device, name)
            self.run_plain(blobs)
            if not exporting():  # an exported program returns its outputs; it keeps no blobs
                kept = (self.blob_shapes if self.keep_blobs
                        else [*self.outputs, *self.loss_blobs])
                self._set("blobs", OrderedDict((name, blobs[name]) for name in self.blob_shapes
                                               if name in kept and not name.startswith("(")))
                self._set("loss", self._loss(blobs, device))
            return {name: blobs[name] for name in self.outputs}
        for name in self.inputs:
            blob = _as_float_tensor(inputs[name], device, name)
            built = self.blob_shapes[name]
            if blob.dim() != len(built):
                raise NetError(f"input {name!r} has {blob.dim()} axes {tuple(blob.shape)}; net "
                               f"{self.name!r} was built for {len(built)} {built} (only sizes "
                               f"may change between passes; input_shapes= sets the axes)")
            if blob.dim() == 4 and self._runs_channels_last(device):
                blob = blob.contiguous(memory_format=torch.channels_last)
            if self.force_backward and torch.is_grad_enabled():
                blob = blob.detach().requires_grad_(True)
            blobs[name] = blob
        release = not self.keep_blobs
        bands: dict[str, Any] = {}
        banded = self._constant_band and device.type == "cpu"  # plain operators elsewhere
        shapes = tuple(tuple(blobs[name].shape) for name in self.inputs)
        macs = self._pass_macs.get(shapes)
        counted = 0
        # an upsampling whose top only a crop reads computes the crop's window alone
        # (net.crop_fusion): inference, blobs freed, on the CPU
        fusions = (self._crop_fusions if release and device.type == "cpu"
                   and not torch.is_grad_enabled() else {})
        windows: dict[int, torch.Tensor] = {}
        with threads_for_pass(macs, device):  # one thread for a small pass (net.threads)
            for index, step in enumerate(self._plan):
                args = [blobs[b].detach() if cut else blobs[b]
                        for b, cut in zip(step.bottoms, step.cut)]
                if macs is None and hasattr(step.layer, "multiply_adds"):
                    counted += sum(step.layer.multiply_adds(tuple(a.shape)) for a in args)
                try:
                    crop = self._plan[fusions[index]] if index in fusions else None
                    if crop is not None and crop.bottoms[1] in blobs:
                        full = step.layer.output_shape(tuple(args[0].shape))
                        window = crop.layer._slices(full, tuple(blobs[crop.bottoms[1]].shape))
                        windows[fusions[index]] = step.layer.forward_window(args[0], window[2:])
                        tops = (windows[fusions[index]],)
                        bands[step.tops[0]] = None
                    elif index in windows:  # the crop of a window computed above
                        tops = (windows.pop(index),)
                        bands[step.tops[0]] = None
                    elif banded:
                        tops, top_bands = step.layer.forward_banded(
                            args, [bands.get(b) for b in step.bottoms])
                        bands.update(zip(step.tops, top_bands))
                    else:
                        tops = step.layer(*args)
                except RuntimeError as err:  # torch's refusal, e.g. an input with other channels
                    raise self._layer_failure(step, args, inputs, err) from err
                for top, value in zip(step.tops, tops):
                    blobs[top] = value
                if release:
                    for name in step.release:
                        blobs.pop(name, None)
        if macs is None:
            if len(self._pass_macs) >= 64:  # a net fed ever new sizes: keep the newest
                self._pass_macs.pop(next(iter(self._pass_macs)))
            self._pass_macs[shapes] = counted
        self._set("blobs", OrderedDict((name, blobs[name]) for name in self.blob_shapes
                                       if name in blobs and not name.startswith("(")))
        self._set("loss", self._loss(blobs, device))
        # outputs in the standard layout whatever ran inside (a channels-last view would
        # surprise code that calls .view() on them)
        return {name: blobs[name].contiguous() for name in self.outputs}

    def _loss(self, blobs: Mapping[str, torch.Tensor], device: torch.device) -> torch.Tensor:
        loss = None
        for top, weight in self.loss_blobs.items():
            term = blobs[top].sum() * weight if weight != 1.0 else blobs[top].sum()
            loss = term if loss is None else loss + term
        return loss if loss is not None else torch.zeros((), device=device)

    def run_plain(self, blobs: dict[str, torch.Tensor], steps: Sequence[int] | None = None) -> None:
        """Run the plan (or the steps at the indices ``steps``) on ``blobs`` in place, every
        layer in the plain formulation (``reproduce.net.plain``): NCHW, no constant band,
        no per-image GEMM, Caffe's sizes computed symbolically — what a tracer records."""
        # under torch.compile the layers already know (plain() is folded to True there)
        with contextlib.nullcontext() if torch.compiler.is_compiling() else plain_ops():
            for index in (range(len(self._plan)) if steps is None else steps):
                step = self._plan[index]
                args = [blobs[b].detach() if cut else blobs[b]
                        for b, cut in zip(step.bottoms, step.cut)]
                for top, value in zip(step.tops, step.layer(*args)):
                    blobs[top] = value

    def _layer_failure(self, step: _Step, args: list[torch.Tensor], inputs: Mapping[str, Any],
                       err: RuntimeError) -> NetError:
        """A layer's runtime failure as a NetError naming the layer and its bottoms' shapes."""
        layer = step.layer.layer_param
        bottoms = {b: tuple(a.shape) for b, a in zip(step.bottoms, args)}
        message = f"layer {layer.name!r} ({layer.type}) failed on bottoms {bottoms}: {err}"
        fed = {name: tuple(np.shape(inputs[name])) for name in self.inputs}
        built = {name: self.blob_shapes[name] for name in self.inputs}
        changed = [name for name in self.inputs if fed[name][1:2] != built[name][1:2]]
        if changed:
            message += (f". Inputs {changed} were fed with shapes {[fed[n] for n in changed]}, "
                        f"but the net was built for {[built[n] for n in changed]}: an input's "
                        f"channels are fixed when the net is built (input_shapes= sets them; "
                        f"reproduce.net.python_layers.register_python_data_layer declares a "
                        f"Python data layer's)")
        return NetError(message)

    def _runs_channels_last(self, device: torch.device) -> bool:
        if self._channels_last is None:  # the CPU default; off the CPU, the plain layout
            return not torch.is_grad_enabled() and device.type == "cpu"
        return self._channels_last

    def use_channels_last(self, enabled: bool | None = True) -> "Net":
        """Choose the memory layout: True — weights and activations channels-last (NHWC) in
        every pass; False — NCHW in every pass; None (the default) — NCHW weights, and NHWC
        activations when gradients are off (inference), which is fastest on our CPU.

        The arithmetic is the same up to float32 summation order; the golden tests check
        every layout against Caffe's blobs, and BENCHMARKS.md reports speed and deviation.
        """
        fmt = torch.channels_last if enabled else torch.contiguous_format
        with torch.no_grad():
            for blobs in self.params.values():
                for blob in blobs:
                    if blob.dim() == 4:
                        blob.data = blob.data.contiguous(memory_format=fmt)
        self._set("_channels_last", enabled)
        return self

    def use_constant_band(self, enabled: bool = True) -> "Net":
        """Skip computing the regions of convolution outputs known to be constant (default on).

        Large input padding (FCN's 100 pixels) makes a band of each early feature map one
        value per channel; with this on, convolutions compute that value once and fill it in
        (``reproduce.net.constant_band``). Off, every output pixel is convolved as in Caffe.
        Either way the blobs agree to float32 summation order.
        """
        self._set("_constant_band", bool(enabled))
        return self

    def backward(self) -> None:
        """Backpropagate ``loss`` of the last forward, accumulating into parameter ``.grad``."""
        if self.loss is None or not self.loss.requires_grad:
            raise NetError("nothing to backpropagate: run forward (with gradients enabled) on "
                           "a net with a loss and learnable parameters first")
        self.loss.backward()

    def input_diff(self, name: str) -> torch.Tensor:
        """The gradient Caffe would hold for input ``name`` after backward.

        Caffe backpropagates into the net's inputs only with ``force_backward``; otherwise the
        input's diff stays zero, which is what this returns then.
        """
        if name not in self.inputs:
            raise KeyError(f"{name!r} is not an input of net {self.name!r}")
        blob = self.blobs.get(name)
        if blob is None:
            raise NetError("run forward first")
        return blob.grad if blob.grad is not None else torch.zeros_like(blob)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        # nn.Module takes the text before the first '.' of a key as the child's name, so keys of
        # layers whose Caffe names contain '.' would be reported unexpected although the layer
        # itself loads them; drop those reports.
        reported: list[str] = []
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      reported, error_msgs)
        dotted = [f"{prefix}{name}." for name in self._modules if "." in name]
        unexpected_keys.extend(key for key in reported
                               if not any(key.startswith(p) for p in dotted))

    def _device(self) -> torch.device:
        for param in self.parameters():
            return param.device
        return torch.device("cpu")

    def extra_repr(self) -> str:
        return f"name={self.name!r}, phase={self.phase}, inputs={self.inputs}, outputs={self.outputs}"


def _load_net(net: str | os.PathLike | Message) -> Message:
    from reproduce.caffe.upgrade import read_net, upgrade_net

    if isinstance(net, Message):
        if net.type_name != "NetParameter":
            raise TypeError(f"Net needs a NetParameter, not a {net.type_name}")
        return upgrade_net(net)[0]
    if isinstance(net, (str, os.PathLike)):
        return read_net(Path(net))
    raise TypeError(f"Net needs a prototxt path or a NetParameter Message, not {type(net).__name__}")


def _layer_copy(layer: Message) -> Message:
    """A shallow copy of a LayerParameter without its blobs (the net sets ``phase`` on it)."""
    copy = Message("LayerParameter")
    for f, value in layer.present_fields():
        if f.name != "blobs":
            setattr(copy, f.name, value)
    return copy


def _embedded_blobs(layers: list[Message]) -> dict[str, list[np.ndarray]]:
    """Blobs stored inside the net definition itself (``LayerParameter.blobs``), by layer.

    Caffe's ``Layer`` constructor starts from them instead of running the fillers.
    """
    from reproduce.caffe.weights import blob_array

    return {layer.name: [blob_array(blob, layer.name, layer.type, i)
                         for i, blob in enumerate(layer.blobs)]
            for layer in layers if layer.blobs}


def _shape_equals(target: Shape, source: Shape) -> bool:
    """Caffe's ``Blob::ShapeEquals``, with the legacy rule for 4-d stored shapes."""
    if target == source:
        return True
    return len(source) == 4 and len(target) <= 4 and (1,) * (4 - len(target)) + target == source


def _as_float_tensor(value: Any, device: torch.device, name: str) -> torch.Tensor:
    """An input as float32 (Caffe's blobs are float); booleans, integers and floats only."""
    if isinstance(value, torch.Tensor):
        if value.is_complex():
            raise NetError(f"input {name!r} is complex ({value.dtype}); blobs hold real numbers")
        return value.to(device=device, dtype=torch.float32)
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise NetError(f"input {name!r} has dtype {array.dtype}, which is not a number type "
                       f"float32 can hold")
    return torch.as_tensor(array.astype(np.float32, copy=False), device=device)

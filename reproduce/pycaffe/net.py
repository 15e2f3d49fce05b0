"""``caffe.Net``: pycaffe's net API over ``reproduce.net.Net``.

What it mirrors of pycaffe (``pycaffe.py``, ``_caffe.cpp``) and Caffe's ``Net`` (``net.cpp``):

* constructors: ``Net(prototxt, phase)``, ``Net(prototxt, phase, level=, stages=, weights=)``
  and the legacy ``Net(prototxt, weights, phase)``; ``phase`` is ``caffe.TRAIN`` (0) or
  ``caffe.TEST`` (1). A missing file is one ``FileNotFoundError`` naming it. The net is
  built as ``Net::Init`` builds it: filtered by the NetState, then with the ``Split`` layers
  of ``InsertSplits`` (``reproduce.pycaffe.splits``) among its layers;
* ``blobs`` (name → ``Blob``, in Caffe's blob order), ``params`` (layer → its parameter
  blobs), ``layers``, ``layer_dict``, ``_layer_names``, ``_blob_names``, ``inputs`` (the tops of
  ``Input`` layers), ``outputs`` (blobs no layer consumes, sorted as Caffe's ``std::set``),
  ``top_names``, ``bottom_names``, ``blob_loss_weights`` — all of them Caffe's, splits
  included: a blob read by several layers (or read and given a loss weight) has a layer
  ``<blob>_<layer>_<i>_split`` (type ``Split``) after its producer, whose tops
  ``<blob>_<layer>_<i>_split_<k>`` are what the readers' ``bottom_names`` say. A split top's
  ``data`` is its bottom's (the same memory, Caffe's ``ShareData``, from set-up and every
  forward on; a channels-last activation made C-ordered for its array stays shared, see
  ``Blob``); its ``diff`` is the gradient its one reader wrote, and the bottom's diff is the sum
  of its tops' diffs, as ``SplitLayer::Backward`` adds them;
* ``forward(blobs=None, start=None, end=None, **inputs)`` runs layers ``start``…``end``
  (names, inclusive) on the blobs as they are — what was written into ``blob.data`` is what
  is read — and returns ``{blob: data}`` of the outputs (or ``end``'s tops) plus ``blobs``;
  keyword inputs are copied into the input blobs first (their batch size must match);
  ``backward(diffs=None, start=None, end=None, **top_diffs)`` runs the layers back from
  ``start`` to ``end`` from the diffs the blobs hold (loss blobs hold their loss weight, as
  Caffe sets them) and returns the diffs of the inputs (or ``end``'s bottoms) plus ``diffs``.
  Every blob's diff is computed as Caffe's layers write it: overwritten by the layer that
  consumes it (summed by the splits), parameter diffs accumulated until
  ``clear_param_diffs``. Which layers and bottoms get a backward is Caffe's rule (learnable
  parameters, ``propagate_down``, only layers under a loss, ``force_backward``), and so is
  which parameters get a diff (``param_propagate_down``): those whose layer's own ParamSpec
  has ``lr_mult`` ≠ 0 — and, under ``force_backward``, every parameter, ``lr_mult: 0`` ones
  included (the solver then updates them at rate 0);
* shapes: a layer computes from whatever shapes its bottoms hold, so reshaping an input blob
  and calling ``forward()`` runs the net at the new size, as Caffe's per-layer ``Reshape``
  does; ``reshape()`` propagates the shapes through every layer without computing;
* ``set_input_arrays(data, labels)`` for a net whose first layer is ``MemoryData``
  (``reproduce.net.layers.memory_data``), with pycaffe's checks;
* ``copy_from``, ``share_with``, ``save`` (Caffe's ``Net.save`` layout, byte for byte: the
  split layers Caffe inserts are written too), ``save_hdf5``,
  ``load_hdf5``, ``clear_param_diffs``, ``forward_all``, ``backward_all``, ``forward_backward_all``,
  ``before_forward``/``after_forward``/``before_backward``/``after_backward`` hooks;
* ``Python`` layers run their own numpy code (``reproduce.pycaffe.layer``).

How it computes: every layer is the project's module (the same forward as ``Net.forward``,
constant band and inference layout included). When some layer needs a backward, each
layer's forward records its own small autograd graph (its bottoms as leaves) and
``backward`` runs them layer by layer with the diffs the blobs hold — which is what makes
``start``/``end``, written diffs and numpy Python layers work as in Caffe; otherwise forward
runs without gradients, as inference. A layer backward through before any forward of it
(or after its blobs were reshaped) is recomputed from its bottoms' data first.
"""
from __future__ import annotations

import contextlib
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from reproduce.caffe.schema import Message
from reproduce.net.net import Net as _ReproNet
from reproduce.net.layers.memory_data import MemoryData
from reproduce.net.layers.split import Split as SplitLayer
from reproduce.net.net import NetError
from reproduce.net.python_layers import python_layer_factory

from . import mode
from .blob import Blob, BlobVec, push_host_copies
from .layer import PHASES, TEST, TRAIN, LayerView, PythonLayerModule, param_blobs

_PHASE_NAMES = {TRAIN: "TRAIN", TEST: "TEST"}


def _phase_number(phase: Any) -> int:
    if isinstance(phase, str) and phase.upper() in PHASES:
        return PHASES[phase.upper()]
    if isinstance(phase, (int, np.integer)) and not isinstance(phase, bool) and int(phase) in (TRAIN, TEST):
        return int(phase)
    raise ValueError(f"phase must be caffe.TRAIN (0) or caffe.TEST (1), got {phase!r}")


def _constructor_args(args: tuple, kwargs: dict) -> tuple[int, Any, int, list[str]]:
    kwargs = dict(kwargs)
    phase = kwargs.pop("phase", None)
    weights = kwargs.pop("weights", None)
    level = int(kwargs.pop("level", 0))
    stages = kwargs.pop("stages", None)
    if kwargs:
        raise TypeError(f"caffe.Net got unexpected keyword arguments {sorted(kwargs)}")
    if len(args) == 2:        # the legacy Net(prototxt, weights, phase)
        if weights is not None:
            raise TypeError("caffe.Net(prototxt, weights, phase) takes no weights= besides")
        weights, phase = args
    elif len(args) == 1:
        if phase is not None:
            raise TypeError("caffe.Net got the phase twice")
        phase = args[0]
    elif args:
        raise TypeError(f"caffe.Net(prototxt, phase) or (prototxt, weights, phase), got "
                        f"{1 + len(args)} positional arguments")
    if phase is None:
        raise TypeError("caffe.Net needs a phase: caffe.Net(prototxt, caffe.TEST)")
    return _phase_number(phase), weights, level, [str(s) for s in (stages or [])]


def _check_file(path: Any, what: str) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{what} must be a file name, got {type(path).__name__}")
    if not Path(path).is_file():
        raise FileNotFoundError(f"Could not open file {os.fspath(path)} ({what})")
    return os.fspath(path)


def _check_contiguous_array(array: Any, name: str, channels: int, height: int, width: int) -> None:
    """``_caffe.cpp``'s ``CheckContiguousArray``, its order and texts."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(array).__name__}")
    if not array.flags["C_CONTIGUOUS"]:
        raise RuntimeError(f"{name} must be C contiguous")
    if array.ndim != 4:
        raise RuntimeError(f"{name} must be 4-d")
    if array.dtype != np.float32:
        raise RuntimeError(f"{name} must be float32")
    if array.shape[1] != channels:
        raise RuntimeError(f"{name} has wrong number of channels")
    if array.shape[2] != height:
        raise RuntimeError(f"{name} has wrong height")
    if array.shape[3] != width:
        raise RuntimeError(f"{name} has wrong width")


def _split_net(network_file: str | Message, phase: str, level: int, stages: list[str]) -> Message:
    """Caffe's ``Net::Init`` up to the layers: the NetParameter read and upgraded, filtered by
    the NetState (``FilterNet``), with the split layers inserted (``InsertSplits``). The
    project's ``Net`` built from it keeps every layer (a split has no rules; the others meet
    the same state again)."""
    from reproduce.caffe.upgrade import read_net, upgrade_net
    from reproduce.net.state_rules import filter_layers, net_state

    from .splits import insert_splits

    if isinstance(network_file, Message):
        if network_file.type_name != "NetParameter":
            raise TypeError(f"caffe.Net needs a NetParameter, not a {network_file.type_name}")
        param = upgrade_net(network_file)[0]
    else:
        param = read_net(network_file)
    kept = filter_layers(param, net_state(param, phase, level, stages))
    try:
        param.layer = insert_splits(kept)
    except NetError as err:
        where = network_file if isinstance(network_file, str) else "the NetParameter"
        raise NetError(f"{where}: {err}") from None
    return param


@contextlib.contextmanager
def _tracked(info: "_Layer", record: bool):
    """While recording: the parameters Caffe computes a diff for (``param_propagate_down``)
    tracked by autograd, those whose ``requires_grad`` is off included (a layer whose own
    ParamSpec has lr_mult != 0 sharing a blob whose rate is 0) — for this layer's call only."""
    turned = []
    if record:
        for param, need in zip(info.module.blobs(), info.param_need):
            if need and not param.requires_grad:
                param.requires_grad_(True)
                turned.append(param)
    try:
        yield
    finally:
        for param in turned:
            param.requires_grad_(False)


class _Layer:
    """Per layer: its module, blob names, which bottoms get a diff, graph of the last forward."""

    __slots__ = ("module", "bottoms", "tops", "python", "provider", "split", "need",
                 "need_backward", "param_need", "loss_tops", "index")

    def __init__(self, index, module, bottoms, tops, provider):
        self.index, self.module = index, module
        self.bottoms, self.tops = list(bottoms), list(tops)
        self.python = isinstance(module, PythonLayerModule)
        self.split = isinstance(module, SplitLayer)
        self.provider = provider
        self.need = [False] * len(bottoms)
        self.need_backward = False
        self.param_need = [False] * module._num_blobs   # Caffe's param_propagate_down
        self.loss_tops: list[tuple[str, float]] = []


class Net:
    """pycaffe's ``caffe.Net`` (see the module docstring)."""

    def __init__(self, network_file: str | os.PathLike | Message, *args: Any,
                 generator: torch.Generator | None = None, device: Any = None, **kwargs: Any):
        phase, weights, level, stages = _constructor_args(args, kwargs)
        if not isinstance(network_file, Message):
            network_file = _check_file(network_file, "net prototxt")
        self.phase = phase
        self._blob_objects: dict[str, Blob] = {}
        factory = self._python_layer_factory(phase)
        param = _split_net(network_file, _PHASE_NAMES[phase], level, stages)
        with python_layer_factory(factory):
            net = _ReproNet(param, phase=_PHASE_NAMES[phase], level=level, stages=stages,
                            generator=generator if generator is not None else mode.generator())
        self._net = net
        self._device = torch.device(device) if device is not None else mode.device()
        if self._device.type != "cpu":
            net.to(self._device)
        self._build_blobs()
        self._build_layers()
        self._plan_backward()
        self._graphs: dict[int, tuple[list, tuple]] = {}
        self._loss: torch.Tensor | None = None
        self._hooks: dict[str, list[Callable[[int], None]]] = {
            "before_forward": [], "after_forward": [], "before_backward": [], "after_backward": []}
        self._run_sources()
        if weights is not None:
            self.copy_from(_check_file(weights, "weights"))

    # ------------------------------------------------------------------ construction
    def _python_layer_factory(self, phase: int):
        def blob(name: str, shape: tuple | None) -> Blob:
            found = self._blob_objects.get(name)
            if found is None:
                tensor = torch.zeros(shape) if shape is not None else torch.zeros(0)
                found = self._blob_objects[name] = Blob(tensor, name)
            return found

        def build(layer_param, bottom_shapes, generator):
            return PythonLayerModule(layer_param, bottom_shapes, generator, phase=phase, blob=blob)

        return build

    def _build_blobs(self) -> None:
        net, device = self._net, self._device
        for name, shape in net.blob_shapes.items():
            blob = self._blob_objects.get(name)
            if blob is None:
                blob = self._blob_objects[name] = Blob(torch.zeros(shape), name)
            if blob._t.device != device:
                blob._t = blob._t.to(device)
        for top, weight in net.loss_blobs.items():   # Caffe's SetLossWeights: diff = weight
            blob = self._blob_objects[top]
            blob._g = torch.full(blob.shape, float(weight), device=device)
        self._visible = OrderedDict((name, self._blob_objects[name]) for name in net.blob_shapes
                                    if not name.startswith("("))

    def _build_layers(self) -> None:
        net = self._net
        steps = {step.layer.layer_name: step for step in net._plan}
        self._layers: list[_Layer] = []
        for index, name in enumerate(net.layer_names):
            module = net.layer(name)
            step = steps.get(name)
            if step is None:   # Input (and other fed) layers: nothing to run
                info = _Layer(index, module, [], list(module.layer_param.top), True)
            else:
                info = _Layer(index, module, step.bottoms, step.tops, False)
            info.loss_tops = [(t, net.loss_blobs[t]) for t in info.tops if t in net.loss_blobs]
            self._layers.append(info)
        self._index = {name: i for i, name in enumerate(net.layer_names)}
        self._split_source = {}   # split top -> the blob whose data it shares (followed to the root)
        for info in self._layers:
            if info.split:
                root = self._split_source.get(info.bottoms[0], info.bottoms[0])
                self._split_source.update((top, root) for top in info.tops)
        self._input_names = [b for info in self._layers if info.provider
                             for b in info.tops]
        self._input_set = set(self._input_names)

    def _plan_backward(self) -> None:
        """Caffe's ``Net::Init`` backward planning: which layers and bottoms need a diff."""
        net = self._net
        blob_need: dict[str, bool] = {}
        for info in self._layers:
            if info.provider:
                continue
            lp = info.module.layer_param
            cut = [not keep for keep in lp.propagate_down] or [False] * len(info.bottoms)
            # AppendBottom: a bottom needs a diff when its blob does (propagate_down overrides,
            # and cannot make one need it that does not); a parameter when the layer's own
            # ParamSpec has lr_mult != 0 (param_propagate_down)
            info.param_need = [(lp.param[i].lr_mult if i < len(lp.param) else 1.0) != 0
                               for i in range(info.module._num_blobs)]
            info.need = [blob_need.get(b, False) and not c for b, c in zip(info.bottoms, cut)]
            info.need_backward = any(info.param_need) or any(info.need)
            for top in info.tops:
                blob_need[top] = info.need_backward
        under_loss: set[str] = set()
        skip: set[str] = set()
        for info in reversed(self._layers):
            if info.provider:
                continue
            contributes = any(t in net.loss_blobs or t in under_loss for t in info.tops)
            skip_down = all(t in skip for t in info.tops) if info.tops else True
            if info.need_backward and skip_down:
                info.need_backward = False
                info.need = [False] * len(info.bottoms)
            if not contributes:
                info.need_backward = False
            for j, bottom in enumerate(info.bottoms):
                if contributes:
                    under_loss.add(bottom)
                else:
                    info.need[j] = False
                if not info.need[j]:
                    skip.add(bottom)
        if net.force_backward:
            for info in self._layers:
                if info.provider:
                    continue
                info.need_backward = True
                loss_layer = info.module.layer_type.endswith("Loss")
                info.need = [n or not (loss_layer and j == 1) for j, n in enumerate(info.need)]
                # force_backward: set_param_propagate_down(param_id, true) for every parameter,
                # lr_mult 0 ones included — their diff is computed (the solver's rate is 0)
                info.param_need = [True] * len(info.param_need)
        self._records = any(info.need_backward for info in self._layers)

    def _run_sources(self) -> None:
        """Layers without bottoms that compute (DummyData) fill their tops once at set-up,
        as Caffe's LayerSetUp does, so that their blobs hold data before any forward; data
        layers that read records (Data, ImageData, HDF5Data, WindowData) are left to the
        first forward, as in Caffe."""
        with torch.no_grad():
            for info in self._layers:
                if info.split:
                    self._share_split(info)
                elif (not info.provider and not info.python and not info.bottoms
                        and not isinstance(info.module, MemoryData)      # its arrays come later
                        and not hasattr(info.module, "state_dict_data")):   # reads records:
                    # Caffe's data layers only shape their tops at set-up (a batch read here
                    # would be skipped by the first forward)
                    for name, tensor in zip(info.tops, info.module()):
                        self._blob_objects[name]._set_tensor(tensor)

    def _share_split(self, info: _Layer) -> None:
        """Caffe's ``SplitLayer::Reshape``: every top shares the bottom's data (``ShareData``)."""
        bottom = self._blob_objects[info.bottoms[0]]
        source = bottom._t
        group = bottom._sharing = [bottom] + [self._blob_objects[top] for top in info.tops]
        for top in info.tops:
            blob = self._blob_objects[top]
            blob._sharing = group
            if blob._t is not source:
                blob._set_tensor(source)
                if blob._g is not None and blob._g.shape != source.shape:
                    blob._set_diff(None)

    # ------------------------------------------------------------------ pycaffe's properties
    @property
    def blobs(self) -> "OrderedDict[str, Blob]":
        return self._visible

    @property
    def _blob_names(self) -> list[str]:
        return list(self._visible)

    @property
    def _blobs(self) -> list[Blob]:
        return list(self._visible.values())

    @property
    def params(self) -> "OrderedDict[str, BlobVec]":
        return OrderedDict((info.module.layer_name, self._layer_blobs(info))
                           for info in self._layers if info.module._num_blobs)

    def _layer_blobs(self, info: _Layer) -> BlobVec:
        if info.python:
            return info.module.python.blobs
        return param_blobs(info.module)

    @property
    def layers(self) -> list:
        return [info.module.python if info.python else LayerView(info.module)
                for info in self._layers]

    @property
    def layer_dict(self) -> "OrderedDict[str, Any]":
        return OrderedDict(zip(self._layer_names, self.layers))

    @property
    def _layer_names(self) -> list[str]:
        return list(self._net.layer_names)

    @property
    def inputs(self) -> list[str]:
        return list(self._input_names)

    @property
    def outputs(self) -> list[str]:
        return list(self._net.outputs)

    @property
    def _inputs(self) -> list[int]:
        names = self._blob_names
        return [names.index(n) for n in self.inputs]

    @property
    def _outputs(self) -> list[int]:
        names = self._blob_names
        return [names.index(n) for n in self.outputs]

    @property
    def top_names(self) -> "OrderedDict[str, list[str]]":
        return OrderedDict((self._net.layer_names[i], [t for t in info.tops if not t.startswith("(")])
                           for i, info in enumerate(self._layers))

    @property
    def bottom_names(self) -> "OrderedDict[str, list[str]]":
        return OrderedDict((self._net.layer_names[i], list(info.bottoms))
                           for i, info in enumerate(self._layers))

    def _top_ids(self, i: int) -> list[int]:
        names = self._blob_names
        return [names.index(t) for t in self.top_names[self._net.layer_names[i]]]

    def _bottom_ids(self, i: int) -> list[int]:
        names = self._blob_names
        return [names.index(b) for b in self._layers[i].bottoms]

    @property
    def blob_loss_weights(self) -> "OrderedDict[str, float]":
        return OrderedDict((name, float(self._net.loss_blobs.get(name, 0.0)))
                           for name in self._visible)

    @property
    def _blob_loss_weights(self) -> list[float]:
        return list(self.blob_loss_weights.values())

    @property
    def name(self) -> str:
        return self._net.name

    @property
    def net(self) -> _ReproNet:
        """The ``reproduce.net.Net`` underneath (same tensors)."""
        return self._net

    # ------------------------------------------------------------------ forward
    def _layer_index(self, name: str | None, default: int) -> int:
        if name is None:
            return default
        try:
            return self._index[name]
        except KeyError:
            raise ValueError(f"no layer {name!r} in net {self.name!r}") from None

    def forward(self, blobs: Sequence[str] | None = None, start: str | None = None,
                end: str | None = None, **kwargs: Any) -> dict[str, np.ndarray]:
        """pycaffe's ``Net.forward`` (see the module docstring)."""
        blobs = list(blobs or [])
        start_index = self._layer_index(start, 0)
        end_index = self._layer_index(end, len(self._layers) - 1)
        outputs = set((self.top_names[end] if end is not None else self.outputs) + blobs)
        if kwargs:
            if set(kwargs) != set(self.inputs):
                raise ValueError(f"Input blob arguments do not match net inputs: given "
                                 f"{sorted(kwargs)}, the net's inputs are {self.inputs}")
            for name, value in kwargs.items():
                target = self._visible[name]
                if np.shape(value)[:1] != target.shape[:1]:
                    raise ValueError(f"Input is not batch sized: {name!r} has shape "
                                     f"{np.shape(value)}, the blob {target.shape}")
                target.data[...] = value
        self._forward(start_index, end_index)
        return {name: self._visible[name].data for name in outputs}

    def _forward(self, start: int, end: int) -> torch.Tensor:
        push_host_copies()
        record = self._records and torch.is_grad_enabled()
        objects = self._blob_objects
        net = self._net
        loss = None
        with torch.set_grad_enabled(record):
            channels_last = net._runs_channels_last(self._device)
            banded = net._constant_band and self._device.type == "cpu"
            bands: dict[str, Any] = {}
            converted: dict[str, torch.Tensor] = {}
            for index in range(start, end + 1):
                info = self._layers[index]
                if info.provider:
                    continue
                for hook in self._hooks["before_forward"]:
                    hook(index)
                if info.split:
                    self._share_split(info)
                    if info.bottoms[0] in bands:
                        bands.update((top, bands[info.bottoms[0]]) for top in info.tops)
                elif info.python:
                    info.module.run_forward()
                    self._graphs.pop(index, None)
                    tops = [objects[t]._t for t in info.tops]
                else:
                    args = []
                    for j, bottom in enumerate(info.bottoms):
                        tensor = objects[bottom]._t
                        root = self._split_source.get(bottom, bottom)
                        if record:
                            tensor = tensor.detach().requires_grad_(info.need[j])
                        elif channels_last and tensor.dim() == 4 and root in self._input_set:
                            if root not in converted:
                                converted[root] = tensor.contiguous(memory_format=torch.channels_last)
                            tensor = converted[root]
                        args.append(tensor)
                    with _tracked(info, record):
                        tops = self._run_layer(info, args, bands if banded else None)
                    for name, tensor in zip(info.tops, tops):
                        objects[name]._set_tensor(tensor)
                    if record:
                        self._graphs[index] = (args, tops)
                for top, weight in info.loss_tops:
                    value = objects[top]._t
                    term = value.sum() * weight if weight != 1.0 else value.sum()
                    loss = term if loss is None else loss + term
                for hook in self._hooks["after_forward"]:
                    hook(index)
        self._loss = loss if loss is not None else torch.zeros((), device=self._device)
        return self._loss

    def _run_layer(self, info: _Layer, args: list, bands: dict | None):
        try:
            if bands is not None:
                tops, top_bands = info.module.forward_banded(args, [bands.get(b) for b in info.bottoms])
                bands.update(zip(info.tops, top_bands))
                return tops
            return info.module(*args)
        except RuntimeError as err:
            layer = info.module.layer_param
            shapes = {b: tuple(a.shape) for b, a in zip(info.bottoms, args)}
            raise NetError(f"layer {layer.name!r} ({layer.type}) failed on bottoms {shapes}: "
                           f"{err}") from err

    # ------------------------------------------------------------------ backward
    def backward(self, diffs: Sequence[str] | None = None, start: str | None = None,
                 end: str | None = None, **kwargs: Any) -> dict[str, np.ndarray]:
        """pycaffe's ``Net.backward`` (see the module docstring)."""
        diffs = list(diffs or [])
        start_index = self._layer_index(start, len(self._layers) - 1)
        end_index = self._layer_index(end, 0)
        outputs = set((self.bottom_names[end] if end is not None else self.inputs) + diffs)
        if kwargs:
            if set(kwargs) != set(self.outputs):
                raise ValueError(f"Top diff arguments do not match net outputs: given "
                                 f"{sorted(kwargs)}, the net's outputs are {self.outputs}")
            for name, value in kwargs.items():
                target = self._visible[name]
                if np.shape(value)[:1] != target.shape[:1]:
                    raise ValueError(f"Diff is not batch sized: {name!r} has shape "
                                     f"{np.shape(value)}, the blob {target.shape}")
                target.diff[...] = value
        self._backward(start_index, end_index)
        return {name: self._visible[name].diff for name in outputs}

    def _backward(self, start: int, end: int) -> None:
        push_host_copies()
        objects = self._blob_objects
        written: set[str] = set()
        for index in range(start, end - 1, -1):
            info = self._layers[index]
            if info.provider or not info.need_backward:
                continue
            for hook in self._hooks["before_backward"]:
                hook(index)
            if info.split:
                self._split_backward(info, written)
            elif info.python:
                self._python_backward(info, written)
            else:
                self._layer_backward(index, info, written)
            for hook in self._hooks["after_backward"]:
                hook(index)

    def _split_backward(self, info: _Layer, written: set[str]) -> None:
        """Caffe's ``SplitLayer::Backward``: the bottom's diff is the sum of the tops' diffs
        (each the gradient its one reader wrote), in top order."""
        if not info.need[0]:
            return
        objects = self._blob_objects
        diffs = [objects[top]._diff_tensor() for top in info.tops]
        total = diffs[0].clone()
        for diff in diffs[1:]:
            total = total + diff
        blob = objects[info.bottoms[0]]
        bottom = info.bottoms[0]
        if bottom in written:
            blob._set_diff(blob._diff_tensor() + total)
        else:
            blob._set_diff(total)
            written.add(bottom)

    def _python_backward(self, info: _Layer, written: set[str]) -> None:
        objects = self._blob_objects
        earlier = {}
        for j, bottom in enumerate(info.bottoms):
            if info.need[j] and bottom in written and bottom not in info.tops:
                blob = objects[bottom]
                earlier[bottom] = blob._diff_tensor()
                blob._set_diff(None)
        info.module.run_backward(info.need)
        for bottom, diff in earlier.items():
            blob = objects[bottom]
            blob._set_diff(blob._diff_tensor() + diff)
        written.update(b for b, n in zip(info.bottoms, info.need) if n)

    def _layer_backward(self, index: int, info: _Layer, written: set[str]) -> None:
        objects = self._blob_objects
        graph = self._graphs.get(index)
        if graph is None or any(tuple(t.shape) != objects[n].shape
                                for n, t in zip(info.tops, graph[1])):
            graph = self._recompute(info)
            self._graphs[index] = graph
        args, tops = graph
        outs, grads = [], []
        for name, tensor in zip(info.tops, tops):
            if tensor.requires_grad:
                outs.append(tensor)
                grads.append(objects[name]._diff_tensor())
        if not outs:
            return
        leaves = [a for a, need in zip(args, info.need) if need and a.requires_grad]
        params = [p for p, need in zip(info.module.blobs(), info.param_need) if need]
        if not leaves and not params:
            return
        with _tracked(info, True):
            params = [p for p in params if p.requires_grad]   # (absent from this graph: none)
            got = torch.autograd.grad(outs, leaves + params, grads, retain_graph=True,
                                      allow_unused=True)
        k = 0
        for j, bottom in enumerate(info.bottoms):
            if not (info.need[j] and args[j].requires_grad):
                continue
            grad = got[k]
            k += 1
            if grad is None:
                grad = torch.zeros_like(args[j])
            blob = objects[bottom]
            if bottom in written and bottom not in info.tops:
                blob._set_diff(blob._diff_tensor() + grad)
            else:
                blob._set_diff(grad)
                written.add(bottom)
        with torch.no_grad():
            for param, grad in zip(params, got[k:]):
                if grad is None:
                    continue
                if param.grad is None:
                    param.grad = grad.contiguous()
                else:
                    param.grad.add_(grad)

    def _recompute(self, info: _Layer):
        objects = self._blob_objects
        args = [objects[b]._t.detach().requires_grad_(need) for b, need in zip(info.bottoms, info.need)]
        with torch.enable_grad(), _tracked(info, True):
            tops = self._run_layer(info, args, None)
        return args, tops

    # ------------------------------------------------------------------ shapes
    def reshape(self) -> None:
        """Caffe's ``Net::Reshape``: every layer's top shapes from its bottoms' (no compute)."""
        push_host_copies()
        objects = self._blob_objects
        for info in self._layers:
            if info.provider:
                continue
            if info.split:
                self._share_split(info)
                continue
            if isinstance(info.module, MemoryData):   # BaseDataLayer::Reshape does nothing
                continue
            if info.python:
                info.module.python.reshape(info.module.bottom_blobs, info.module.top_blobs)
                continue
            try:
                shapes = info.module.top_shapes([objects[b].shape for b in info.bottoms])
            except (ValueError, RuntimeError) as err:
                raise NetError(f"layer {info.module.layer_name!r}: cannot reshape: {err}") from err
            for name, shape in zip(info.tops, shapes):
                objects[name].reshape(*shape)
        push_host_copies()

    # ------------------------------------------------------------------ weights
    def copy_from(self, filename: str | os.PathLike) -> None:
        """Caffe's ``CopyTrainedLayersFrom`` (binary or HDF5 caffemodel; ``.pth`` too)."""
        push_host_copies()
        self._net.copy_from(_check_file(filename, "weights"))

    load_hdf5 = copy_from

    def share_with(self, other: "Net") -> None:
        """Caffe's ``ShareTrainedLayersWith``: ``other``'s parameter tensors, by layer name."""
        push_host_copies()
        self._net.share_with(other._net if isinstance(other, Net) else other)

    def _net_message(self) -> Message:
        """The net as Caffe's ``Net::ToProto`` writes it: its layers (phase set), the split
        layers ``Net::Init`` inserted among them (``reproduce.pycaffe.splits``)."""
        net = Message("NetParameter", name=self._net.name)
        net.layer = [self._net.layer(name).layer_param for name in self._net.layer_names]
        return net

    def save(self, filename: str | os.PathLike) -> None:
        """Caffe's ``Net.save``: the net's layers with their blobs, binary."""
        from reproduce.caffe.weights import write_caffemodel

        push_host_copies()
        write_caffemodel(filename, self._net.weights_dict(), self._net_message())

    def save_hdf5(self, filename: str | os.PathLike) -> None:
        """Caffe's ``Net.save_hdf5`` (``ToHDF5``)."""
        from reproduce.caffe.weights import write_hdf5

        push_host_copies()
        write_hdf5(filename, self._net.weights_dict(), self._net_message())

    def clear_param_diffs(self) -> None:
        """Caffe's ``ClearParamDiffs``: every parameter diff zeroed (in place)."""
        push_host_copies()
        with torch.no_grad():
            for blobs in self._net.params.values():
                for blob in blobs:
                    if blob.grad is not None:
                        blob.grad.zero_()

    def set_input_arrays(self, data, labels) -> None:
        """pycaffe's ``set_input_arrays`` (``_Net_set_input_arrays`` and ``_caffe.cpp``'s
        ``Net_SetInputArrays``): the arrays the first layer, a MemoryData layer, serves from —
        kept, not copied (the net holds them, as pycaffe's custodian_and_ward), so each
        forward's ``data`` blob is a view of ``data``. 1-d ``labels`` become N×1×1×1; then
        both must be C-contiguous 4-d float32, ``data`` N×channels×height×width and
        ``labels`` N×1×1×1, with the same N, a multiple of the batch size (Caffe's checks and
        texts, as ``RuntimeError``)."""
        first = self._layers[0].module if self._layers else None
        if not isinstance(first, MemoryData):
            raise RuntimeError("set_input_arrays may only be called if the first layer is a "
                               "MemoryDataLayer")
        if isinstance(labels, np.ndarray) and labels.ndim == 1:
            labels = np.ascontiguousarray(labels[:, np.newaxis, np.newaxis, np.newaxis])
        _check_contiguous_array(data, "data array", first.channels, first.height, first.width)
        _check_contiguous_array(labels, "labels array", 1, 1, 1)
        if data.shape[0] != labels.shape[0]:
            raise RuntimeError("data and labels must have the same first dimension")
        if data.shape[0] % first.batch_size != 0:
            raise RuntimeError("first dimensions of input arrays must be a multiple of batch "
                               "size")
        if data.shape[0] == 0:
            raise RuntimeError("data and labels hold no items (first dimension 0)")
        first.reset(torch.from_numpy(data), torch.from_numpy(labels))
        self._input_arrays = (data, labels)

    # ------------------------------------------------------------------ hooks
    def before_forward(self, hook: Callable[[int], None]) -> None:
        self._hooks["before_forward"].append(hook)

    def after_forward(self, hook: Callable[[int], None]) -> None:
        self._hooks["after_forward"].append(hook)

    def before_backward(self, hook: Callable[[int], None]) -> None:
        self._hooks["before_backward"].append(hook)

    def after_backward(self, hook: Callable[[int], None]) -> None:
        self._hooks["after_backward"].append(hook)

    # ------------------------------------------------------------------ batches
    def _batch(self, blobs: dict[str, Any]) -> Iterable[dict[str, np.ndarray]]:
        """pycaffe's ``_batch``: the arrays cut into the net's batch size, the last padded."""
        if not blobs:
            return
        num = len(next(iter(blobs.values())))
        batch_size = next(iter(self._visible.values())).shape[0]
        full, remainder = divmod(num, batch_size)
        for b in range(full):
            i = b * batch_size
            yield {name: np.asarray(blobs[name][i:i + batch_size]) for name in blobs}
        if remainder:
            yield {name: np.concatenate([np.asarray(blobs[name][-remainder:]),
                                         np.zeros((batch_size - remainder,)
                                                  + np.shape(blobs[name])[1:])])
                   for name in blobs}

    def forward_all(self, blobs: Sequence[str] | None = None, **kwargs: Any) -> dict[str, np.ndarray]:
        """pycaffe's ``forward_all``: ``forward`` over batches; the padding cut off."""
        outs: dict[str, list] = {name: [] for name in set(self.outputs + list(blobs or []))}
        for batch in self._batch(kwargs):
            for name, value in self.forward(blobs=blobs, **batch).items():
                outs[name].extend(value.copy())
        result = {name: np.asarray(values) for name, values in outs.items()}
        if kwargs and result:
            given = len(next(iter(kwargs.values())))
            result = {name: value[:given] for name, value in result.items()}
        return result

    def backward_all(self, diffs: Sequence[str] | None = None, **kwargs: Any) -> dict[str, np.ndarray]:
        """``backward`` over batches of the outputs' diffs (as ``forward_all`` over inputs): the
        diffs of the inputs (and ``diffs``), the padding cut off. Run it after the forward of
        the same batches, as each backward starts from what the blobs hold."""
        grads: dict[str, list] = {name: [] for name in set(self.inputs + list(diffs or []))}
        for batch in self._batch(kwargs):
            for name, value in self.backward(diffs=diffs, **batch).items():
                grads[name].extend(value.copy())
        result = {name: np.asarray(values) for name, values in grads.items()}
        if kwargs and result:
            given = len(next(iter(kwargs.values())))
            result = {name: value[:given] for name, value in result.items()}
        return result

    def forward_backward_all(self, blobs: Sequence[str] | None = None,
                             diffs: Sequence[str] | None = None, **kwargs: Any):
        """pycaffe's ``forward_backward_all``: forward and backward over batches."""
        outs = {name: [] for name in set(self.outputs + list(blobs or []))}
        grads = {name: [] for name in set(self.inputs + list(diffs or []))}
        forward_batches = list(self._batch({k: kwargs[k] for k in self.inputs if k in kwargs}))
        backward_batches = list(self._batch({k: kwargs[k] for k in self.outputs if k in kwargs}))
        for i in range(max(len(forward_batches), len(backward_batches))):
            fb = forward_batches[i] if i < len(forward_batches) else {}
            bb = backward_batches[i] if i < len(backward_batches) else {}
            for name, value in self.forward(blobs=blobs, **fb).items():
                outs[name].extend(value.copy())
            for name, value in self.backward(diffs=diffs, **bb).items():
                grads[name].extend(value.copy())
        given = len(next(iter(kwargs.values()))) if kwargs else None
        outs = {n: np.asarray(v)[:given] for n, v in outs.items()}
        grads = {n: np.asarray(v)[:given] for n, v in grads.items()}
        return outs, grads

    def __repr__(self) -> str:
        return f"<caffe Net {self.name!r} phase {_PHASE_NAMES[self.phase]}>"

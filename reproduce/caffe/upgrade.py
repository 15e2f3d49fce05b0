"""Legacy net and solver upgrades, as Caffe applies them on load (``upgrade_proto.cpp``).

``upgrade_net`` follows ``UpgradeNetAsNeeded`` step by step, in its order:

1. V0 nets (``layers { layer { … } }``) — not supported: ``UpgradeError``.
2. ``NetNeedsDataUpgrade`` / ``UpgradeNetDataTransformation``: ``scale``, ``mean_file``,
   ``crop_size`` and ``mirror`` of V1 DATA / IMAGE_DATA / WINDOW_DATA layers move into
   ``transform_param``.
3. ``NetNeedsV1ToV2Upgrade`` / ``UpgradeV1Net``: V1 ``layers`` (enum types) become ``layer``
   (type strings); ``param`` names, ``blob_share_mode``, ``blobs_lr`` and ``weight_decay``
   become ``param { name share_mode lr_mult decay_mult }``; every ``*_param``, ``blobs``,
   ``include``/``exclude`` and ``loss_weight`` carry over.
4. ``NetNeedsInputUpgrade`` / ``UpgradeNetInput``: net-level ``input`` with ``input_shape`` or
   ``input_dim`` (4 per input) becomes one ``Input`` layer named ``"input"`` with one top per
   input, placed first; ``input`` alone (a legacy caffemodel) is just dropped.
5. ``NetNeedsBatchNormUpgrade`` / ``UpgradeNetBatchNorm``: a BatchNorm layer with 3 ``param``
   gets ``lr_mult: 0 decay_mult: 0`` on each.

Where Caffe aborts (``LOG(FATAL)``, ``CHECK``, or an out-of-range protobuf index) this raises
``UpgradeError``. ``upgrade_solver`` mirrors ``UpgradeSolverAsNeeded`` (``solver_type`` enum →
``type`` string) and ``read_solver`` also ``UpgradeSnapshotPrefixProperty``.
"""
from __future__ import annotations

import os

from .errors import UpgradeError
from .schema import MESSAGES, Message
from .text import read

# What an upgrade did, as reported in the list next to the upgraded message.
V1_LAYERS = "V1"                 # V1LayerParameter `layers` → LayerParameter `layer`
DATA_TRANSFORM = "data-transform"
INPUT_FIELDS = "input-fields"
BATCH_NORM = "batch-norm"
SOLVER_TYPE = "solver-type"

# UpgradeV1LayerType (NONE maps to "", which Caffe's layer factory then refuses)
V1_LAYER_TYPES = {
    "NONE": "", "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL",
    "CONCAT": "Concat", "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution",
    "DECONVOLUTION": "Deconvolution", "DATA": "Data", "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData", "EUCLIDEAN_LOSS": "EuclideanLoss", "ELTWISE": "Eltwise",
    "EXP": "Exp", "FLATTEN": "Flatten", "HDF5_DATA": "HDF5Data", "HDF5_OUTPUT": "HDF5Output",
    "HINGE_LOSS": "HingeLoss", "IM2COL": "Im2col", "IMAGE_DATA": "ImageData",
    "INFOGAIN_LOSS": "InfogainLoss", "INNER_PRODUCT": "InnerProduct", "LRN": "LRN",
    "MEMORY_DATA": "MemoryData", "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN", "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss", "SILENCE": "Silence",
    "SOFTMAX": "Softmax", "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split", "SLICE": "Slice",
    "TANH": "TanH", "WINDOW_DATA": "WindowData", "THRESHOLD": "Threshold",
}

# UpgradeSolverType
SOLVER_TYPES = {"SGD": "SGD", "NESTEROV": "Nesterov", "ADAGRAD": "AdaGrad",
                "RMSPROP": "RMSProp", "ADADELTA": "AdaDelta", "ADAM": "Adam"}

# CONVERT_LAYER_TRANSFORM_PARAM: V1 layer type → its data parameter field
_DATA_LAYER_PARAMS = {"DATA": "data_param", "IMAGE_DATA": "image_data_param",
                      "WINDOW_DATA": "window_data_param"}
_TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")

# The *_param fields UpgradeV1LayerParameter copies: all of V1LayerParameter's.
_V1_PARAM_FIELDS = tuple(name for name in MESSAGES["V1LayerParameter"].fields
                         if name.endswith("_param"))


def upgrade_net(net: Message, path: str = "<string>") -> tuple[Message, list[str]]:
    """A current-format copy of NetParameter ``net`` and the list of upgrades applied.

    ``net`` itself is left unchanged; the copy shares its numpy arrays (blob data).
    """
    if net.type_name != "NetParameter":
        raise TypeError(f"upgrade_net needs a NetParameter, not {net.type_name}")
    net = _copy_sharing_arrays(net)
    done: list[str] = []
    if _needs_data_upgrade(net):
        _upgrade_data_transformation(net)
        done.append(DATA_TRANSFORM)
    if net.has("layers"):
        _upgrade_v1_net(net, path)
        done.append(V1_LAYERS)
    if net.has("input"):
        _upgrade_input(net, path)
        done.append(INPUT_FIELDS)
    if any(_is_old_batch_norm(layer) for layer in net.layer):
        for layer in filter(_is_old_batch_norm, net.layer):
            for spec in layer.param:
                spec.lr_mult, spec.decay_mult = 0.0, 0.0
        done.append(BATCH_NORM)
    return net, done


def upgrade_solver(solver: Message, path: str = "<string>") -> tuple[Message, list[str]]:
    """A copy of SolverParameter ``solver`` with ``solver_type`` turned into ``type``."""
    if solver.type_name != "SolverParameter":
        raise TypeError(f"upgrade_solver needs a SolverParameter, not {solver.type_name}")
    solver = _copy_sharing_arrays(solver)
    done: list[str] = []
    if solver.has("solver_type"):
        if solver.has("type"):
            raise UpgradeError("Failed to upgrade solver: old solver_type field (enum) and new "
                               "type field (string) cannot be both specified", path)
        old = solver.solver_type
        if old not in SOLVER_TYPES:
            raise UpgradeError(f"unknown SolverParameter solver_type: {old}", path)
        solver.type = SOLVER_TYPES[old]
        solver.clear("solver_type")
        done.append(SOLVER_TYPE)
    return solver, done


def read_net(path: str | os.PathLike) -> Message:
    """Parse a prototxt as NetParameter and upgrade it (Caffe's ReadNetParamsFromTextFileOrDie)."""
    net, _ = upgrade_net(read(path, "NetParameter"), os.fspath(path))
    return net


def read_solver(path: str | os.PathLike) -> Message:
    """Parse a solver prototxt and upgrade it (Caffe's ReadSolverParamsFromTextFileOrDie).

    As Caffe does, an unset ``snapshot_prefix`` becomes the solver file's path without its
    extension, and a ``snapshot_prefix`` naming an existing directory gets the file's stem
    appended (both relative to the current directory, as Caffe resolves them).
    """
    solver, _ = upgrade_solver(read(path, "SolverParameter"), os.fspath(path))
    path = os.fspath(path)
    if not solver.has("snapshot_prefix"):
        solver.snapshot_prefix = os.path.splitext(path)[0]
    elif os.path.isdir(solver.snapshot_prefix):
        stem = os.path.splitext(os.path.basename(path))[0]
        solver.snapshot_prefix = os.path.join(solver.snapshot_prefix, stem)
    return solver


def _needs_data_upgrade(net: Message) -> bool:
    for layer in net.layers:
        field = _DATA_LAYER_PARAMS.get(layer.type)
        if field and any(getattr(layer, field).has(name) for name in _TRANSFORM_FIELDS):
            return True
    return False


def _upgrade_data_transformation(net: Message) -> None:
    for layer in net.layers:
        field = _DATA_LAYER_PARAMS.get(layer.type)
        if field is None:
            continue
        # Caffe calls mutable_*_param() and mutable_transform_param() on every layer of these
        # types, so each of them ends up with both messages present, empty or not.
        data_param, transform = layer.mutable(field), layer.mutable("transform_param")
        for name in _TRANSFORM_FIELDS:
            if data_param.has(name):
                setattr(transform, name, getattr(data_param, name))
                data_param.clear(name)


def _upgrade_v1_net(net: Message, path: str) -> None:
    if net.has("layer"):
        raise UpgradeError("Refusing to upgrade inconsistent NetParameter input; the definition "
                           "includes both 'layer' and 'layers' fields", path)
    v1_layers = net.layers
    net.clear("layers")
    net.layer = [_upgrade_v1_layer(v1, index, path) for index, v1 in enumerate(v1_layers)]


def _upgrade_v1_layer(v1: Message, index: int, path: str) -> Message:
    where = f"layers[{index}]" + (f' ("{v1.name}")' if v1.has("name") else "")
    layer = Message("LayerParameter")
    layer.bottom = list(v1.bottom)
    layer.top = list(v1.top)
    if v1.has("name"):
        layer.name = v1.name
    layer.include = v1.include
    layer.exclude = v1.exclude
    if not v1.has("type") and not v1.has("name"):
        raise UpgradeError(f"{where} has neither name nor type (is this a V0 net, "
                           "layers { layer { … } }? V0 nets are not supported)", path)
    if v1.has("type"):
        if v1.type not in V1_LAYER_TYPES:
            raise UpgradeError(f"{where}: unknown V1LayerParameter layer type: {v1.type}", path)
        layer.type = V1_LAYER_TYPES[v1.type]
    layer.blobs = v1.blobs

    def param(i: int) -> Message:
        while len(layer.param) <= i:
            layer.add("param")
        return layer.param[i]

    for i, name in enumerate(v1.param):
        param(i).name = name
    for i, mode in enumerate(v1.blob_share_mode):
        if mode not in ("STRICT", "PERMISSIVE"):
            raise UpgradeError(f"{where}: unknown blob_share_mode: {mode}", path)
        param(i).share_mode = mode
    for i, lr in enumerate(v1.blobs_lr):
        param(i).lr_mult = float(lr)
    for i, decay in enumerate(v1.weight_decay):
        param(i).decay_mult = float(decay)
    layer.loss_weight = [float(w) for w in v1.loss_weight]
    for name in _V1_PARAM_FIELDS:
        if v1.has(name):
            setattr(layer, name, getattr(v1, name))
    return layer


def _upgrade_input(net: Message, path: str) -> None:
    inputs = list(net.input)
    has_shape, has_dim = net.has("input_shape"), net.has("input_dim")
    if has_shape or has_dim:
        layer = Message("LayerParameter", name="input", type="Input", top=inputs)
        input_param = layer.mutable("input_param")
        if has_shape:
            if len(net.input_shape) < len(inputs):
                raise UpgradeError(f"{len(inputs)} inputs but only {len(net.input_shape)} "
                                   "input_shape entries", path)
            input_param.shape = net.input_shape[:len(inputs)]
        else:
            dims = [int(d) for d in net.input_dim]
            if len(dims) < 4 * len(inputs):
                raise UpgradeError(f"{len(inputs)} inputs need {4 * len(inputs)} input_dim "
                                   f"values (4 each) but there are {len(dims)}", path)
            # Caffe reads exactly 4 per input and ignores any extra input_dim values.
            input_param.shape = [Message("BlobShape", dim=dims[4 * i:4 * i + 4])
                                 for i in range(len(inputs))]
        net.layer = [layer, *net.layer]
    for name in ("input", "input_shape", "input_dim"):
        net.clear(name)


def _copy_sharing_arrays(value):
    """A deep copy of messages and lists that shares numpy arrays (blob data can be GBs)."""
    if isinstance(value, Message):
        out = Message(value.type_name)
        for f, item in value.present_fields():
            setattr(out, f.name, _copy_sharing_arrays(item))
        return out
    if isinstance(value, list):
        return [_copy_sharing_arrays(item) for item in value]
    return value


def _is_old_batch_norm(layer: Message) -> bool:
    return layer.type == "BatchNorm" and len(layer.param) == 3

"""The five PASCAL VOC nets of the reference release, each described once, and their solvers.

``MODELS`` names them (``fcn32s``, ``fcn16s``, ``fcn8s``, ``fcn8s-atonce``, ``fcn-alexnet``);
``net_param(name, split)`` emits one as a NetParameter:

* ``"train"``: the reference ``SBDDSegDataLayer`` (SBD ``train``) Python data layer and the loss;
* ``"val"``: the ``VOCSegDataLayer`` (VOC2011 ``seg11valid``) data layer and the loss;
* ``"deploy"``: an ``Input`` layer ``input`` (default 1×3×500×500, as the released
  ``voc-fcn8s/deploy.prototxt``; any size runs) and no loss.

The data layers carry the reference's ``param_str`` verbatim — the ``repr`` of the dict its
Python 2 ``net.py`` built, key order included — and the relative data paths of each net's
folder (voc-fcn16s reaches ``../../data``, a quirk of the release). The loss is
``SoftmaxWithLoss`` ignoring label 255, *unnormalized* (summed over pixels) for the VGG nets —
hence their tiny base_lr 1e-10/1e-12/1e-14 with momentum 0.99 — and normalized for
FCN-AlexNet (base_lr 1e-4, momentum 0.9, gradient accumulation over 20 images).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from reproduce.caffe.schema import Message
from reproduce.net.coord_map import fill_crop_offsets
from reproduce.net.spec import NetSpec, assign, layers as L

from .backbones import BACKBONES
from .heads import fcn_head
from .widths import Widths, width_map

SPLITS = ("train", "val", "deploy")
VAL_SPLIT = "seg11valid"  # the 736 VOC2011 segval images that do not intersect SBD train
MEAN_BGR = (104.00699, 116.66877, 122.67892)
SEED = 1337
IGNORE_LABEL = 255
DEPLOY_INPUT_SHAPE = (1, 3, 500, 500)

SOLVER_COMMON: Mapping[str, Any] = {
    "train_net": "train.prototxt",
    "test_net": "val.prototxt",
    "test_iter": 736,
    "test_interval": 999999999,  # make the test net, but never run it from the solver itself
    "display": 20,
    "average_loss": 20,
    "lr_policy": "fixed",
    "momentum": 0.99,
    "iter_size": 1,
    "max_iter": 100000,
    "weight_decay": 0.0005,
    "snapshot": 4000,
    "snapshot_prefix": "snapshot/train",
    "test_initialization": False,
}


@dataclass(frozen=True)
class FCNModel:
    """One net of the family: backbone, head and training settings."""

    name: str
    backbone: str
    skips: tuple[str, ...] = ()
    skip_scales: Mapping[str, float] | None = None
    final_kernel: int | None = None
    normalize_loss: bool = False
    data_root: str = "../data"
    solver: Mapping[str, Any] = field(default_factory=dict)

    @property
    def folder(self) -> str:
        """The reference release's folder name (``voc-fcn8s``)."""
        return f"voc-{self.name}"


MODELS: "OrderedDict[str, FCNModel]" = OrderedDict((m.name, m) for m in (
    FCNModel("fcn32s", "vgg16", solver={"base_lr": 1e-10}),
    FCNModel("fcn16s", "vgg16", skips=("pool4",), data_root="../../data",
             solver={"base_lr": 1e-12}),
    FCNModel("fcn8s", "vgg16", skips=("pool4", "pool3"), solver={"base_lr": 1e-14}),
    FCNModel("fcn8s-atonce", "vgg16", skips=("pool4", "pool3"),
             skip_scales={"pool4": 0.01, "pool3": 0.0001},
             solver={"base_lr": 1e-10, "max_iter": 300000}),
    FCNModel("fcn-alexnet", "alexnet", final_kernel=63, normalize_loss=True,
             solver={"base_lr": 1e-4, "momentum": 0.9, "iter_size": 20}),
))


def model(name: str) -> FCNModel:
    """The description named ``name`` (also accepts the folder name ``voc-fcn8s``)."""
    key = name[len("voc-"):] if name.startswith("voc-") else name
    try:
        return MODELS[key]
    except KeyError:
        raise KeyError(f"unknown FCN model {name!r} (known: {', '.join(MODELS)})") from None


def data_param_str(m: FCNModel, split: str) -> str:
    """The reference data layer's ``param_str`` for ``split`` (``train`` or ``val``)."""
    if split == "train":
        params = {"sbdd_dir": f"{m.data_root}/sbdd/dataset"}
    else:
        params = {"voc_dir": f"{m.data_root}/pascal/VOC2011"}
    params.update(seed=SEED, split="train" if split == "train" else VAL_SPLIT, mean=MEAN_BGR)
    return repr(params)


def net_spec(name: str, split: str = "train", num_classes: int = 21, widths: Widths = "full",
             input_shape: Sequence[int] = DEPLOY_INPUT_SHAPE) -> NetSpec:
    """The ``NetSpec`` of net ``name`` for ``split`` (crops not yet derived)."""
    m = model(name)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, not {split!r}")
    if not (isinstance(num_classes, int) and num_classes > 0):
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    n = NetSpec()
    if split == "deploy":
        n.data = L.Input(name="input", shape=dict(dim=[int(d) for d in input_shape]))
    else:
        layer = "SBDDSegDataLayer" if split == "train" else "VOCSegDataLayer"
        n.data, n.label = L.Python(module="voc_layers", layer=layer, ntop=2,
                                   param_str=data_param_str(m, split))
    features = BACKBONES[m.backbone](n, n.data, width_map(widths))
    fcn_head(n, features, n.data, num_classes, skips=m.skips, skip_scales=m.skip_scales,
             final_kernel=m.final_kernel)
    if split != "deploy":
        n.loss = L.SoftmaxWithLoss(n.score, n.label, loss_param=dict(
            normalize=m.normalize_loss, ignore_label=IGNORE_LABEL))
    return n


def net_param(name: str, split: str = "train", num_classes: int = 21, widths: Widths = "full",
              input_shape: Sequence[int] = DEPLOY_INPUT_SHAPE) -> Message:
    """Net ``name`` for ``split`` as a NetParameter, every crop offset derived from geometry.

    ``widths``: ``"full"``, ``"tiny"`` or a ``{full width: width}`` table;
    ``input_shape``: the deploy net's ``Input`` shape (ignored for train and val).
    """
    return fill_crop_offsets(net_spec(name, split, num_classes, widths, input_shape))


def solver_param(name: str) -> Message:
    """The reference ``solver.prototxt`` of net ``name`` as a SolverParameter."""
    solver = Message("SolverParameter")
    for key, value in {**SOLVER_COMMON, **model(name).solver}.items():
        assign(solver, key, value)
    return solver

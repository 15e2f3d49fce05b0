"""One description per net of the reference release, and what every dataset's nets share.

An ``FCNModel`` says what a net is — backbone, skips, heads (class counts, the label top each
is trained on, its loss), inputs and how they are fused, the data layer's dataset — and how
the release trains it: its solver and where its ``solve.py`` starts from (``init``). The
dataset modules (``voc``, ``nyud``, ``siftflow``, ``pascalcontext``) hold a ``DatasetNets``
each — the split names, the data layer and its ``param_str``, the solver settings all of its
nets share — and their nets' descriptions; ``reproduce.models.build`` turns a description into
Caffe messages, ``reproduce.models.fcn`` into PyTorch modules.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

IGNORE_LABEL = 255
SEED = 1337

# The solver.prototxt fields every net of the release shares: the solver makes the test net
# but never runs it itself (solve.py runs seg_tests), fixed lr, momentum 0.99, batch 1.
RELEASE_SOLVER: Mapping[str, Any] = {
    "test_interval": 999999999,
    "display": 20,
    "average_loss": 20,
    "lr_policy": "fixed",
    "momentum": 0.99,
    "iter_size": 1,
    "weight_decay": 0.0005,
    "test_initialization": False,
}


def release_solver(train_net: str, test_net: str, test_iter: int, max_iter: int,
                   snapshot: int | None = None) -> dict:
    """A dataset's solver fields: the release's shared ones and its own (file names, test
    iterations = the test split's size, iterations, snapshot cadence or none)."""
    fields = {"train_net": train_net, "test_net": test_net, "test_iter": test_iter, **RELEASE_SOLVER,
              "max_iter": max_iter}
    if snapshot is not None:
        fields.update(snapshot=snapshot, snapshot_prefix="snapshot/train")
    return fields


@dataclass(frozen=True)
class Head:
    """One output of a net: ``score<suffix>`` over ``num_classes`` classes, trained on the
    ``label`` top by the SoftmaxWithLoss ``loss`` (SIFT Flow has two: ``_sem`` and ``_geo``).

    ``metric``: what the papers score this head by, a key of the seg_tests row — ``mean_iu``
    (score.py's), ``mean_iu_present`` (mean IU over the classes present in the test set's
    ground truth: SIFT Flow semantic, CVPR 2015 Table 5) or ``overall_acc`` (pixel accuracy:
    SIFT Flow geometric, Table 5 "geom. acc.")."""

    num_classes: int
    suffix: str = ""
    label: str = "label"
    loss: str = "loss"
    metric: str = "mean_iu"

    @property
    def score(self) -> str:
        return f"score{self.suffix}"


@dataclass(frozen=True)
class DataLayer:
    """A reference Python data layer: ``module.layer`` with its ``param_str`` text."""

    module: str
    layer: str
    param_str: str


@dataclass(frozen=True)
class DatasetNets:
    """What the nets of one dataset share in the release.

    ``splits``: the (training, testing) split names the prototxt files are named after
    (``train``/``val`` for VOC and Context, ``trainval``/``test`` for NYUDv2 and SIFT Flow);
    ``data_layer(model, split)``: the reference data layer of that split; ``solver``: the
    SolverParameter fields every net of the dataset has (a value of ``None`` leaves the field
    out); ``test_interval``: how many iterations each ``solver.step`` of its ``solve.py`` runs
    between ``seg_tests``. The dataset's own facts (classes, mean, the ``data fetch`` names
    that get it, how a stage reads it) are its description's, ``reproduce.data.description``.
    """

    key: str
    splits: tuple[str, str]
    data_layer: Callable[["FCNModel", str], DataLayer]
    solver: Mapping[str, Any]
    test_interval: int

    @property
    def all_splits(self) -> tuple[str, str, str]:
        return (*self.splits, "deploy")


@dataclass(frozen=True)
class FCNModel:
    """One net of the release (see the module docstring).

    ``inputs``: the data tops the net computes from, in the data layer's top order (``data``;
    NYUDv2's ``color``, ``depth``, ``hha``); ``modalities``: what the data layer's ``tops``
    parameter asks for, where it has one (NYUDv2: ``hha`` for a net whose input top is
    ``data``); ``fusion``: ``None`` (one input), ``"early"`` (the
    inputs concatenated into ``data`` before a VGG whose first convolution is renamed
    ``first_conv``) or ``"late"`` (one VGG per input, layer names suffixed by the input's
    name, their ``score_fr`` averaged by an Eltwise before the one upsampling).
    ``init``: ``"transplant"`` (from the ILSVRC classifier ``base_net`` by the reference
    surgery), ``"copy_from"`` (the ``previous`` stage's result, by layer name) or ``"streams"``
    (late fusion: each stream transplanted from its single-input net in ``previous_streams``).
    ``released``: whether the reference release has the net (a folder of prototxts); False for a
    net of the papers that it never published (FCN-GoogLeNet, CVPR 2015 Table 1: "coming soon"
    in the release README), which therefore has nothing upstream to be compared with.
    """

    name: str
    folder: str
    dataset: str
    heads: tuple[Head, ...]
    backbone: str = "vgg16"
    skips: tuple[str, ...] = ()
    skip_scales: Mapping[str, float] | None = None
    final_kernel: int | None = None
    normalize_loss: bool = False
    data_root: str = "../data"
    inputs: tuple[str, ...] = ("data",)
    modalities: tuple[str, ...] = ()
    fusion: str | None = None
    first_conv: str | None = None
    solver: Mapping[str, Any] = field(default_factory=dict)
    init: str = "transplant"
    base_net: str | None = "vgg16"
    previous: str | None = None
    previous_streams: Mapping[str, str] | None = None
    make_target: str = ""
    released: bool = True

    @property
    def num_classes(self) -> int:
        """The class count of the first (for SIFT Flow: semantic) head."""
        return self.heads[0].num_classes

    @property
    def outputs(self) -> tuple[str, ...]:
        """The score blobs the deploy net ends in (``score``; ``score_sem``, ``score_geo``)."""
        return tuple(h.score for h in self.heads)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(h.label for h in self.heads)

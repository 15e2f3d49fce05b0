"""The four NYUDv2 nets of the reference release (40 classes; Gupta et al.'s task).

``nyud-fcn32s-color`` (RGB), ``nyud-fcn32s-hha`` (HHA depth encoding), ``nyud-fcn32s-color-d``
(early fusion: color and log-depth concatenated into a 4-channel ``data``, its first
convolution ``conv1_1_bgrd``) and ``nyud-fcn32s-color-hha`` (late fusion: a VGG16 per
modality, layer names suffixed ``color``/``hha``, their ``score_fr`` averaged — Eltwise SUM
with coefficients 0.5 — before one 32× upsampling). PAMI 2016 Sec. 5 / CVPR 2015 Sec. 4.3
("NYUDv2") and Table 4 (CVPR) report them.

Splits ``trainval`` (795 images) and ``test`` (654), read by ``nyud_layers.NYUDSegDataLayer``
whose ``tops`` parameter picks the modalities. The solver is the VOC one with 300k
iterations, a snapshot every 2000 and ``test_iter`` 654; each ``solve.py`` tests every 2000
iterations. The release's ``solve.py`` scripts score ``val``, a name they never define (they
load ``test.txt`` into ``test``): the stages here score the ``test`` split they load.

Init as the scripts do: color and HHA ``copy_from`` the VGG16 FCN (the transplanted
classifier); color-d transplants VGG16 and fills ``conv1_1_bgrd`` with conv1_1's filters
for the three colour channels and their mean for depth; color-hha transplants the trained
color and HHA nets, each into its suffixed stream.
"""
from __future__ import annotations

from .description import SEED, DataLayer, DatasetNets, FCNModel, Head, release_solver

NUM_CLASSES = 40

SOLVER_COMMON = release_solver("trainval.prototxt", "test.prototxt",
                               test_iter=654, max_iter=300000, snapshot=2000)


def data_layer(m: FCNModel, split: str) -> DataLayer:
    """``NYUDSegDataLayer`` with the net's modalities and the label, as the release's net.py."""
    params = {"tops": [*m.modalities, "label"], "seed": SEED, "nyud_dir": f"{m.data_root}/nyud",
              "split": split}
    return DataLayer("nyud_layers", "NYUDSegDataLayer", repr(params))


DATASET = DatasetNets("nyud", ("trainval", "test"), data_layer, SOLVER_COMMON, test_interval=2000)

_HEADS = (Head(NUM_CLASSES),)
MODELS = tuple(FCNModel(dataset="nyud", heads=_HEADS, **m) for m in (
    dict(name="nyud-fcn32s-color", folder="nyud-fcn32s-color", modalities=("color",),
         solver={"base_lr": 1e-10}, make_target="stage-nyud-color"),
    dict(name="nyud-fcn32s-hha", folder="nyud-fcn32s-hha", modalities=("hha",),
         solver={"base_lr": 1e-10}, make_target="stage-nyud-hha"),
    dict(name="nyud-fcn32s-color-d", folder="nyud-fcn32s-color-d", modalities=("color", "depth"),
         inputs=("color", "depth"), fusion="early", first_conv="conv1_1_bgrd",
         solver={"base_lr": 1e-10}, make_target="stage-nyud-color-d"),
    dict(name="nyud-fcn32s-color-hha", folder="nyud-fcn32s-color-hha", modalities=("color", "hha"),
         inputs=("color", "hha"), fusion="late", solver={"base_lr": 1e-12}, init="streams",
         base_net=None, previous_streams={"color": "nyud-fcn32s-color", "hha": "nyud-fcn32s-hha"},
         make_target="stage-nyud-color-hha"),
))

"""The three SIFT Flow nets of the reference release: one VGG16, two heads.

``siftflow-fcn32s``, ``siftflow-fcn16s``, ``siftflow-fcn8s``: the features after fc7 feed a
semantic head (33 classes, ``score_sem``, trained on ``sem`` by ``loss``) and a geometric
head (3 classes — sky, horizontal, vertical — ``score_geo``, trained on ``geo`` by
``loss_geo``), each with its own skips; every head layer's name ends in ``_sem``/``_geo``.
CVPR 2015 Sec. 4.3 / Table 5 and PAMI 2016 Table 8 report them (both heads trained jointly).

Splits ``trainval`` (2,486 images in the release's list) and ``test`` (200) of ``siftflow_layers.SIFTFlowSegDataLayer``.
The solver has 300k iterations, no snapshot fields (the release leaves them out) and
``test_iter`` 200; base_lr 1e-10 for 32s and 1e-12 for both 16s and 8s (as released). Each
``solve.py`` tests both heads every 2000 iterations; 32s copies the VGG16 FCN, 16s the 32s
result and 8s the 16s result.
"""
from __future__ import annotations

from .description import SEED, DataLayer, DatasetNets, FCNModel, Head, release_solver

SEMANTIC_CLASSES = 33
GEOMETRIC_CLASSES = 3

SOLVER_COMMON = release_solver("trainval.prototxt", "test.prototxt",
                               test_iter=200, max_iter=300000)  # no snapshot fields


def data_layer(m: FCNModel, split: str) -> DataLayer:
    params = {"siftflow_dir": f"{m.data_root}/sift-flow", "seed": SEED, "split": split}
    return DataLayer("siftflow_layers", "SIFTFlowSegDataLayer", repr(params))


DATASET = DatasetNets("siftflow", ("trainval", "test"), data_layer, SOLVER_COMMON, test_interval=2000)

# the papers score the semantic head over the classes present in the 200 test images and the
# geometric head by pixel accuracy (CVPR 2015 Table 5; see reproduce.evaluation.score)
_HEADS = (Head(SEMANTIC_CLASSES, "_sem", "sem", "loss", metric="mean_iu_present"),
          Head(GEOMETRIC_CLASSES, "_geo", "geo", "loss_geo", metric="overall_acc"))
MODELS = tuple(FCNModel(dataset="siftflow", heads=_HEADS, folder=f"siftflow-{m['stride']}",
                        name=f"siftflow-{m.pop('stride')}", **m) for m in (
    dict(stride="fcn32s", solver={"base_lr": 1e-10}, make_target="stage-siftflow-32s"),
    dict(stride="fcn16s", skips=("pool4",), solver={"base_lr": 1e-12}, init="copy_from",
         base_net=None, previous="siftflow-fcn32s", make_target="stage-siftflow-16s"),
    dict(stride="fcn8s", skips=("pool4", "pool3"), solver={"base_lr": 1e-12}, init="copy_from",
         base_net=None, previous="siftflow-fcn16s", make_target="stage-siftflow-8s"),
))

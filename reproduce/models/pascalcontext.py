"""The three PASCAL-Context nets of the reference release (59 classes + background).

``pascalcontext-fcn32s``, ``pascalcontext-fcn16s``, ``pascalcontext-fcn8s``: the VOC nets
with 60 score channels — the 59 most frequent classes of PASCAL-Context (Mottaghi et al.)
and background, label 0 — on PASCAL VOC 2010 images. PAMI 2016 Table 6 (the 59-class task)
reports them.

Splits ``train`` (4,998 images) and ``val`` (5,105) of
``pascalcontext_layers.PASCALContextSegDataLayer``; every net's data paths reach
``../../data`` (a quirk of the release). The solver: 300k iterations, snapshot every 4000,
``test_iter`` 5105, base_lr 1e-10/1e-12/1e-14; each ``solve.py`` tests every 8000 iterations.
"""
from __future__ import annotations

from .description import SEED, DataLayer, DatasetNets, FCNModel, Head, release_solver

NUM_CLASSES = 60  # 59 classes and background

SOLVER_COMMON = release_solver("train.prototxt", "val.prototxt",
                               test_iter=5105, max_iter=300000, snapshot=4000)


def data_layer(m: FCNModel, split: str) -> DataLayer:
    params = {"context_dir": f"{m.data_root}/pascal-context", "seed": SEED, "split": split,
              "voc_dir": f"{m.data_root}/pascal"}
    return DataLayer("pascalcontext_layers", "PASCALContextSegDataLayer", repr(params))


DATASET = DatasetNets("pascalcontext", ("train", "val"), data_layer, SOLVER_COMMON, test_interval=8000)

_HEADS = (Head(NUM_CLASSES),)
MODELS = tuple(FCNModel(dataset="pascalcontext", heads=_HEADS, data_root="../../data",
                        folder=f"pascalcontext-{m['stride']}", name=f"pascalcontext-{m.pop('stride')}",
                        **m) for m in (
    dict(stride="fcn32s", solver={"base_lr": 1e-10}, make_target="stage-pascalcontext-32s"),
    dict(stride="fcn16s", skips=("pool4",), solver={"base_lr": 1e-12}, init="copy_from",
         base_net=None, previous="pascalcontext-fcn32s", make_target="stage-pascalcontext-16s"),
    dict(stride="fcn8s", skips=("pool4", "pool3"), solver={"base_lr": 1e-14}, init="copy_from",
         base_net=None, previous="pascalcontext-fcn16s", make_target="stage-pascalcontext-8s"),
))

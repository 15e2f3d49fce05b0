"""The five PASCAL VOC nets of the reference release and the paper's FCN-GoogLeNet, each described once, and their solvers.

``fcn32s``, ``fcn16s``, ``fcn8s``, ``fcn8s-atonce``, ``fcn-alexnet`` (release folders
``voc-<name>``), with the splits:

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

``fcn-googlenet`` (folder ``voc-fcn-googlenet``) is the paper's third adapted classifier (CVPR
2015 Sec. 4.1, Table 1: 42.5 mean IU, 6M parameters, receptive field 907, stride 32), which the
release announced as "coming soon" and never published: no net, solver or weights of it exist
upstream (``released=False``). It is described like FCN-32s — the GoogLeNet trunk
(``backbones.googlenet``), ``score_fr``, a fixed bilinear 32× ``upscore``, the crop to
``data`` — with the VOC data layers of the other VOC nets, the unnormalized loss and FCN-32s's
release solver (``voc-fcn32s/solver.prototxt``: base_lr 1e-10, lr_policy fixed, momentum 0.99,
weight_decay 0.0005, iter_size 1, max_iter 100000, snapshot 4000, test_iter 736), since that
is the release's recipe for a 32-stride net started from an ILSVRC classifier with that
loss; it starts from ``bvlc_googlenet.caffemodel`` by the reference surgery (the auxiliary and
final classifiers dropped). The paper's own recipe for it (minibatch 20, fixed lr 5e-5,
momentum 0.9; Sec. 4.1 "Optimization") is not this one, so its 42.5 is context for a run of
this solver, not a target.

Its ``upscore`` is 63×63 (stride 32), as FCN-AlexNet's, not FCN-32s's 64×64: GoogLeNet's 7×7/2
first convolution and four 3×3/2 poolings put the coarse cells' centres at a half-pixel
offset (the map from ``data`` to ``score_fr`` is x/32 + (pad − 3)/32 − 15/16), and an even
kernel adds another half (its centre is at 31.5), so with a 64×64 kernel the upsampled map
sits at ``data`` + pad − 1.5 — no integer crop aligns it, for any pad (coordinate mapping
refuses it). The odd kernel centres at 31 and gives the crop offset pad − 2 = 98.
"""
from __future__ import annotations

from reproduce.data.voc import VOC_MEAN_BGR

from .description import SEED, DataLayer, DatasetNets, FCNModel, Head, release_solver

VAL_SPLIT = "seg11valid"  # the 736 VOC2011 segval images that do not intersect SBD train
MEAN_BGR = VOC_MEAN_BGR  # (104.00699, 116.66877, 122.67892), as net.py writes it into param_str
NUM_CLASSES = 21

SOLVER_COMMON = release_solver("train.prototxt", "val.prototxt",
                               test_iter=736, max_iter=100000, snapshot=4000)


def data_layer(m: FCNModel, split: str) -> DataLayer:
    """SBD ``train`` for training, VOC2011 ``seg11valid`` for testing, as the release's net.py."""
    if split == "train":
        layer, params = "SBDDSegDataLayer", {"sbdd_dir": f"{m.data_root}/sbdd/dataset"}
    else:
        layer, params = "VOCSegDataLayer", {"voc_dir": f"{m.data_root}/pascal/VOC2011"}
    params.update(seed=SEED, split="train" if split == "train" else VAL_SPLIT, mean=MEAN_BGR)
    return DataLayer("voc_layers", layer, repr(params))


DATASET = DatasetNets("voc", ("train", "val"), data_layer, SOLVER_COMMON, test_interval=4000)

_HEADS = (Head(NUM_CLASSES),)
MODELS = tuple(FCNModel(dataset="voc", heads=_HEADS, folder=f"voc-{m['name']}", **m) for m in (
    dict(name="fcn32s", solver={"base_lr": 1e-10}, make_target="stage-32s"),
    dict(name="fcn16s", skips=("pool4",), data_root="../../data", solver={"base_lr": 1e-12},
         init="copy_from", base_net=None, previous="fcn32s", make_target="stage-16s"),
    dict(name="fcn8s", skips=("pool4", "pool3"), solver={"base_lr": 1e-14},
         init="copy_from", base_net=None, previous="fcn16s", make_target="stage-8s"),
    dict(name="fcn8s-atonce", skips=("pool4", "pool3"), skip_scales={"pool4": 0.01, "pool3": 0.0001},
         solver={"base_lr": 1e-10, "max_iter": 300000}, make_target="stage-8s-atonce"),
    dict(name="fcn-alexnet", backbone="alexnet", final_kernel=63, normalize_loss=True,
         solver={"base_lr": 1e-4, "momentum": 0.9, "iter_size": 20}, base_net="alexnet",
         make_target="stage-alexnet"),
    dict(name="fcn-googlenet", backbone="googlenet", final_kernel=63, solver={"base_lr": 1e-10},
         base_net="googlenet",
         make_target="stage-googlenet", released=False),
))

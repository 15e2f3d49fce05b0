"""A stage on a user's dataset (``stage … --dataset DIR``): the release's VOC nets with K-class scores.

What changes against the release's stage, and nothing else:

* the data layers read the user's folder (``folder_layers.FolderSegDataLayer``, the reference
  preprocessing and sample order; ``reproduce.data.folder``), ``train`` for training and
  ``val`` for the seg_tests, the default split written to ``<runs>/splits/`` — as its
  description says (``reproduce.data.stage_data.FolderStageData``, what the stage asks);
* the score layers have K outputs (zero-initialised, as the release's), the upsampling
  deconvolutions K channels (bilinear and fixed, as the release's);
* iterations: the release's number of passes over its data (FCN-32s: 100,000 iterations of one
  image over SBD's 8,498 training images ≈ 11.8 passes) over the user's training images,
  unless ``--max-iter``; seg_tests and snapshots as often relative to the run (the release's
  4,000 of 100,000 iterations), unless ``--test-interval``/``--snapshot``;
* ``--init`` may also be a trained FCN of the release (``fcn8s-heavy-pascal.caffemodel``) or of
  another run: its trunk is copied layer by layer and its score layers re-made for K classes
  (``reproduce.weights.surgery.without_class_layers``), each decision logged.

The ImageNet BGR mean of the release stays (it is what the ILSVRC weights were trained with),
as do the learning rates and the unnormalised loss: the loss sums over pixels, so the
per-image step grows with the image's area as on the release's ~500×375 images; for much
larger images lower ``--base-lr`` by the ratio of areas.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable


RELEASE_TRAIN_IMAGES = 8498   # SBD train, what every VOC solver's max_iter is over


class OwnDataError(ValueError):
    """A stage that cannot run on the user's dataset as asked."""


def describe(opts, log: Callable[[str], None] = print):
    """The user's dataset of a stage's options (the default split written to ``<runs>/splits``)."""
    from reproduce.data.folder import describe_folder

    return describe_folder(opts.dataset, num_classes=opts.num_classes, ignore_label=opts.ignore_label,
                           split_dir=Path(opts.runs) / "splits", log=log)


def resolve(opts, log: Callable[[str], None] = print) -> None:
    """Fill the options a stage on the user's data derives from it: K, the iterations, the
    test and snapshot cadence (each printed with where it comes from)."""
    from reproduce.data.folder import split_ids
    from reproduce.models import dataset_of, solver_param

    m = opts.description
    if m.dataset != "voc" or m.fusion or len(m.heads) != 1:
        raise OwnDataError(f"--dataset: {opts.model} is not one of the VOC nets (fcn32s, fcn16s, fcn8s, "
                           f"fcn8s-atonce, fcn-alexnet, fcn-googlenet), which --dataset trains")
    if opts.train_set != "sbd":
        raise OwnDataError("--train-set picks a VOC training set; with --dataset the training set is "
                           "your dataset's train split")
    description = describe(opts, log)
    opts.num_classes = description.num_classes
    n_train = len(split_ids(description, "train"))
    n_val = len(split_ids(description, "val"))
    if n_train < 1 or n_val < 1:
        raise OwnDataError(f"--dataset {opts.dataset}: {n_train} training and {n_val} validation images; "
                           f"each split needs at least one (`python -m reproduce data check --dataset "
                           f"{opts.dataset}`)")
    release = solver_param(opts.model)
    passes = release.max_iter * release.iter_size / RELEASE_TRAIN_IMAGES
    log(f"dataset {description.root}: {description.num_classes} classes ({', '.join(description.classes)}), "
        f"{n_train} train, {n_val} val images, ignore label {description.ignore_label}")
    if opts.max_iter is None:
        opts.max_iter = max(1, round(release.max_iter * n_train / RELEASE_TRAIN_IMAGES))
        log(f"iterations: {opts.max_iter} = the release's {passes:.1f} passes over the data "
            f"({release.max_iter} iterations × {release.iter_size} over SBD's {RELEASE_TRAIN_IMAGES} images) "
            f"over {n_train} images (--max-iter overrides)")
    if opts.test_interval is None:
        release_interval = dataset_of(opts.model).test_interval
        opts.test_interval = max(1, min(opts.max_iter, round(release_interval * n_train / RELEASE_TRAIN_IMAGES)))
        log(f"seg_tests every {opts.test_interval} iterations (the release's every {release_interval} "
            f"scaled alike; --test-interval overrides)")
    if opts.snapshot is None:
        opts.snapshot = opts.test_interval
    opts._own_dataset = description


def dataset_description(opts):
    found = getattr(opts, "_own_dataset", None)
    if found is None:
        resolve(opts, log=lambda line: None)
        found = opts._own_dataset
    return found


def is_fcn(weights) -> bool:
    """Whether init weights are a trained FCN (they have class scores) rather than a classifier."""
    return any(name == "score_fr" or name.startswith("score_fr") for name in weights)

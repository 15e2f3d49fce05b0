"""Every net of the reference release, described once (``reproduce.models.description``).

The PASCAL VOC nets (``fcn32s``, ``fcn16s``, ``fcn8s``, ``fcn8s-atonce``, ``fcn-alexnet``, and
the paper's ``fcn-googlenet``, which the release never published; ``voc``), NYUDv2's four (``nyud``), SIFT Flow's three (``siftflow``) and PASCAL-Context's three
(``pascalcontext``), named by their release folders (``nyud-fcn32s-color``…). From a
description:

* ``net_param(name, split, num_classes, widths)`` / ``solver_param(name)`` — the nets and
  solvers of the reference release as Caffe messages (``reproduce.models.build``);
* ``param_groups(name)`` — every parameter's ``(lr_mult, decay_mult)``;
* ``write_prototxt_ref(out_dir)`` — the ``prototxt_ref/`` files;
* ``googlenet_classifier_net(widths)`` — the GoogLeNet ILSVRC classifier FCN-GoogLeNet starts
  from (``reproduce.models.ilsvrc``);
* ``FCN32s``, ``FCN16s``, ``FCN8s``, ``FCN8sAtOnce``, ``FCNAlexNet``, ``FCNGoogLeNet`` and ``FCN.from_model(name)``
  for any net — PyTorch modules built from the deploy descriptions (imported on first use,
  as they need torch).
"""
from __future__ import annotations

import importlib

from .build import (DATASETS, MODELS, SPLITS, dataset_of, model, net_param, net_spec,
                    solver_param, splits)
from .description import DatasetNets, FCNModel, Head
from .ilsvrc import googlenet_classifier_net
from .param_groups import learnable_blob_count, param_groups, param_specs
from .prototxt_ref import prototxt_ref_texts, write_prototxt_ref
from .widths import WIDTH_PRESETS, width_map

_TORCH_EXPORTS = ("FCN", "FCN32s", "FCN16s", "FCN8s", "FCN8sAtOnce", "FCNAlexNet", "FCNGoogLeNet",
                  "FCN_CLASSES")

__all__ = ["DATASETS", "MODELS", "SPLITS", "WIDTH_PRESETS", "DatasetNets", "FCNModel", "Head",
           "dataset_of", "googlenet_classifier_net", "learnable_blob_count", "model", "net_param", "net_spec", "param_groups",
           "param_specs", "prototxt_ref_texts", "solver_param", "splits", "width_map",
           "write_prototxt_ref", *_TORCH_EXPORTS]


def __getattr__(name: str):
    if name in _TORCH_EXPORTS:
        return getattr(importlib.import_module("reproduce.models.fcn"), name)
    raise AttributeError(f"module 'reproduce.models' has no attribute {name!r}")

"""The FCN family (FCN-32s/16s/8s, FCN-8s at-once, FCN-AlexNet for PASCAL VOC), described once.

* ``net_param(name, split, num_classes, widths)`` / ``solver_param(name)`` — the nets and
  solvers of the reference release as Caffe messages (``reproduce.models.voc``);
* ``param_groups(name)`` — every parameter's ``(lr_mult, decay_mult)``;
* ``write_prototxt_ref(out_dir)`` — the ``prototxt_ref/`` files;
* ``FCN32s``, ``FCN16s``, ``FCN8s``, ``FCN8sAtOnce``, ``FCNAlexNet`` — PyTorch modules built
  from the deploy descriptions (imported on first use, as they need torch).
"""
from __future__ import annotations

import importlib

from .param_groups import learnable_blob_count, param_groups, param_specs
from .prototxt_ref import prototxt_ref_texts, write_prototxt_ref
from .voc import MODELS, SPLITS, FCNModel, model, net_param, net_spec, solver_param
from .widths import WIDTH_PRESETS, width_map

_TORCH_EXPORTS = ("FCN", "FCN32s", "FCN16s", "FCN8s", "FCN8sAtOnce", "FCNAlexNet", "FCN_CLASSES")

__all__ = ["MODELS", "SPLITS", "WIDTH_PRESETS", "FCNModel", "learnable_blob_count", "model",
           "net_param", "net_spec", "param_groups", "param_specs", "prototxt_ref_texts",
           "solver_param", "width_map", "write_prototxt_ref", *_TORCH_EXPORTS]


def __getattr__(name: str):
    if name in _TORCH_EXPORTS:
        return getattr(importlib.import_module("reproduce.models.fcn"), name)
    raise AttributeError(f"module 'reproduce.models' has no attribute {name!r}")

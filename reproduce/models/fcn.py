"""The FCN nets as PyTorch modules: ``FCN32s``, ``FCN16s``, ``FCN8s``, ``FCN8sAtOnce``, ``FCNAlexNet``.

Each is a ``reproduce.net.Net`` built from its deploy description (``net_param(name,
"deploy")``), so it computes what Caffe computes for the released deploy net, and its
``state_dict`` keys are the Caffe layer names (``conv1_1.weight``, ``score_fr.bias``,
``upscore8.weight``…): weights converted from a caffemodel load with ``load_state_dict``
unchanged. ``forward(x)`` takes an N×3×H×W batch (BGR, mean subtracted, as Caffe's data
layers feed it; any H×W) and returns the N×classes×H×W scores.

The module runs in Caffe's TEST phase (dropout is the identity); training goes through the
solver with the ``train`` description.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import torch

from reproduce.net import Net

from .voc import net_param
from .widths import Widths


class FCN(Net):
    """An FCN deploy net as a module; subclasses name the model (``model_name``)."""

    model_name = ""

    def __init__(self, num_classes: int = 21, widths: Widths = "full",
                 weights: str | os.PathLike | Mapping[str, Sequence[Any]] | None = None):
        if not self.model_name:
            raise TypeError("FCN is abstract: use FCN32s, FCN16s, FCN8s, FCN8sAtOnce or FCNAlexNet")
        super().__init__(net_param(self.model_name, "deploy", num_classes=num_classes,
                                   widths=widths), weights=weights, phase="test")
        self.num_classes = num_classes
        self.keep_blobs = False  # a module returns scores; Net's pycaffe-style blobs stay opt-in

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Class scores (N×classes×H×W) of the image batch ``x`` (N×3×H×W)."""
        return super().forward(data=x)["score"]


class FCN32s(FCN):
    """FCN-32s: VGG16, scores upsampled 32× in one step."""

    model_name = "fcn32s"


class FCN16s(FCN):
    """FCN-16s: FCN-32s with the pool4 skip."""

    model_name = "fcn16s"


class FCN8s(FCN):
    """FCN-8s: FCN-16s with the pool3 skip."""

    model_name = "fcn8s"


class FCN8sAtOnce(FCN):
    """FCN-8s trained at once: skips scaled by fixed 0.01 (pool4) and 0.0001 (pool3)."""

    model_name = "fcn8s-atonce"


class FCNAlexNet(FCN):
    """FCN-AlexNet: AlexNet, scores upsampled 32× by a 63×63 deconvolution."""

    model_name = "fcn-alexnet"


FCN_CLASSES = {cls.model_name: cls for cls in (FCN32s, FCN16s, FCN8s, FCN8sAtOnce, FCNAlexNet)}

"""The ILSVRC classifiers the FCNs start from, as nets of their own (the ImageNet side of the surgery).

``googlenet_classifier_net`` is the GoogLeNet classifier of Caffe's model zoo
(``models/bvlc_googlenet``, whose ``bvlc_googlenet.caffemodel`` FCN-GoogLeNet transplants):
the same layers, names, kernels, strides, pads, ``param`` multipliers and fillers as its
``train_val.prototxt`` — the auxiliary classifiers ``loss1``/``loss2`` included, as the
caffemodel holds their weights — on an ``Input`` ``data`` (N×3×224×224 by default), with the
deploy net's ``prob`` Softmax after ``loss3/classifier`` and no losses. At ``widths="tiny"`` it
is a GoogLeNet-shaped classifier small enough to generate in tests and to transplant from.
"""
from __future__ import annotations

from typing import Sequence

from reproduce.caffe.schema import Message
from reproduce.net.spec import NetSpec, layers as L

from .backbones import googlenet_classifier
from .widths import Widths, width_map

CLASSIFIER_INPUT = (1, 3, 224, 224)


def googlenet_classifier_net(widths: Widths = "full", num_classes: int = 1000,
                             input_shape: Sequence[int] = CLASSIFIER_INPUT,
                             name: str = "GoogleNet") -> Message:
    """The model zoo's GoogLeNet ILSVRC classifier as a NetParameter (see the module docstring)."""
    if not (isinstance(num_classes, int) and not isinstance(num_classes, bool) and num_classes > 0):
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    shape = [int(d) for d in input_shape]
    if len(shape) != 4 or shape[1] != 3 or min(shape) <= 0:
        raise ValueError(f"input_shape must be N×3×H×W with positive sizes, got {tuple(input_shape)}")
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=shape))
    scores = googlenet_classifier(n, n.data, width_map(widths), num_classes)
    n.prob = L.Softmax(scores)
    return n.to_proto(name=name)

"""The FCN nets as PyTorch modules: ``FCN32s``, ``FCN16s``, ``FCN8s``, ``FCN8sAtOnce``, ``FCNAlexNet``,
``FCNGoogLeNet``.

Each is a ``reproduce.net.Net`` built from its deploy description (``net_param(name,
"deploy")``), so it computes what Caffe computes for the released deploy net, and its
``state_dict`` keys are the Caffe layer names (``conv1_1.weight``, ``score_fr.bias``,
``upscore8.weight``…): weights converted from a caffemodel load with ``load_state_dict``
unchanged. ``forward(x)`` takes an N×3×H×W batch (BGR, mean subtracted, as Caffe's data
layers feed it; any H×W) and returns the N×classes×H×W scores.

Every other net of the release is ``FCN.from_model(name)`` (``"nyud-fcn32s-color-hha"``,
``"siftflow-fcn8s"``…): a net with several inputs takes them by name (``forward(color=…,
hha=…)``), one with several heads returns ``{"score_sem": …, "score_geo": …}``.

As constructed, a module is what the release's ``solve.py`` leaves before training: every
``up`` deconvolution bilinear (the final one fixed, ``lr_mult: 0``), the score layers zero, and
the trunk either ``backbone=`` transplanted as ``python -m reproduce stage`` does it (the ILSVRC
classifier ``VGG_ILSVRC_16_layers.caffemodel``, or a release FCN whose score layers are re-made
when ``num_classes`` differs; ``module.surgery_log`` lists every decision) or, with neither
``backbone`` nor ``weights``, drawn from Caffe's msra filler (``generator=`` seeds it) — so it
trains in a plain PyTorch loop as constructed (``reproduce.models.initial``). ``weights=`` loads
trained weights of this very net; the widths and class count are read off them when not given.

The module runs in Caffe's TEST phase (dropout is the identity); it trains in a plain PyTorch
loop (the README's example: ``lr_mult: 0`` layers have ``requires_grad=False``), and Caffe's
way through the solver with the ``train`` description.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import torch

from reproduce.net import Net

from .build import model, net_param
from .widths import Widths


class FCN(Net):
    """An FCN deploy net as a module; subclasses name the model (``model_name``), and
    ``FCN.from_model(name)`` builds any net of ``reproduce.models.MODELS``."""

    model_name = ""

    def __init__(self, num_classes: int | Mapping[str, int] | None = None, widths: Widths | None = None,
                 weights: str | os.PathLike | Mapping[str, Sequence[Any]] | None = None, *,
                 backbone: str | os.PathLike | Mapping[str, Sequence[Any]] | None = None,
                 generator: torch.Generator | None = None):
        """``num_classes``: the class count (a ``{score blob: count}`` mapping for several
        heads); ``None`` reads it off ``weights``/``backbone`` where they score classes, else
        the release's. ``widths``: ``"full"``, ``"tiny"`` or a ``{full: width}`` table; ``None``
        reads the preset off the weights' first convolution, else ``"full"``. ``weights``:
        trained weights of this net (a caffemodel, ``.pth`` or ``{layer: [arrays]}``), copied by
        layer name. ``backbone``: weights to start training from, transplanted by the stage's
        surgery (see the module docstring). ``generator`` seeds the msra trunk of a module
        built from neither."""
        if not self.model_name:
            raise TypeError("FCN is abstract: use FCN32s, FCN16s, FCN8s, FCN8sAtOnce, FCNAlexNet or "
                            "FCNGoogLeNet, "
                            "or FCN.from_model(name) for any net of the release")
        if weights is not None and backbone is not None:
            raise ValueError("give weights= (this net's trained weights) or backbone= (weights to "
                             "start training from), not both")
        from reproduce.weights.pretrained import detect_num_classes, detect_widths

        from . import initial

        description = model(self.model_name)
        given = weights if weights is not None else backbone
        source, source_name = initial.read_weights(given) if given is not None else (None, "")
        if widths is None:  # read off the weights: the demo's width-reduced nets load as they are
            widths = detect_widths(self.model_name, source, source_name) if source is not None else "full"
        if num_classes is None and source is not None:
            num_classes = detect_num_classes(source, net_name=self.model_name)
        if num_classes is None:
            num_classes = description.num_classes if len(description.heads) == 1 else None
        super().__init__(net_param(self.model_name, "deploy", num_classes=num_classes,
                                   widths=widths), phase="test")
        self.description = description
        self.num_classes = num_classes if num_classes is not None else description.num_classes
        self.keep_blobs = False  # a module returns scores; Net's pycaffe-style blobs stay opt-in
        # as the release's solve.py leaves a net: bilinear upsampling, zero scores, a trunk
        self.surgery_log: list[str] = []
        if backbone is not None:
            if description.fusion:
                raise ValueError(f"{self.model_name} fuses several inputs: start it with "
                                 "`python -m reproduce stage`, whose surgery fills each stream")
            self.surgery_log = initial.transplant_backbone(self, source, source_name)
        else:
            initial.bilinear_upsampling(self)
            if weights is None:
                initial.random_trunk(self, generator)
            else:
                self.copy_from(source, name=source_name)

    @classmethod
    def from_model(cls, name: str, num_classes: int | Mapping[str, int] | None = None,
                   widths: Widths | None = None,
                   weights: str | os.PathLike | Mapping[str, Sequence[Any]] | None = None,
                   **kwargs) -> "FCN":
        """The deploy net of the release's net ``name`` as a module (release class counts
        unless ``num_classes`` or the weights say otherwise; ``backbone=``, ``generator=`` as
        for the constructor)."""
        description = model(name)
        known = FCN_CLASSES.get(description.name)
        if known is not None:
            return known(num_classes, widths, weights, **kwargs)
        subclass = type(f"FCN[{description.name}]", (cls,), {"model_name": description.name})
        return subclass(num_classes, widths, weights, **kwargs)

    def forward(self, x: torch.Tensor | None = None, **inputs: torch.Tensor):  # type: ignore[override]
        """Class scores (N×classes×H×W) of the image batch ``x`` (N×3×H×W); for a net with
        several inputs, the inputs by name; for several heads, ``{score blob: scores}``."""
        if x is not None:
            inputs = {"data": x, **inputs}
        outputs = super().forward(**inputs)
        heads = self.description.outputs
        return outputs[heads[0]] if len(heads) == 1 else {name: outputs[name] for name in heads}


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


class FCNGoogLeNet(FCN):
    """FCN-GoogLeNet (CVPR 2015 Table 1; never released): GoogLeNet without its auxiliary
    classifiers and final average pooling, scores upsampled 32× by a 63×63 deconvolution."""

    model_name = "fcn-googlenet"


FCN_CLASSES = {cls.model_name: cls for cls in (FCN32s, FCN16s, FCN8s, FCN8sAtOnce, FCNAlexNet, FCNGoogLeNet)}

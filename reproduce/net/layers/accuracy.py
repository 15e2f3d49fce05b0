"""Accuracy (Caffe's ``AccuracyLayer``): top-k classification accuracy, no gradient.

A position counts as correct when fewer than ``top_k`` classes score ``>=`` the true class's
score *other than the true class itself* — ties count against it, as in Caffe. Positions
labelled ``ignore_label`` are skipped; the result is ``correct / counted`` (0 when nothing was
counted). An optional second top holds the per-class accuracy (0 for absent classes).
"""
from __future__ import annotations

import torch

from .base import CaffeLayer, count
from .registry import register


@register("Accuracy")
class Accuracy(CaffeLayer):
    """Caffe's Accuracy layer (see the module docstring)."""

    bottoms = (2, 2)
    tops = (1, 2)

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        p = layer_param.accuracy_param
        self.top_k = int(p.top_k)
        self.axis = self.canonical_axis(p.axis, len(bottom_shapes[0]))
        self.ignore_label = int(p.ignore_label) if p.has("ignore_label") else None
        self.top_shapes(bottom_shapes)

    def top_shapes(self, bottom_shapes):
        scores, labels = (tuple(s) for s in bottom_shapes)
        if self.top_k > count(scores) // count(labels):
            raise self.error("top_k must be less than or equal to the number of classes")
        if count(scores, 0, self.axis) * count(scores, self.axis + 1) != count(labels):
            raise self.error(f"number of labels {labels} must match number of predictions "
                             f"{scores} outside axis {self.axis}")
        return [()] + [(scores[self.axis],)] * (len(self.layer_param.top) - 1)

    @torch.no_grad()
    def forward(self, scores, labels):
        classes = scores.shape[self.axis]
        outer, inner = count(scores.shape, 0, self.axis), count(scores.shape, self.axis + 1)
        data = scores.reshape(outer, classes, inner)
        label = labels.reshape(outer, inner).to(torch.int64)
        valid = (label != self.ignore_label) if self.ignore_label is not None else \
            torch.ones_like(label, dtype=torch.bool)
        if bool((valid & ((label < 0) | (label >= classes))).any()):
            raise self.error(f"label values must lie in [0, {classes})")
        index = torch.where(valid, label, torch.zeros_like(label)).unsqueeze(1)
        true_score = data.gather(1, index)
        better = (data >= true_score).sum(dim=1) - 1
        correct = (better < self.top_k) & valid
        counted = int(valid.sum())
        accuracy = correct.sum().to(scores.dtype) / counted if counted else scores.new_zeros(())
        tops = [accuracy.reshape(())]
        if len(self.layer_param.top) == 2:
            per_class_total = torch.bincount(label[valid], minlength=classes).to(scores.dtype)
            per_class_correct = torch.bincount(label[correct], minlength=classes).to(scores.dtype)
            tops.append(torch.where(per_class_total > 0,
                                    per_class_correct / per_class_total.clamp_min(1),
                                    torch.zeros_like(per_class_total)))
        return tuple(tops)

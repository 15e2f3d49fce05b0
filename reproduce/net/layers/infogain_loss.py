"""InfogainLoss (Caffe's ``InfogainLossLayer``, as of 9b89154: softmax inside).

Bottom 0 holds raw scores; the layer takes their softmax along ``infogain_loss_param.axis``
(default 1) and, with the infogain matrix ``H`` (``K × K``; bottom 2, or the binaryproto
``infogain_loss_param.source``), computes ``−Σ_l H[label, l]·log(max(p_l, 1e-20))`` per label
position, skipping ``ignore_label``, divided by the normalizer of ``loss_param.normalization``
(default VALID; the legacy ``normalize`` field is refused, as Caffe does). Backward is Caffe's
``(p_l·Σ_m H[label, m] − H[label, l])·top_diff / normalizer`` (zero at ignored positions; the
labels and ``H`` get no gradient). An optional second top is the softmax.
"""
from __future__ import annotations

from pathlib import Path

import torch

from reproduce.caffe.weights import blob_array
from reproduce.caffe.wire import decode

from .base import CaffeLayer, count
from .registry import register
from .softmax_loss import normalizer, sequential_float_sum

LOG_THRESHOLD = 1e-20


class _Infogain(torch.autograd.Function):
    @staticmethod
    def forward(ctx, scores, labels, H, axis, ignore_label, mode):
        classes = scores.shape[axis]
        outer, inner = count(scores.shape, 0, axis), count(scores.shape, axis + 1)
        prob = torch.softmax(scores, dim=axis)
        label = labels.detach().reshape(outer, inner).to(torch.int64)
        valid = (label != ignore_label) if ignore_label is not None \
            else torch.ones_like(label, dtype=torch.bool)
        bad = valid & ((label < 0) | (label >= classes))
        if bool(bad.any()):
            raise ValueError(f"label {int(label[bad][0])} out of range [0, {classes})")
        H = H.detach().reshape(classes, classes).to(scores.dtype)
        rows = H[torch.where(valid, label, torch.zeros_like(label))]        # outer, inner, K
        logp = torch.log(prob.reshape(outer, classes, inner).clamp_min(LOG_THRESHOLD))
        terms = -(rows * logp.transpose(1, 2)).sum(dim=2)                  # outer, inner
        norm = normalizer(mode, outer, inner, int(valid.sum()))
        loss = float(sequential_float_sum(terms[valid])) / norm
        ctx.save_for_backward(prob, rows, valid)
        ctx.norm, ctx.shape = norm, (outer, classes, inner)
        ctx.mark_non_differentiable(prob)
        return torch.tensor(loss, dtype=scores.dtype, device=scores.device), prob

    @staticmethod
    def backward(ctx, grad, grad_prob):
        prob, rows, valid = ctx.saved_tensors
        outer, classes, inner = ctx.shape
        p = prob.reshape(outer, classes, inner)
        diff = p * rows.sum(dim=2).unsqueeze(1) - rows.transpose(1, 2)
        diff = diff * valid.unsqueeze(1).to(diff.dtype)
        scale = (grad.to(torch.float32) / ctx.norm).to(diff.dtype)
        return (diff * scale).reshape(prob.shape), None, None, None, None, None


@register("InfogainLoss")
class InfogainLoss(CaffeLayer):
    """Caffe's InfogainLoss layer (see the module docstring)."""

    bottoms = (2, 3)
    tops = (0, 2)

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        p, lp = layer_param.infogain_loss_param, layer_param.loss_param
        if lp.has("normalize"):
            raise self.error('normalize is deprecated here; use "normalization"')
        self.mode = lp.normalization
        self.ignore_label = int(lp.ignore_label) if lp.has("ignore_label") else None
        self.axis = self.canonical_axis(int(p.axis), len(bottom_shapes[0]))
        # H from the source file: a buffer outside the state dict (the file is its home)
        self.register_buffer("infogain", None, persistent=False)
        if len(bottom_shapes) < 3:
            if not p.source:
                raise self.error("infogain matrix source must be specified "
                                 "(infogain_loss_param.source, or a third bottom)")
            path = Path(p.source)
            try:
                blob = decode(path.read_bytes(), "BlobProto")
            except OSError as err:
                raise self.error(f"cannot read infogain matrix {p.source}: {err}") from None
            except ValueError as err:
                raise self.error(f"infogain matrix {p.source} is not a BlobProto: {err}") from None
            self.infogain = torch.from_numpy(
                blob_array(blob, self.layer_name, self.layer_type, 0, path).copy())
        self.top_shapes(bottom_shapes)

    def top_shapes(self, bottom_shapes):
        scores = tuple(bottom_shapes[0])
        if scores[:1] != tuple(bottom_shapes[1])[:1]:
            raise self.error(f"scores {scores} and labels {tuple(bottom_shapes[1])} must have "
                             f"the same num")
        if count(scores, 0, self.axis) * count(scores, self.axis + 1) != count(bottom_shapes[1]):
            raise self.error(f"number of labels must match number of predictions {scores} "
                             f"outside axis {self.axis}")
        k = scores[self.axis]
        h = count(bottom_shapes[2]) if len(bottom_shapes) > 2 else self.infogain.numel()
        if h != k * k:
            raise self.error(f"the infogain matrix holds {h} values; {k} classes need {k * k}")
        return [()] + [scores] * (len(self.layer_param.top) - 1)

    def forward(self, scores, labels, *H):
        matrix = H[0] if H else self.infogain.to(scores.device)
        try:
            loss, prob = _Infogain.apply(scores, labels, matrix, self.axis, self.ignore_label,
                                         self.mode)
        except ValueError as err:
            raise self.error(str(err)) from None
        return (loss, prob) if len(self.layer_param.top) == 2 else (loss,)

"""SoftmaxWithLoss (Caffe's ``SoftmaxWithLossLayer``): multinomial logistic loss of a softmax.

Forward and backward are Caffe's, written out as one ``torch.autograd.Function``:

* ``prob = softmax(scores)`` along ``softmax_param.axis``; each label (truncated to int, as
  Caffe's ``static_cast<int>``) picks its class; pixels whose label equals ``ignore_label``
  (when set) are skipped;
* ``loss = Σ -log(max(prob, FLT_MIN)) / normalizer`` — the ``FLT_MIN`` guard caps a pixel whose
  probability underflowed to 0 at ``-log(FLT_MIN) ≈ 87.34`` (far from ``log_softmax``); the
  sum is accumulated in float32 in Caffe's order (outer, then inner positions), as Caffe does;
* ``normalizer = max(1, n)`` with ``n`` from ``loss_param.normalization``: FULL = all label
  positions, VALID = the non-ignored ones, BATCH_SIZE = the outer count, NONE = 1. The legacy
  ``normalize`` field counts only when ``normalization`` is unset: true → VALID, false →
  BATCH_SIZE (``loss_layer.cpp``/``softmax_loss_layer.cpp``). The default is VALID;
* backward: ``(prob - onehot(label)) · top_diff / normalizer``, zero at ignored positions; the
  top diff is the loss weight. The optional second top (``prob``) gets no gradient, as in Caffe.

Labels out of ``[0, classes)`` (and not ignored) raise, where Caffe would read out of bounds.

Two options beyond Caffe's schema, for the paper's ablations (CVPR 2015 Sec. 3.4, 4.3), set on
the layer with ``set_options`` (``reproduce.training.ablations``) and off by default — off, the
layer is Caffe's bit for bit and draws nothing from any generator:

* ``sampling = p``: *loss sampling*, "restricting the loss to a randomly sampled subset of its
  spatial terms" (Sec. 3.4), "making an independent choice to ignore each final layer cell
  with some probability 1−p" (Sec. 4.3): each spatial term of this loss — every label
  position, the loss being computed on the upsampled score — is kept with probability ``p``,
  drawn per forward from the layer's generator (the solver's, so a resumed run draws the same
  masks); a dropped term is treated as an ignored one (no loss, no gradient, not counted by
  the VALID normalizer);
* ``class_weights = w``: class balancing by loss weighting (Sec. 4.3): each kept term
  ``-log p_y`` and its gradient are multiplied by ``w[y]``; the normalizer is unchanged
  (Caffe's count, not a sum of weights).
"""
from __future__ import annotations

import numpy as np
import torch

from .base import CaffeLayer, count
from .registry import register

FLT_MIN = float(np.finfo(np.float32).tiny)


def normalization_mode(loss_param) -> str:
    """Caffe's normalization mode: ``normalization`` unless only legacy ``normalize`` is set."""
    if not loss_param.has("normalization") and loss_param.has("normalize"):
        return "VALID" if loss_param.normalize else "BATCH_SIZE"
    return loss_param.normalization


def normalizer(mode: str, outer: int, inner: int, valid: int) -> float:
    """Caffe's ``get_normalizer``: the divisor of the summed loss, never below 1."""
    value = {"FULL": outer * inner, "VALID": valid, "BATCH_SIZE": outer, "NONE": 1}[mode]
    return float(max(1.0, np.float32(value)))


def sequential_float_sum(terms: torch.Tensor) -> np.float32:
    """The sum Caffe's loop ``Dtype loss; loss -= log(…)`` reaches: float32, one term at a time.

    Sequential float32 accumulation drifts from the exact sum (by ~1e-4 relative for an FCN
    image with an unnormalised loss, where the capped 87.34 terms round alike every time);
    ``np.cumsum`` accumulates float32 sequentially, so its last element is Caffe's value.
    """
    values = terms.detach().cpu().numpy().astype(np.float32)
    return np.cumsum(values, dtype=np.float32)[-1] if values.size else np.float32(0)


class SoftmaxLossFunction(torch.autograd.Function):
    """Caffe's SoftmaxWithLoss forward and backward (see the module docstring).

    ``apply(scores, labels, axis, ignore_label or None, mode, keep or None, weights or None)``
    → ``(loss, prob)``; ``keep`` (bool, one per label position) drops the terms it is False
    at, ``weights`` (one per class) scales each term by its label's weight.
    """

    @staticmethod
    def forward(ctx, scores, labels, axis, ignore_label, mode, keep=None, weights=None):
        classes = scores.shape[axis]
        outer, inner = count(scores.shape, 0, axis), count(scores.shape, axis + 1)
        if labels.numel() != outer * inner:
            raise ValueError(f"number of labels ({labels.numel()}) must match number of "
                             f"predictions ({outer}x{inner}); e.g. for (N, C, H, W) scores "
                             f"the labels must be N*H*W")
        prob = torch.softmax(scores, dim=axis)
        label = labels.detach().reshape(outer, inner).to(torch.int64)
        valid = (label != ignore_label) if ignore_label is not None else torch.ones_like(
            label, dtype=torch.bool)
        bad = valid & ((label < 0) | (label >= classes))
        if bool(bad.any()):
            value = float(labels.detach().reshape(outer, inner)[bad][0])
            raise ValueError(f"label value {value:g} out of range [0, {classes}) "
                             f"(and not the ignore_label {ignore_label})")
        if keep is not None:
            valid = valid & keep.reshape(outer, inner)
        index = torch.where(valid, label, torch.zeros_like(label)).unsqueeze(1)
        picked = prob.reshape(outer, classes, inner).gather(1, index).squeeze(1)
        terms = -torch.log(picked[valid].double().clamp_min(FLT_MIN))
        scale = None
        if weights is not None:
            if weights.numel() != classes:
                raise ValueError(f"{weights.numel()} class weights for {classes} classes")
            scale = weights.to(scores.device, scores.dtype)[index.squeeze(1)]   # outer × inner
            terms = terms * scale[valid].double()
        norm = normalizer(mode, outer, inner, terms.numel())
        loss = torch.tensor(sequential_float_sum(terms) / np.float32(norm), dtype=scores.dtype,
                            device=scores.device)
        ctx.save_for_backward(prob, index, valid, *(() if scale is None else (scale,)))
        ctx.axis, ctx.norm = axis, norm
        ctx.mark_non_differentiable(prob)
        return loss, prob

    @staticmethod
    def backward(ctx, grad_loss, grad_prob):
        prob, index, valid, *weighted = ctx.saved_tensors
        outer, inner = valid.shape
        diff = prob.reshape(outer, -1, inner).clone()
        keep = valid.unsqueeze(1).to(diff.dtype)
        diff.scatter_add_(1, index, -keep)
        diff *= keep
        if weighted:   # class balancing: each position's gradient times its label's weight
            diff *= weighted[0].unsqueeze(1)
        # Caffe: loss_weight = top_diff / normalizer, in the blob's float type
        scale = (grad_loss.to(torch.float32) / np.float32(ctx.norm)).to(diff.dtype)
        return (diff * scale).reshape(prob.shape), None, None, None, None, None, None


@register("SoftmaxWithLoss")
class SoftmaxWithLoss(CaffeLayer):
    """Caffe's SoftmaxWithLoss layer (see the module docstring)."""

    bottoms = (2, 2)
    tops = (0, 2)

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        p = layer_param.loss_param
        self.axis = self.canonical_axis(layer_param.softmax_param.axis, len(bottom_shapes[0]))
        self.ignore_label = int(p.ignore_label) if p.has("ignore_label") else None
        self.mode = normalization_mode(p)
        self.sampling: float | None = None
        self.class_weights: torch.Tensor | None = None
        self.top_shapes(bottom_shapes)

    def set_options(self, sampling: float | None = None, class_weights=None) -> None:
        """The ablation options of the module docstring: ``sampling`` in (0, 1] (1 or None:
        every term, Caffe's layer), ``class_weights`` one non-negative weight per class (or
        None). Kept as buffers of the layer, not as Caffe parameters: no solver touches them."""
        if sampling is not None and not 0.0 < float(sampling) <= 1.0:
            raise self.error(f"loss sampling probability must be in (0, 1], got {sampling}")
        self.sampling = None if sampling is None or float(sampling) == 1.0 else float(sampling)
        if class_weights is None:
            self.class_weights = None
            return
        weights = torch.as_tensor(class_weights, dtype=torch.float32).flatten()
        if not bool(torch.isfinite(weights).all()) or bool((weights < 0).any()):
            raise self.error(f"class weights must be finite and non-negative, got {weights.tolist()}")
        device = self.generator.device if self.generator is not None else "cpu"
        self.class_weights = weights.to(device)

    def top_shapes(self, bottom_shapes):
        scores, labels = (tuple(s) for s in bottom_shapes)
        if count(scores, 0, self.axis) * count(scores, self.axis + 1) != count(labels):
            raise self.error(f"number of labels {labels} must match number of predictions "
                             f"{scores} outside axis {self.axis}")
        return [()] + [scores] * (len(self.layer_param.top) - 1)

    def forward(self, scores, labels):
        try:
            keep = None
            if self.sampling is not None:   # one draw per label position, on the scores' device
                outer, inner = count(scores.shape, 0, self.axis), count(scores.shape, self.axis + 1)
                keep = torch.rand((outer, inner), generator=self.generator,
                                  device=scores.device) < self.sampling
            loss, prob = SoftmaxLossFunction.apply(scores, labels, self.axis, self.ignore_label,
                                                   self.mode, keep, self.class_weights)
        except ValueError as err:  # labels that do not fit the scores
            raise self.error(str(err)) from None
        return (loss, prob) if len(self.layer_param.top) == 2 else (loss,)

    def extra_repr(self):
        extra = "" if self.sampling is None else f", sampling={self.sampling}"
        if self.class_weights is not None:
            extra += ", class_weights=…"
        return (f"{super().extra_repr()}, ignore_label={self.ignore_label}, "
                f"normalization={self.mode}{extra}")

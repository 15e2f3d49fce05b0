"""Caffe's adaptive update rules: AdaGrad, RMSProp, AdaDelta, Adam (src/caffe/solvers/*.cpp).

Each transcribes the CPU branch of its ``ComputeUpdateValue`` step by step in float32
(``caffe_powx(x, 2)`` → ``x²``, ``caffe_powx(x, 0.5)`` → ``√x``, ``axpby`` → scale then
add). Weight decay, ``iter_size`` normalization and clipping happen before, in
``reproduce.solver.sgd``, exactly as for SGD. AdaDelta and Adam keep two history blobs per
parameter, stored as Caffe stores them: all first blobs, then all second blobs.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .errors import SolverConfigError
from .sgd import SGDRule, axpby

f32 = np.float32


class AdaGradRule(SGDRule):
    """``type: "AdaGrad"``: history += diff²; diff = local_rate · diff / (√history + delta)."""

    type_name = "AdaGrad"

    def check(self):
        if self.momentum != 0:
            raise SolverConfigError("Momentum cannot be used with AdaGrad (set momentum: 0)")

    def compute_update_value(self, index, diff, local_rate, iteration):
        history = self.history[index]
        history.add_(diff * diff)
        update = torch.sqrt(history).add_(float(self.delta))
        torch.div(diff, update, out=update)
        diff.copy_(update.mul_(float(local_rate)))


class RMSPropRule(SGDRule):
    """``type: "RMSProp"``: history = rms_decay·history + (1−rms_decay)·diff²; then as AdaGrad."""

    type_name = "RMSProp"

    def check(self):
        if self.momentum != 0:
            raise SolverConfigError("Momentum cannot be used with RMSProp (set momentum: 0)")
        rms_decay = f32(self.param.rms_decay)
        if not 0 <= rms_decay < 1:
            raise SolverConfigError(f"rms_decay should lie in [0, 1), got {rms_decay}")

    def compute_update_value(self, index, diff, local_rate, iteration):
        rms_decay = f32(self.param.rms_decay)
        history = self.history[index]
        axpby(f32(1) - rms_decay, diff * diff, rms_decay, history)
        update = torch.sqrt(history).add_(float(self.delta))
        torch.div(diff, update, out=update)
        diff.copy_(update.mul_(float(local_rate)))


class AdaDeltaRule(SGDRule):
    """``type: "AdaDelta"``: gradient and update histories, ``momentum`` as their decay."""

    type_name = "AdaDelta"
    history_sets = 2

    def compute_update_value(self, index, diff, local_rate, iteration):
        momentum, delta = self.momentum, self.delta
        gradient_history = self.history[index]
        update_history = self.history[self.num_params + index]
        axpby(f32(1) - momentum, diff * diff, momentum, gradient_history)
        update = update_history + float(delta)
        update.div_(gradient_history + float(delta))
        update.sqrt_()
        diff.mul_(update)
        axpby(f32(1) - momentum, diff * diff, momentum, update_history)
        diff.mul_(float(local_rate))


class AdamRule(SGDRule):
    """``type: "Adam"``: ``momentum`` is β₁, ``momentum2`` β₂, ``delta`` ε̂; bias-corrected step."""

    type_name = "Adam"
    history_sets = 2

    def compute_update_value(self, index, diff, local_rate, iteration):
        beta1, beta2 = self.momentum, f32(self.param.momentum2)
        m = self.history[index]
        v = self.history[self.num_params + index]
        t = iteration + 1
        # pow(float, int) is double, and so is the whole quotient until it lands in a float
        correction = f32(math.sqrt(1.0 - math.pow(float(beta2), t)) / (1.0 - math.pow(float(beta1), t)))
        axpby(f32(1) - beta1, diff, beta1, m)
        axpby(f32(1) - beta2, diff * diff, beta2, v)
        update = torch.sqrt(v).add_(float(self.delta))
        torch.div(m, update, out=update)
        diff.copy_(update.mul_(float(f32(local_rate * correction))))

"""Caffe's ``SGDSolver`` update (sgd_solver.cpp) and ``NesterovSolver`` (nesterov_solver.cpp).

Per iteration Caffe's ``ApplyUpdate`` runs, over the net's learnable parameters:

1. ``ClipGradients`` — if ``clip_gradients >= 0`` and the global L2 norm of all diffs exceeds
   it, every diff is scaled by ``clip_gradients / norm``;
2. per parameter ``Normalize`` (``diff *= 1/iter_size`` when ``iter_size > 1``),
   ``Regularize`` (``diff += local_decay · data`` for L2, ``· sign(data)`` for L1, with
   ``local_decay = weight_decay · decay_mult``, skipped when it is 0) and
   ``ComputeUpdateValue`` (the rule; for SGD ``history = momentum · history + local_rate ·
   diff; diff = history`` with ``local_rate = rate · lr_mult``);
3. ``Net::Update``: ``data -= diff``.

All of it in float32 with the BLAS call sequence Caffe's CPU path makes (``axpby`` is
``scal`` then ``axpy``, see mkl_alternate.hpp). Parameters with ``lr_mult`` 0 go through the
same steps with ``local_rate`` 0, so their history only decays and their data stay put.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from reproduce.caffe.schema import Message

from .errors import SolverConfigError

f32 = np.float32


# --------------------------------------------------------------- steps shared by every rule


def clip_gradients(diffs: Sequence[torch.Tensor], clip: float) -> float | None:
    """Caffe's ``ClipGradients``: scale all ``diffs`` in place when their L2 norm exceeds ``clip``.

    Returns the scale factor applied, or None. Note that Caffe clips the *accumulated* diffs,
    before ``Normalize`` divides them by ``iter_size``.
    """
    clip = f32(clip)
    if clip < 0:
        return None
    sumsq = f32(0)
    for diff in diffs:
        sumsq = f32(sumsq + f32(torch.dot(diff.reshape(-1), diff.reshape(-1)).item()))
    l2norm = f32(math.sqrt(float(sumsq)))
    if not l2norm > clip:
        return None
    scale = f32(clip / l2norm)
    for diff in diffs:
        diff.mul_(float(scale))
    return float(scale)


def normalize(diff: torch.Tensor, iter_size: int) -> None:
    """Caffe's ``Normalize``: counter the accumulation over ``iter_size`` forward/backward passes."""
    if iter_size == 1:
        return
    diff.mul_(float(f32(1) / f32(iter_size)))


def regularize(data: torch.Tensor, diff: torch.Tensor, local_decay: np.float32, kind: str) -> None:
    """Caffe's ``Regularize``: add the weight-decay gradient to ``diff`` (nothing if decay is 0)."""
    if not local_decay:
        return
    if kind == "L2":
        diff.add_(data, alpha=float(local_decay))
    elif kind == "L1":
        diff.add_(torch.sign(data), alpha=float(local_decay))
    else:
        raise SolverConfigError(f"unknown regularization_type {kind!r} (Caffe knows L2 and L1)")


def axpby(alpha: np.float32, x: torch.Tensor, beta: np.float32, y: torch.Tensor) -> None:
    """``y = alpha·x + beta·y`` as Caffe's non-MKL ``cblas_saxpby``: ``scal(beta, y)`` then ``axpy``."""
    y.mul_(float(beta)).add_(x, alpha=float(alpha))


# --------------------------------------------------------------------------- update rules


class SGDRule:
    """Momentum SGD (``type: "SGD"``): the rule behind Caffe's ``SGDSolver::ComputeUpdateValue``.

    ``history`` holds one float32 tensor per learnable parameter (two for rules whose
    ``history_sets`` is 2), in Caffe's ``history_`` order, which is what a solverstate stores.
    """

    type_name = "SGD"
    history_sets = 1

    def __init__(self, param: Message, shapes: Sequence[Sequence[int]], device="cpu"):
        self.param = param
        self.momentum = f32(param.momentum)
        self.delta = f32(param.delta)
        self.history = [torch.zeros(tuple(shape), dtype=torch.float32, device=device)
                        for _ in range(self.history_sets) for shape in shapes]
        self.num_params = len(shapes)
        self.check()

    def check(self) -> None:
        """Caffe's ``constructor_sanity_check``, where the rule has one."""

    def compute_update_value(self, index: int, diff: torch.Tensor, local_rate: np.float32,
                             iteration: int) -> None:
        """Turn parameter ``index``'s regularized ``diff`` into the value ``Net::Update`` subtracts."""
        history = self.history[index]
        axpby(local_rate, diff, self.momentum, history)
        diff.copy_(history)

    # -- state -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"type": self.type_name, "history": [h.detach().cpu().clone() for h in self.history]}

    def load_state_dict(self, state: dict) -> None:
        if state.get("type") != self.type_name:
            raise SolverConfigError(f"the solver state is for a {state.get('type')} solver, "
                                    f"this solver is {self.type_name}")
        history = state["history"]
        if len(history) != len(self.history):
            raise SolverConfigError(f"the solver state holds {len(history)} history blobs, this "
                                    f"net needs {len(self.history)}")
        for i, (mine, theirs) in enumerate(zip(self.history, history)):
            if tuple(mine.shape) != tuple(theirs.shape):
                raise SolverConfigError(f"history blob {i} has shape {tuple(theirs.shape)} in the "
                                        f"solver state, the net needs {tuple(mine.shape)}")
            mine.copy_(theirs)


class NesterovRule(SGDRule):
    """Nesterov's accelerated gradient (``type: "Nesterov"``), as nesterov_solver.cpp."""

    type_name = "Nesterov"

    def compute_update_value(self, index, diff, local_rate, iteration):
        history = self.history[index]
        previous = history.clone()                      # update_ = history (to step back)
        axpby(local_rate, diff, self.momentum, history)
        # update_ = (1 + momentum)·history − momentum·update_
        axpby(f32(1) + self.momentum, history, -self.momentum, previous)
        diff.copy_(previous)

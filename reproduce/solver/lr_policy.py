"""The learning-rate policies of Caffe's ``SGDSolver::GetLearningRate`` (sgd_solver.cpp).

``learning_rate(param, iteration, current_step)`` returns ``(rate, current_step)`` where
``rate`` is a ``numpy.float32`` — Caffe's ``Dtype rate`` — and ``current_step`` is the
solver's ``current_step_`` after the call (only ``step`` and ``multistep`` change it):

==========  ==================================================================
fixed       base_lr
step        base_lr · gamma ^ floor(iter / stepsize)
exp         base_lr · gamma ^ iter
inv         base_lr · (1 + gamma · iter) ^ (−power)
multistep   base_lr · gamma ^ current_step, current_step advanced past stepvalue
poly        base_lr · (1 − iter / max_iter) ^ power
sigmoid     base_lr · 1 / (1 + exp(−gamma · (iter − stepsize)))
==========  ==================================================================

The arithmetic follows the C++ types of the reference: SolverParameter fields are
``float``; ``pow(float, int)`` (step, exp, multistep) is computed in double and the product
``base_lr * pow(…)`` is double, rounded to float when assigned to ``rate``; ``pow(float,
float)`` (inv, poly) and ``exp(float)`` (sigmoid) are the float overloads (libstdc++'s
``<math.h>``, included by mkl_alternate.hpp, brings ``std::pow``/``std::exp`` into the global
namespace), so everything there stays float. ``powf``/``expf`` are evaluated as the double
function rounded to float, which is what glibc's implementations compute but for rare
last-bit cases.
"""
from __future__ import annotations

import math

import numpy as np

from reproduce.caffe.schema import Message

from .errors import SolverConfigError

POLICIES = ("fixed", "step", "exp", "inv", "multistep", "poly", "sigmoid")

f32 = np.float32


def _powf(base: np.float32, exponent: np.float32) -> np.float32:
    return f32(math.pow(float(base), float(exponent)))


def _expf(x: np.float32) -> np.float32:
    try:
        return f32(math.exp(float(x)))
    except OverflowError:
        return f32(math.inf)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise SolverConfigError(message)


def learning_rate(param: Message, iteration: int, current_step: int = 0) -> tuple[np.float32, int]:
    """Caffe's ``GetLearningRate`` at ``iteration``: ``(rate, current_step after the call)``."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # float overflow is Caffe's too
        return _learning_rate(param, int(iteration), int(current_step))


def _learning_rate(param: Message, iteration: int, current_step: int) -> tuple[np.float32, int]:
    policy = param.lr_policy
    base_lr = f32(param.base_lr)
    gamma = f32(param.gamma)
    if policy == "fixed":
        return base_lr, current_step
    if policy == "step":
        _require(param.stepsize > 0, f"lr_policy 'step' needs stepsize > 0, got {param.stepsize}")
        _require(gamma >= 0, f"lr_policy 'step' needs gamma >= 0, got {gamma}")
        current_step = iteration // param.stepsize
        return f32(float(base_lr) * math.pow(float(gamma), current_step)), current_step
    if policy == "exp":
        _require(gamma >= 0, f"lr_policy 'exp' needs gamma >= 0, got {gamma}")
        return f32(float(base_lr) * math.pow(float(gamma), iteration)), current_step
    if policy == "inv":
        _require(gamma >= 0, f"lr_policy 'inv' needs gamma >= 0, got {gamma}")
        base = f32(1) + gamma * f32(iteration)
        return base_lr * _powf(base, -f32(param.power)), current_step
    if policy == "multistep":
        # one step per call at most (an ``if``, not a ``while``), as in Caffe
        stepvalues = list(param.stepvalue)
        if current_step < len(stepvalues) and iteration >= stepvalues[current_step]:
            current_step += 1
        _require(gamma >= 0, f"lr_policy 'multistep' needs gamma >= 0, got {gamma}")
        return f32(float(base_lr) * math.pow(float(gamma), current_step)), current_step
    if policy == "poly":
        # Caffe does not check max_iter here and would divide by zero; refuse instead
        _require(param.max_iter > 0, f"lr_policy 'poly' needs max_iter > 0, got {param.max_iter}")
        fraction = f32(iteration) / f32(param.max_iter)
        return base_lr * _powf(f32(1) - fraction, f32(param.power)), current_step
    if policy == "sigmoid":
        _require(gamma >= 0, f"lr_policy 'sigmoid' needs gamma >= 0, got {gamma}")
        _require(param.stepsize > 0, f"lr_policy 'sigmoid' needs stepsize > 0, got {param.stepsize}")
        exponent = -gamma * (f32(iteration) - f32(param.stepsize))
        return base_lr * (f32(1) / (f32(1) + _expf(exponent))), current_step
    raise SolverConfigError(f"unknown lr_policy {policy!r} (Caffe knows {', '.join(POLICIES)})")


def check_lr_policy(param: Message) -> None:
    """Raise ``SolverConfigError`` now for a policy ``learning_rate`` would refuse later."""
    if not param.has("lr_policy"):
        raise SolverConfigError(f"the solver sets no lr_policy (one of {', '.join(POLICIES)})")
    learning_rate(param, 0, 0)

"""The solver against transcriptions of Caffe's sgd_solver.cpp / solver.cpp written out in numpy.

* learning-rate policies against the formulas of ``GetLearningRate`` (with its float/double
  casts), including multistep's ``current_step`` progression;
* the update on a tiny hand-written net (quadratic loss, analytic gradients) against a numpy
  transcription of ``Step`` + ``ApplyUpdate``: momentum, ``iter_size``, ``decay_mult``, L1,
  ``clip_gradients``, ``lr_mult: 0``, and the Nesterov/AdaGrad/RMSProp/AdaDelta/Adam rules;
* snapshots: bit-exact continuation after ``restore``, atomic state writes, the non-finite
  loss stop; solver files, test nets and configuration errors.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from reproduce.caffe.schema import Message
from reproduce.solver import (NonFiniteLossError, SGDSolver, SolverConfigError, latest_snapshot,
                              learning_rate)
from reproduce.solver import snapshot as snapshot_module
from reproduce.solver.snapshot import read_solverstate

f32 = np.float32


def solver_param(**fields) -> Message:
    param = Message("SolverParameter", lr_policy="fixed", base_lr=0.01, display=0,
                    snapshot_after_train=False)
    for name, value in fields.items():
        setattr(param, name, value)
    return param


# =========================================================================== lr policies

POLICY_CASES = {
    "fixed": dict(lr_policy="fixed", base_lr=0.01),
    "step": dict(lr_policy="step", base_lr=0.01, gamma=0.1, stepsize=7),
    "exp": dict(lr_policy="exp", base_lr=0.01, gamma=0.99),
    "inv": dict(lr_policy="inv", base_lr=0.01, gamma=1e-4, power=0.75),
    "poly": dict(lr_policy="poly", base_lr=1e-3, power=0.9, max_iter=40),
    "sigmoid": dict(lr_policy="sigmoid", base_lr=0.01, gamma=0.3, stepsize=12),
}


def caffe_formula(p: dict, it: int) -> np.float32:
    """GetLearningRate written from sgd_solver.cpp: float fields, pow(float,int) in double,
    pow(float,float) and exp(float) in float."""
    base_lr = f32(p["base_lr"])
    gamma = f32(p.get("gamma", 0.0))
    policy = p["lr_policy"]
    if policy == "fixed":
        return base_lr
    if policy == "step":
        return f32(np.float64(base_lr) * np.float64(gamma) ** (it // p["stepsize"]))
    if policy == "exp":
        return f32(np.float64(base_lr) * np.float64(gamma) ** it)
    if policy == "inv":
        base = f32(f32(1) + f32(gamma * f32(it)))
        return f32(base_lr * f32(np.float64(base) ** np.float64(-f32(p["power"]))))
    if policy == "poly":
        frac = f32(f32(it) / f32(p["max_iter"]))
        return f32(base_lr * f32(np.float64(f32(1) - frac) ** np.float64(f32(p["power"]))))
    if policy == "sigmoid":
        x = f32(-gamma * f32(f32(it) - f32(p["stepsize"])))
        return f32(base_lr * f32(f32(1) / f32(f32(1) + f32(np.exp(np.float64(x))))))
    raise AssertionError(policy)


@pytest.mark.parametrize("name", sorted(POLICY_CASES))
def test_lr_policy_matches_caffe_formula(name):
    p = POLICY_CASES[name]
    param = solver_param(**p)
    for it in range(0, 40):
        rate, _ = learning_rate(param, it, 0)
        assert isinstance(rate, np.float32)
        assert rate == caffe_formula(p, it), (name, it)


def test_lr_policy_closed_forms():
    step = solver_param(lr_policy="step", base_lr=0.01, gamma=0.1, stepsize=10)
    assert learning_rate(step, 9, 0) == (f32(0.01), 0)
    assert learning_rate(step, 25, 0)[1] == 2
    assert math.isclose(learning_rate(step, 25, 0)[0], 1e-4, rel_tol=1e-6)
    poly = solver_param(lr_policy="poly", base_lr=1.0, power=1.0, max_iter=10)
    assert learning_rate(poly, 10, 0)[0] == 0
    assert learning_rate(poly, 5, 0)[0] == f32(0.5)
    sigmoid = solver_param(lr_policy="sigmoid", base_lr=1.0, gamma=1.0, stepsize=5)
    assert learning_rate(sigmoid, 5, 0)[0] == f32(0.5)
    inv = solver_param(lr_policy="inv", base_lr=1.0, gamma=1.0, power=1.0)
    assert learning_rate(inv, 3, 0)[0] == f32(0.25)


def test_multistep_advances_one_step_per_call():
    param = solver_param(lr_policy="multistep", base_lr=1.0, gamma=0.5, stepvalue=[2, 4, 4])
    step, rates = 0, []
    for it in range(7):
        rate, step = learning_rate(param, it, step)
        rates.append((float(rate), step))
    # iteration 4 reaches both stepvalues 4 but, as in Caffe, advances once per call
    assert rates == [(1.0, 0), (1.0, 0), (0.5, 1), (0.5, 1), (0.25, 2), (0.125, 3), (0.125, 3)]


@pytest.mark.parametrize("fields, message", [
    (dict(lr_policy="linear"), "unknown lr_policy"),
    (dict(lr_policy="step", stepsize=0, gamma=0.1), "stepsize > 0"),
    (dict(lr_policy="exp", gamma=-1.0), "gamma >= 0"),
    (dict(lr_policy="poly", power=1.0), "max_iter > 0"),
])
def test_lr_policy_errors(fields, message):
    with pytest.raises(SolverConfigError, match=message):
        learning_rate(solver_param(**fields), 0, 0)


# ============================================================ the update, on a tiny net

class QuadraticNet(nn.Module):
    """A duck-typed net: ``loss = ½ Σ (x Wᵀ + b + v − t)²``; ``v`` is frozen (lr_mult 0)."""

    name = "quadratic"
    inputs = ["x", "t"]
    loss_blobs = {"loss": 1.0}

    def __init__(self, specs, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.w = nn.Parameter(torch.from_numpy(rng.standard_normal((3, 4)).astype(np.float32)))
        self.b = nn.Parameter(torch.from_numpy(rng.standard_normal(3).astype(np.float32)))
        self.v = nn.Parameter(torch.from_numpy(rng.standard_normal(3).astype(np.float32)),
                              requires_grad=False)
        self.params = OrderedDict(fc=[self.w, self.b], frozen=[self.v])
        self.param_specs = OrderedDict(fc=specs[:2], frozen=specs[2:])
        self.loss = None

    def forward(self, x, t):
        x, t = torch.as_tensor(x), torch.as_tensor(t)
        r = x @ self.w.T + self.b + self.v - t
        self.loss = 0.5 * (r * r).sum()
        return {"loss": self.loss.detach()}

    def backward(self):
        self.loss.backward()

    def copy_from(self, weights):
        for layer, blobs in weights.items():
            for target, array in zip(self.params[layer], blobs):
                with torch.no_grad():
                    target.copy_(torch.from_numpy(np.asarray(array)))


def batches(seed, count, scale=1.0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((5, 4)).astype(np.float32) * f32(scale),
             rng.standard_normal((5, 3)).astype(np.float32)) for _ in range(count)]


def reference_run(p: dict, specs, data, iterations, seed=0):
    """Caffe's Step/ApplyUpdate for QuadraticNet, written out in float32 numpy."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((3, 4)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    v = rng.standard_normal(3).astype(np.float32)
    params = [w, b, v]
    kind = p.get("type", "SGD")
    n = len(params)
    history = [np.zeros_like(x) for x in params] * (2 if kind in ("AdaDelta", "Adam") else 1)
    history = [h.copy() for h in history]
    momentum, delta = f32(p.get("momentum", 0.0)), f32(p.get("delta", 1e-8))
    iter_size = p.get("iter_size", 1)
    losses, feed = [], iter(data)
    for it in range(iterations):
        diffs = [np.zeros_like(x) for x in params]
        loss = f32(0)
        for _ in range(iter_size):
            x, t = next(feed)
            r = (x @ params[0].T + params[1] + params[2] - t).astype(np.float32)
            loss = f32(loss + f32(0.5) * np.sum(r * r, dtype=np.float32))
            diffs[0] += r.T @ x
            diffs[1] += r.sum(axis=0)           # v has lr_mult 0: no gradient, diff stays 0
        losses.append(f32(loss / f32(iter_size)))
        rate = f32(p["base_lr"])
        if p.get("lr_policy") == "step":
            rate = f32(np.float64(rate) * np.float64(f32(p["gamma"])) ** (it // p["stepsize"]))
        clip = f32(p.get("clip_gradients", -1))
        if clip >= 0:
            norm = f32(np.sqrt(sum(f32(np.sum(d * d, dtype=np.float32)) for d in diffs)))
            if norm > clip:
                diffs = [d * f32(clip / norm) for d in diffs]
        for i, (data_i, diff) in enumerate(zip(params, diffs)):
            lr_mult, decay_mult = (f32(s) for s in specs[i])
            if iter_size > 1:
                diff = diff * (f32(1) / f32(iter_size))
            local_decay = f32(f32(p.get("weight_decay", 0.0)) * decay_mult)
            if local_decay:
                reg = np.sign(data_i) if p.get("regularization_type", "L2") == "L1" else data_i
                diff = diff + local_decay * reg
            local_rate = f32(rate * lr_mult)
            h = history[i]
            if kind == "SGD":
                h[...] = momentum * h + local_rate * diff
                update = h.copy()
            elif kind == "Nesterov":
                previous = h.copy()
                h[...] = momentum * h + local_rate * diff
                update = (f32(1) + momentum) * h - momentum * previous
            elif kind == "AdaGrad":
                h[...] = h + diff * diff
                update = local_rate * (diff / (np.sqrt(h) + delta))
            elif kind == "RMSProp":
                decay = f32(p["rms_decay"])
                h[...] = decay * h + (f32(1) - decay) * diff * diff
                update = local_rate * (diff / (np.sqrt(h) + delta))
            elif kind == "AdaDelta":
                u = history[n + i]
                h[...] = momentum * h + (f32(1) - momentum) * diff * diff
                step = diff * np.sqrt((u + delta) / (h + delta))
                u[...] = momentum * u + (f32(1) - momentum) * step * step
                update = local_rate * step
            elif kind == "Adam":
                beta2 = f32(p["momentum2"])
                m, s = h, history[n + i]
                m[...] = momentum * m + (f32(1) - momentum) * diff
                s[...] = beta2 * s + (f32(1) - beta2) * diff * diff
                t = it + 1
                correction = f32(math.sqrt(1 - float(beta2) ** t) / (1 - float(momentum) ** t))
                update = f32(local_rate * correction) * (m / (np.sqrt(s) + delta))
            params[i] = (data_i - update).astype(np.float32)
    return params, history, losses


SPECS = [(1.0, 1.0), (2.0, 0.0), (0.0, 1.0)]

UPDATE_CASES = {
    "sgd-momentum": dict(base_lr=0.01, momentum=0.9, weight_decay=0.05),
    "iter_size": dict(base_lr=0.01, momentum=0.9, weight_decay=0.05, iter_size=3),
    "L1": dict(base_lr=0.01, momentum=0.5, weight_decay=0.1, regularization_type="L1"),
    "clip-active": dict(base_lr=0.01, momentum=0.9, weight_decay=0.05, clip_gradients=1.0),
    "clip-iter_size": dict(base_lr=0.01, momentum=0.9, clip_gradients=2.0, iter_size=2),
    "clip-inactive": dict(base_lr=0.01, momentum=0.9, clip_gradients=1e6),
    "step-policy": dict(base_lr=0.02, momentum=0.9, lr_policy="step", gamma=0.5, stepsize=2),
    "Nesterov": dict(type="Nesterov", base_lr=0.01, momentum=0.9, weight_decay=0.05),
    "AdaGrad": dict(type="AdaGrad", base_lr=0.1, weight_decay=0.05, delta=1e-6),
    "RMSProp": dict(type="RMSProp", base_lr=0.01, rms_decay=0.9, weight_decay=0.05, delta=1e-6),
    "AdaDelta": dict(type="AdaDelta", base_lr=1.0, momentum=0.95, delta=1e-6, weight_decay=0.05),
    "Adam": dict(type="Adam", base_lr=0.01, momentum=0.9, momentum2=0.999, delta=1e-8,
                 weight_decay=0.05),
}


def close(got, ref, rel=2e-6):
    got, ref = np.asarray(got), np.asarray(ref)
    return float(np.max(np.abs(got - ref))) <= rel * max(float(np.max(np.abs(ref))), 1e-30)


@pytest.mark.parametrize("case", list(UPDATE_CASES))
def test_update_matches_numpy_transcription(case):
    p = UPDATE_CASES[case]
    iterations = 5
    data = batches(1, iterations * p.get("iter_size", 1))
    net = QuadraticNet(SPECS)
    solver = SGDSolver(solver_param(**{k: v for k, v in p.items()}), net=net)
    frozen_before = net.v.detach().clone()
    feed = iter(data)
    losses = []
    solver.add_callback(lambda record: losses.append(record["loss"]))
    solver.step(iterations, feed=lambda: dict(zip(("x", "t"), next(feed))))
    ref_params, ref_history, ref_losses = reference_run(p, SPECS, data, iterations)
    assert solver.iter == iterations
    assert close(net.w.detach(), ref_params[0]) and close(net.b.detach(), ref_params[1])
    assert torch.equal(net.v.detach(), frozen_before)          # lr_mult 0: data never move
    for mine, theirs in zip(solver.rule.history, ref_history):
        assert close(mine, theirs, rel=1e-5)
    assert np.allclose(losses, ref_losses, rtol=1e-6)


def test_clip_gradients_acts_in_that_case():
    # the clip case must actually differ from the unclipped run, or the test above proves nothing
    data = batches(1, 3)
    clipped, _, _ = reference_run(UPDATE_CASES["clip-active"], SPECS, data, 3)
    free, _, _ = reference_run(dict(UPDATE_CASES["clip-active"], clip_gradients=-1), SPECS, data, 3)
    assert not np.allclose(clipped[0], free[0])


def test_lr_mult_zero_keeps_data_under_weight_decay():
    net = QuadraticNet([(1.0, 1.0), (1.0, 1.0), (0.0, 1.0)])
    before = net.v.detach().clone()
    solver = SGDSolver(solver_param(base_lr=0.1, momentum=0.9, weight_decay=0.5), net=net)
    x, t = batches(2, 1)[0]
    solver.step(3, feed={"x": x, "t": t})
    assert torch.equal(net.v.detach(), before)
    assert torch.count_nonzero(solver.rule.history[2]) == 0


def test_dict_feed_is_held_for_every_pass_of_iter_size():
    calls = []
    net = QuadraticNet(SPECS)
    original = net.forward
    net.forward = lambda x, t: (calls.append(np.asarray(x).copy()), original(x, t))[1]
    solver = SGDSolver(solver_param(base_lr=0.01, iter_size=2), net=net)
    x, t = batches(3, 1)[0]
    solver.step(2, feed={"x": x, "t": t})
    assert len(calls) == 4 and all(np.array_equal(c, x) for c in calls)


def test_unfed_inputs_are_a_clear_error():
    solver = SGDSolver(solver_param(), net=QuadraticNet(SPECS))
    with pytest.raises(SolverConfigError, match=r"inputs \['x', 't'\] were never fed"):
        solver.step(1)


# ================================================================= solver files and nets

TINY_NET = """
name: "tiny"
layer { name: "input" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 2 dim: 3 dim: 6 dim: 7 } shape { dim: 2 dim: 1 dim: 6 dim: 7 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
        convolution_param { num_output: 4 kernel_size: 3 pad: 1
                            weight_filler { type: "gaussian" std: 0.3 } bias_filler { type: "constant" value: 0.1 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "drop1" type: "Dropout" bottom: "conv1" top: "conv1" dropout_param { dropout_ratio: 0.5 } }
layer { name: "score" type: "Convolution" bottom: "conv1" top: "score"
        param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
        convolution_param { num_output: 3 kernel_size: 1 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "up" type: "Deconvolution" bottom: "score" top: "up" param { lr_mult: 0 }
        convolution_param { num_output: 3 kernel_size: 1 bias_term: false weight_filler { type: "bilinear" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "up" bottom: "label" top: "loss"
        loss_param { ignore_label: 255 normalize: false } }
"""

TINY_SOLVER = """
train_net: "train.prototxt"
base_lr: 0.01
lr_policy: "step"
gamma: 0.5
stepsize: 2
momentum: 0.9
weight_decay: 0.0005
iter_size: 2
average_loss: 3
display: 0
max_iter: 6
snapshot: 3
snapshot_prefix: "snapshots/tiny"
random_seed: 7
"""


def write_tiny(tmp_path: Path, solver_text=TINY_SOLVER, net_text=TINY_NET) -> Path:
    (tmp_path / "train.prototxt").write_text(net_text)
    (tmp_path / "solver.prototxt").write_text(solver_text)
    return tmp_path / "solver.prototxt"


def random_feed():
    """A callable feed drawing from numpy's global generator (restored by snapshots)."""
    return lambda: {"data": np.random.standard_normal((2, 3, 6, 7)).astype(np.float32),
                    "label": np.random.randint(0, 3, (2, 1, 6, 7)).astype(np.float32)}


def params_of(solver):
    return [blob.detach().clone() for blobs in solver.net.params.values() for blob in blobs]


def test_paths_are_relative_to_the_solver_file(tmp_path, monkeypatch):
    path = write_tiny(tmp_path)
    monkeypatch.chdir("/")
    solver = SGDSolver(path)
    assert solver.snapshot_prefix == tmp_path / "snapshots" / "tiny"
    assert solver.net.name == "tiny" and solver.type == "SGD"
    unset = write_tiny(tmp_path, TINY_SOLVER.replace('snapshot_prefix: "snapshots/tiny"\n', ""))
    assert SGDSolver(unset).snapshot_prefix == tmp_path / "solver"


def test_restore_continues_bit_exact(tmp_path):
    path = write_tiny(tmp_path)
    np.random.seed(0)
    whole = SGDSolver(path)
    whole_records = []
    whole.add_callback(whole_records.append)
    whole.solve(feed=random_feed())
    expected = params_of(whole)
    expected_history = [h.clone() for h in whole.rule.history]

    state = tmp_path / "snapshots" / "tiny_iter_3.solverstate.pt"
    assert state.is_file() and (tmp_path / "snapshots" / "tiny_iter_3.caffemodel").is_file()
    assert latest_snapshot(tmp_path / "snapshots" / "tiny") == tmp_path / "snapshots" / "tiny_iter_6.solverstate.pt"
    np.random.seed(123)                      # everything the restore must put back is disturbed
    torch.manual_seed(123)
    resumed = SGDSolver(path)
    resumed_records = []
    resumed.add_callback(resumed_records.append)
    resumed.restore(state)
    assert resumed.iter == 3 and resumed.current_step == 1
    resumed.solve(feed=random_feed())
    assert resumed.iter == 6
    for got, want in zip(params_of(resumed), expected):
        assert torch.equal(got, want)
    for got, want in zip(resumed.rule.history, expected_history):
        assert torch.equal(got, want)
    whole_losses = [(r["iter"], r["loss"], r["smoothed_loss"]) for r in whole_records if r["event"] == "iteration"]
    resumed_losses = [(r["iter"], r["loss"], r["smoothed_loss"]) for r in resumed_records if r["event"] == "iteration"]
    assert resumed_losses == whole_losses[3:]


def test_snapshot_holds_caffemodel_weights_and_plain_state(tmp_path):
    from reproduce.caffe.weights import read_weights

    solver = SGDSolver(write_tiny(tmp_path))
    np.random.seed(1)
    solver.step(1, feed=random_feed())
    state_path = solver.snapshot()
    assert state_path.name == "tiny_iter_1.solverstate.pt"
    weights = read_weights(tmp_path / "snapshots" / "tiny_iter_1.caffemodel")
    assert list(weights) == ["conv1", "score", "up"]
    for layer, blobs in solver.net.params.items():
        for array, blob in zip(weights[layer], blobs):
            assert np.array_equal(array, blob.detach().numpy())
    state = read_solverstate(state_path)    # weights_only=True inside
    assert state["iter"] == 1 and state["type"] == "SGD" and len(state["history"]) == 5
    assert Path(state["learned_net"]).name == "tiny_iter_1.caffemodel"


def test_failed_state_write_leaves_no_partial_file(tmp_path, monkeypatch):
    solver = SGDSolver(write_tiny(tmp_path))
    np.random.seed(2)
    solver.step(1, feed=random_feed())
    good = solver.snapshot()
    good_bytes = good.read_bytes()
    solver.step(1, feed=random_feed())

    def crashing_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a state")
        f.flush()
        raise OSError("disk full")

    monkeypatch.setattr(snapshot_module.torch, "save", crashing_save)
    with pytest.raises(OSError, match="disk full"):
        solver.snapshot()
    directory = tmp_path / "snapshots"
    assert not (directory / "tiny_iter_2.solverstate.pt").exists()
    assert [p.name for p in directory.iterdir() if p.name.startswith(".")] == []  # no temporaries
    assert good.read_bytes() == good_bytes
    assert latest_snapshot(directory / "tiny") == good
    assert read_solverstate(good)["iter"] == 1


def test_non_finite_loss_stops_and_keeps_last_snapshot(tmp_path):
    path = write_tiny(tmp_path, TINY_SOLVER.replace("snapshot: 3", "snapshot: 1"))
    solver = SGDSolver(path)
    np.random.seed(3)
    normal = random_feed()
    calls = {"n": 0}

    def feed():
        calls["n"] += 1
        arrays = normal()
        if calls["n"] > 4:                      # iteration 2 (iter_size 2: forwards 5 and 6)
            arrays["data"][0, 0, 0, 0] = np.inf
        return arrays

    with pytest.raises(NonFiniteLossError, match="iteration 2") as info:
        solver.step(5, feed=feed)
    assert info.value.iteration == 2 and not math.isfinite(info.value.loss)
    assert info.value.last_snapshot.endswith("tiny_iter_2.solverstate.pt")
    assert solver.iter == 2
    assert latest_snapshot(tmp_path / "snapshots" / "tiny").name == "tiny_iter_2.solverstate.pt"
    assert not list((tmp_path / "snapshots").glob("tiny_iter_3*"))
    from reproduce.caffe.weights import read_weights

    saved = read_weights(tmp_path / "snapshots" / "tiny_iter_2.caffemodel")
    for layer, blobs in solver.net.params.items():   # the diverged update was not applied
        for array, blob in zip(saved[layer], blobs):
            assert np.array_equal(array, blob.detach().numpy())


def test_test_nets_share_the_train_weights(tmp_path):
    test_text = TINY_NET.replace('name: "tiny"', 'name: "tiny-test"')
    (tmp_path / "val.prototxt").write_text(test_text)
    solver_text = TINY_SOLVER + 'test_net: "val.prototxt"\ntest_iter: 2\ntest_interval: 1000\n'
    solver_text += "test_initialization: false\n"
    solver = SGDSolver(write_tiny(tmp_path, solver_text))
    test_net = solver.test_nets[0]
    assert test_net.phase == "TEST"
    for layer, blobs in solver.net.params.items():
        for mine, theirs in zip(blobs, test_net.params[layer]):
            assert mine is theirs
    np.random.seed(4)
    solver.step(1, feed=random_feed())
    means = solver.test(0, feed=random_feed())
    assert set(means) == {"loss"} and np.isfinite(means["loss"]).all()


@pytest.mark.parametrize("fields, message", [
    (dict(type="Adagrad"), "unknown solver type"),
    (dict(type="AdaGrad", momentum=0.9), "Momentum cannot be used with AdaGrad"),
    (dict(iter_size=0), "iter_size"),
    (dict(regularization_type="L3"), "regularization_type"),
    (dict(lr_policy=""), "lr_policy"),
])
def test_configuration_errors(fields, message):
    with pytest.raises(SolverConfigError, match=message):
        SGDSolver(solver_param(**fields), net=QuadraticNet(SPECS))


def test_train_net_must_be_given_once(tmp_path):
    path = write_tiny(tmp_path, TINY_SOLVER + 'net: "train.prototxt"\n')
    with pytest.raises(SolverConfigError, match="exactly one train net"):
        SGDSolver(path)


def test_legacy_solver_type_selects_the_rule(tmp_path):
    path = write_tiny(tmp_path, TINY_SOLVER.replace("momentum: 0.9", "momentum: 0.9\nsolver_type: NESTEROV"))
    assert SGDSolver(path).type == "Nesterov"


def test_progress_bar_and_iteration_records(tmp_path, capsys):
    solver = SGDSolver(write_tiny(tmp_path, TINY_SOLVER.replace("snapshot: 3", "snapshot: 0")))
    records = []
    solver.add_callback(records.append)
    np.random.seed(5)
    solver.step(2, feed=random_feed(), progress=True)
    assert [r["iter"] for r in records] == [0, 1]
    assert records[0]["lr"] == pytest.approx(0.01) and "loss" in records[0]["outputs"]
    assert "train" in capsys.readouterr().err


# ==================================================================== the train command

DATA_NET = """
name: "tiny-fcn"
layer { name: "data" type: "Python" top: "data" top: "label"
        python_param { module: "voc_layers" layer: "SBDDSegDataLayer"
                       param_str: "{\\'sbdd_dir\\': \\'../data/sbdd/dataset\\', \\'split\\': \\'train\\', \\'seed\\': 1337, \\'mean\\': (104.00699, 116.66877, 122.67892)}" } }
layer { name: "score" type: "Convolution" bottom: "data" top: "score"
        convolution_param { num_output: 21 kernel_size: 1 weight_filler { type: "gaussian" std: 0.001 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss"
        loss_param { ignore_label: 255 normalize: false } }
"""


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from reproduce.data import make_synthetic_dataset

    return make_synthetic_dataset(tmp_path_factory.mktemp("synthetic"), n_train=3, n_val=1, seed=2)


def test_train_command_runs_logs_and_resumes(tmp_path, synthetic, capsys):
    import json

    from reproduce.solver.cli import train_main

    run = tmp_path / "run"
    run.mkdir()
    solver = write_tiny(run, TINY_SOLVER.replace("iter_size: 2", "iter_size: 1"), DATA_NET)
    log = tmp_path / "log.jsonl"
    # the prototxt's sbdd_dir does not exist: the override must be what makes it run
    common = ["--solver", str(solver), "--data", f"sbdd_dir={synthetic.sbdd_dir}", "--quiet"]
    assert train_main(common + ["--max-iter", "4", "--log-jsonl", str(log)]) == 0
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["iter"] for r in records if r["event"] == "iteration"] == [0, 1, 2, 3]
    assert [r["iter"] for r in records if r["event"] == "snapshot"] == [3, 4]  # + after train
    assert "last snapshot:" in capsys.readouterr().out
    assert train_main(common + ["--resume", "latest"]) == 0           # on to max_iter 6
    assert latest_snapshot(run / "snapshots" / "tiny").name == "tiny_iter_6.solverstate.pt"


def test_train_command_errors_are_one_line(tmp_path, synthetic, capsys):
    from reproduce.solver.cli import train_main

    run = tmp_path / "run"
    run.mkdir()
    solver = write_tiny(run, TINY_SOLVER, DATA_NET)
    assert train_main(["--solver", str(solver), "--weights", "w.caffemodel", "--resume", "latest"]) == 2
    assert "not both" in capsys.readouterr().err
    assert train_main(["--solver", str(solver), "--quiet"]) == 2       # data directory missing
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert train_main(["--solver", str(solver), "--quiet", "--data", "sbdd_dir"]) == 2
    assert "PARAM=DIR" in capsys.readouterr().err


def write_caffe_hdf5_solverstate(path, iteration, current_step, learned_net, history):
    """A ``.solverstate.h5`` laid out as ``SnapshotSolverStateToHDF5`` writes it (H5LT scalars)."""
    import h5py

    with h5py.File(path, "w") as f:
        f.create_dataset("iter", data=np.int32(iteration))
        if learned_net is not None:
            f.create_dataset("learned_net", data=np.bytes_(learned_net.encode()))
        f.create_dataset("current_step", data=np.int32(current_step))
        group = f.create_group("history")
        for i, blob in enumerate(history):
            group.create_dataset(str(i), data=np.asarray(blob, dtype=np.float32))


def write_caffe_solverstate(directory: Path, solver: SGDSolver, fmt: str) -> Path:
    """``solver``'s weights and state as Caffe's snapshot of ``snapshot_format`` ``fmt`` holds
    them; the recorded weights path is elsewhere, the file beside the state (found there)."""
    from reproduce.caffe import wire
    from reproduce.caffe.weights import blob_message, write_caffemodel, write_hdf5

    history = [h.numpy() for h in solver.rule.history]
    if fmt == "HDF5":
        write_hdf5(directory / "caffe_iter_3.caffemodel.h5", solver.weights())
        state = directory / "caffe_iter_3.solverstate.h5"
        write_caffe_hdf5_solverstate(state, solver.iter, solver.current_step,
                                     "somewhere/else/caffe_iter_3.caffemodel.h5", history)
        return state
    write_caffemodel(directory / "caffe_iter_3.caffemodel", solver.weights())
    state = directory / "caffe_iter_3.solverstate"
    state.write_bytes(wire.encode(Message(
        "SolverState", iter=solver.iter, current_step=solver.current_step,
        learned_net="somewhere/else/caffe_iter_3.caffemodel",
        history=[blob_message(h) for h in history])))
    return state


@pytest.mark.parametrize("fmt", ["BINARYPROTO", "HDF5"])
def test_restore_from_a_caffe_solverstate(tmp_path, fmt):
    """Caffe's own ``.solverstate`` / ``.solverstate.h5`` (iter, learned_net, history,
    current_step): the restored solver takes the trained one's next step exactly."""
    path = write_tiny(tmp_path)
    np.random.seed(6)
    trained = SGDSolver(path)
    trained.step(3, feed=random_feed())
    assert trained.current_step == 1          # lr_policy step, stepsize 2
    state = write_caffe_solverstate(tmp_path, trained, fmt)

    fresh = SGDSolver(path)
    fresh.restore(state)
    assert fresh.iter == 3 and fresh.current_step == 1
    for got, want in zip(params_of(fresh), params_of(trained)):
        assert torch.equal(got, want)
    for got, want in zip(fresh.rule.history, trained.rule.history):
        assert torch.equal(got, want)
    # Caffe's state holds no random state: dropout's generator is carried over by hand
    fresh.generator.set_state(trained.generator.get_state())
    np.random.seed(8)
    trained.step(1, feed=random_feed())
    np.random.seed(8)
    fresh.step(1, feed=random_feed())
    for got, want in zip(params_of(fresh), params_of(trained)):
        assert torch.equal(got, want)


def test_bad_caffe_hdf5_solverstates_are_named_errors(tmp_path):
    import h5py

    from reproduce.caffe.errors import CaffeFormatError

    solver = SGDSolver(write_tiny(tmp_path))
    history = [h.numpy() for h in solver.rule.history]

    missing_iter = tmp_path / "a_iter_1.solverstate.h5"
    write_caffe_hdf5_solverstate(missing_iter, 1, 0, None, history)
    with h5py.File(missing_iter, "a") as f:
        del f["iter"]
    with pytest.raises(CaffeFormatError, match=r"a_iter_1\.solverstate\.h5: no /iter dataset"):
        solver.restore(missing_iter)

    short = tmp_path / "b_iter_1.solverstate.h5"
    write_caffe_hdf5_solverstate(short, 1, 0, None, history[:-1])
    with pytest.raises(SolverConfigError, match=f"holds {len(history) - 1} history blobs"):
        solver.restore(short)

    gap = tmp_path / "c_iter_1.solverstate.h5"
    write_caffe_hdf5_solverstate(gap, 1, 0, None, history)
    with h5py.File(gap, "a") as f:
        f["history"].move("0", "x")
    with pytest.raises(CaffeFormatError, match=r"c_iter_1\.solverstate\.h5: /history: datasets"):
        solver.restore(gap)

    fractional = tmp_path / "d_iter_1.solverstate.h5"
    write_caffe_hdf5_solverstate(fractional, 1, 0, None, history)
    with h5py.File(fractional, "a") as f:
        del f["iter"]
        f.create_dataset("iter", data=np.float32(1.5))
    with pytest.raises(CaffeFormatError, match=r"/iter: holds \[1\.5\], not one integer"):
        solver.restore(fractional)
    with h5py.File(fractional, "a") as f:
        del f["iter"]
        f.create_dataset("iter", data=np.float32("nan"))
    with pytest.raises(CaffeFormatError, match=r"/iter: holds \[nan\], not one integer"):
        solver.restore(fractional)

    not_hdf5 = tmp_path / "e_iter_1.solverstate.h5"
    not_hdf5.write_bytes(b"\x00" * 64)
    with pytest.raises(CaffeFormatError, match=r"e_iter_1\.solverstate\.h5: not a readable HDF5"):
        solver.restore(not_hdf5)


@pytest.mark.parametrize("fmt", ["BINARYPROTO", "HDF5"])
def test_snapshot_diff_writes_the_update_each_blob_took(tmp_path, fmt):
    """``snapshot_diff: true``: beside each blob's data, its diff as Caffe holds it after
    ``ApplyUpdate`` — the update ``Net::Update`` subtracted, so data_before − diff == data
    exactly in float32. ``up`` (lr_mult 0) took a zero update."""
    import h5py

    from reproduce.caffe.weights import read_caffemodel

    path = write_tiny(tmp_path, TINY_SOLVER + f"snapshot_diff: true\nsnapshot_format: {fmt}\n")
    np.random.seed(9)
    solver = SGDSolver(path)
    solver.step(2, feed=random_feed())
    before = solver.weights()
    solver.step(1, feed=random_feed())                   # iteration 3: the snapshot
    after = solver.weights()
    if fmt == "HDF5":
        with h5py.File(tmp_path / "snapshots" / "tiny_iter_3.caffemodel.h5") as f:
            data = {name: [f["data"][name][str(i)][()] for i in range(len(f["data"][name]))]
                    for name in after}
            diff = {name: [f["diff"][name][str(i)][()] for i in range(len(f["diff"][name]))]
                    for name in after}
    else:
        model = read_caffemodel(tmp_path / "snapshots" / "tiny_iter_3.caffemodel")
        blobs = {layer.name: layer.blobs for layer in model.layer if layer.blobs}
        data = {name: [np.asarray(b.data).reshape(b.shape.dim) for b in blobs[name]] for name in after}
        diff = {name: [np.asarray(b.diff).reshape(b.shape.dim) for b in blobs[name]] for name in after}
    assert list(data) == ["conv1", "score", "up"]
    moved = False
    for name in after:
        for b, a, d, w in zip(before[name], after[name], diff[name], data[name]):
            assert np.array_equal(w, a)
            assert np.array_equal(np.float32(b) - d, a)
            moved = moved or bool(np.any(d != 0))
    assert moved and not np.any(diff["up"][0])


def test_diffs_must_match_the_blobs(tmp_path):
    from reproduce.caffe.weights import write_caffemodel, write_hdf5

    weights = {"conv": [np.zeros((2, 3), np.float32), np.zeros(2, np.float32)]}
    for write in (write_caffemodel, write_hdf5):
        with pytest.raises(ValueError, match=r"layer 'conv': diff shapes \[\(2, 3\), \(3,\)\]"):
            write(tmp_path / "m", weights, diffs={"conv": [np.zeros((2, 3)), np.zeros(3)]})
        with pytest.raises(ValueError, match="diffs are for layers"):
            write(tmp_path / "m", weights, diffs={})
    assert not (tmp_path / "m").exists()


def test_a_label_outside_the_classes_names_the_sample_being_trained_on(tmp_path):
    from reproduce.data import make_synthetic_dataset
    from reproduce.data.synthetic import write_sbd_label
    from reproduce.net import LayerError

    data = make_synthetic_dataset(tmp_path / "data", n_train=2, n_val=1, seed=3, sides=(24, 24))
    ids = (data.sbdd_dir / "train.txt").read_text().split()
    bad_label = np.zeros((24, 24), np.uint8)
    bad_label[3, 4] = 30  # not one of the 3 classes, nor the ignore label
    for sample_id in ids:
        write_sbd_label(data.sbdd_dir / "cls" / f"{sample_id}.mat", bad_label)
    net_text = TINY_NET.replace(
        'layer { name: "input" type: "Input" top: "data" top: "label"\n'
        '        input_param { shape { dim: 2 dim: 3 dim: 6 dim: 7 } shape { dim: 2 dim: 1 dim: 6 dim: 7 } } }',
        'layer { name: "data" type: "Python" top: "data" top: "label"\n'
        '        python_param { module: "voc_layers" layer: "SBDDSegDataLayer"\n'
        f'          param_str: "{{\\\'sbdd_dir\\\': \\\'{data.sbdd_dir}\\\', \\\'seed\\\': 1, '
        '\\\'split\\\': \\\'train\\\', \\\'mean\\\': (104.0, 116.7, 122.7)}" } }')
    assert 'type: "Python"' in net_text
    solver = SGDSolver(write_tiny(tmp_path, TINY_SOLVER, net_text))
    with pytest.raises(LayerError, match=r"layer 'loss' \(SoftmaxWithLoss\): label value 30 out of "
                                         r"range \[0, 3\).*net 'tiny' was running on sample "
                                         r"'synth_0000\d' of data layer 'data'"):
        solver.step(1)

"""A training run killed with SIGKILL resumes from its last snapshot onto the identical trajectory.

A tiny fully convolutional net (Python data layer ``voc_layers.VOCSegDataLayer`` over a
generated dataset in the VOC layout, randomized sample order, dropout, ``iter_size: 2``,
momentum, a step lr policy) trains in a subprocess that is killed with SIGKILL after its
first snapshot, while it is running further. A second subprocess resumes from the newest
snapshot and finishes; its final weights and solver history must be bit-identical to those
of an uninterrupted run — which needs the history, the data sampler's position and
generator, and the dropout generator all restored exactly.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from reproduce.caffe.weights import read_weights
from reproduce.data import make_synthetic_dataset
from reproduce.solver import latest_snapshot
from reproduce.solver.snapshot import read_solverstate

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MAX_ITER = 12
SNAPSHOT = 4

NET = """
name: "tiny-fcn"
layer {{ name: "data" type: "Python" top: "data" top: "label"
        python_param {{ module: "voc_layers" layer: "VOCSegDataLayer"
                       param_str: "{{\\'voc_dir\\': \\'{voc_dir}\\', \\'split\\': \\'train\\', \\'seed\\': 1337, \\'mean\\': (104.00699, 116.66877, 122.67892)}}" }} }}
layer {{ name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        param {{ lr_mult: 1 decay_mult: 1 }} param {{ lr_mult: 2 decay_mult: 0 }}
        convolution_param {{ num_output: 4 kernel_size: 3 pad: 1
                            weight_filler {{ type: "gaussian" std: 0.01 }} }} }}
layer {{ name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }}
layer {{ name: "drop1" type: "Dropout" bottom: "conv1" top: "conv1" dropout_param {{ dropout_ratio: 0.3 }} }}
layer {{ name: "score" type: "Convolution" bottom: "conv1" top: "score"
        param {{ lr_mult: 1 decay_mult: 1 }} param {{ lr_mult: 2 decay_mult: 0 }}
        convolution_param {{ num_output: 21 kernel_size: 1 weight_filler {{ type: "gaussian" std: 0.01 }} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss"
        loss_param {{ ignore_label: 255 normalize: false }} }}
"""

SOLVER = f"""
train_net: "train.prototxt"
base_lr: 1e-6
lr_policy: "step"
gamma: 0.5
stepsize: 5
momentum: 0.9
weight_decay: 0.0005
iter_size: 2
average_loss: 3
display: 0
max_iter: {MAX_ITER}
snapshot: {SNAPSHOT}
snapshot_prefix: "snapshots/tiny"
random_seed: 11
"""

CHILD = """
import sys, time
from reproduce.solver import SGDSolver

solver_path, resume, pause = sys.argv[1], sys.argv[2], float(sys.argv[3])
solver = SGDSolver(solver_path)

def report(record):
    print(record["event"], record["iter"], flush=True)
    if record["event"] == "iteration":
        time.sleep(pause)   # leave the parent time to kill us between iterations

solver.add_callback(report)
solver.solve(resume_file=None if resume == "-" else resume)
print("done", solver.iter, flush=True)
"""


def make_run(root: Path, voc_dir: Path) -> Path:
    root.mkdir()
    (root / "train.prototxt").write_text(NET.format(voc_dir=voc_dir.as_posix()))
    (root / "solver.prototxt").write_text(SOLVER)
    return root / "solver.prototxt"


def child(script: Path, solver: Path, resume: str = "-", pause: float = 0.0) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, str(script), str(solver), resume, str(pause)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def finish(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-3000:]
    return out


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_sigkilled_run_resumes_bit_identical(tmp_path):
    data = make_synthetic_dataset(tmp_path / "data", n_train=6, n_val=1, seed=5)
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    whole_solver = make_run(whole, data.voc_dir)
    killed_solver = make_run(killed, data.voc_dir)

    reference = child(script, whole_solver)
    victim = child(script, killed_solver, pause=0.3)
    seen_snapshot = False
    for line in victim.stdout:
        event, iteration = line.split()
        if event == "snapshot":
            seen_snapshot = True
        elif event == "iteration" and seen_snapshot:
            victim.send_signal(signal.SIGKILL)   # after a snapshot, while training on
            break
    victim.wait(timeout=60)
    assert victim.returncode == -signal.SIGKILL
    finish(reference)

    prefix = killed / "snapshots" / "tiny"
    resume_from = latest_snapshot(prefix)
    assert resume_from is not None
    resumed_at = read_solverstate(resume_from)["iter"]
    assert 0 < resumed_at < MAX_ITER and resumed_at % SNAPSHOT == 0
    assert latest_snapshot(prefix) != prefix.parent / f"tiny_iter_{MAX_ITER}.solverstate.pt"

    out = finish(child(script, killed_solver, resume=str(resume_from)))
    assert out.splitlines()[0] == f"iteration {resumed_at}"
    assert out.splitlines()[-1] == f"done {MAX_ITER}"

    final = f"_iter_{MAX_ITER}"
    got = read_weights(killed / "snapshots" / f"tiny{final}.caffemodel")
    want = read_weights(whole / "snapshots" / f"tiny{final}.caffemodel")
    assert list(got) == list(want) == ["conv1", "score"]
    for layer in want:
        for a, b in zip(got[layer], want[layer]):
            assert np.array_equal(a, b), layer
    start = read_weights(killed / "snapshots" / f"tiny_iter_{resumed_at}.caffemodel")
    assert not np.array_equal(start["score"][0], want["score"][0])   # training did move them
    got_state = read_solverstate(killed / "snapshots" / f"tiny{final}.solverstate.pt")
    want_state = read_solverstate(whole / "snapshots" / f"tiny{final}.solverstate.pt")
    for a, b in zip(got_state["history"], want_state["history"]):
        assert torch.equal(a, b)
    assert got_state["data"] == want_state["data"]
    assert got_state["loss_window"] == want_state["loss_window"]

"""Multi-process training (``reproduce.training.distributed``) against its single-process definition.

The equivalence, exactly: two processes (``torchrun``, gloo, CPU) running ``stage fcn32s``
for 4 iterations — stopped after iteration 2 and resumed from that snapshot — end with
bit-for-bit the parameters of ONE process that, at every iteration t,

* computes for r = 0 and r = 1 the gradient g_t^r of the loss on the sample that the
  reference data layer with seed 1337 + r draws at position t, with dropout masks from
  the generator seeded with random_seed + r (1337 + r; the fillers drew from it first),
* sets the diff of every parameter to (g_t^0 + g_t^1) · ½ in float32 — Caffe's NCCL
  ``ncclAllReduce(sum)`` then ``caffe_gpu_scal(1 / solver_count)`` —
* and applies Caffe's SGD update once (weight decay, momentum 0.99, lr) to the one set of
  parameters both ranks share (rank 0's after the initial broadcast).

Also: the distributed seg_tests (sharded over the ranks, histograms all-reduced) give what a
single process scores with the final weights, and the snapshot carries both ranks' streams.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from reproduce.weights.convert import load_weights
from reproduce.solver.snapshot import read_solverstate

f32 = np.float32
ITERS = 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONHASHSEED="0")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
               f"--master_addr=127.0.0.1", f"--master_port={free_port()}", "-m", "reproduce", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from reproduce.data import make_synthetic_dataset

    return make_synthetic_dataset(tmp_path_factory.mktemp("dist-data"), 4, 2, seed=5)


def reference_run(run_dir: Path, data, init: Path):
    """The single process of the module docstring, built from the prototxts the stage wrote."""
    from reproduce.caffe import read_net, read_solver
    from reproduce.solver import SGDSolver
    from reproduce.training.stages import StageOptions, initialize, point_data_layer

    rank0 = SGDSolver(run_dir / "solver.prototxt")
    param = read_solver(run_dir / "solver.prototxt")
    param.clear("train_net")
    param.clear("test_net")
    param.train_net_param = point_data_layer(read_net(run_dir / "train.prototxt"), data.sbdd_dir, seed_offset=1)
    param.test_net_param = [read_net(run_dir / "val.prototxt")]
    param.random_seed = param.random_seed + 1
    param.snapshot = 0
    param.clear("snapshot_prefix")
    rank1 = SGDSolver(param)
    for solver in (rank0, rank1):
        solver.test_nets  # noqa: B018 — built where the stage builds them
    initialize(rank0, StageOptions("fcn32s", init, data.sbdd_dir, data.voc_dir, widths="tiny"),
               log=lambda line: None)
    rank1.net.copy_from(rank0.weights())                       # the broadcast from rank 0
    drawn = ([], [])
    grads_differ = False
    for _ in range(ITERS):
        for r, solver in enumerate((rank0, rank1)):
            solver.clear_param_diffs()
            source = next(iter(solver.feeder.sources.values()))
            drawn[r].append(source.peek())
            solver.net(**solver.feeder.next())
            solver.net.backward()
        for p0, p1 in zip(rank0.learnable_parameters, rank1.learnable_parameters):
            if p0.grad is None:
                continue
            grads_differ = grads_differ or not torch.equal(p0.grad, p1.grad)
            p0.grad = (p0.grad + p1.grad) * float(f32(1) / f32(2))
        rank0.apply_update()
        rank1.net.copy_from(rank0.weights())
    return rank0, drawn, grads_differ


def test_two_processes_equal_one_process_averaging_both_streams(golden, data, tmp_path):
    init = golden / "vgg16-v1" / "weights.caffemodel"
    project = Path(__file__).resolve().parents[1]
    common = ["stage", "fcn32s", "--init", str(init), "--sbd-dir", str(data.sbdd_dir), "--voc-dir",
              str(data.voc_dir), "--runs", str(tmp_path / "runs"), "--widths", "tiny", "--device", "cpu",
              "--base-lr", "1e-9", "--test-interval", "2", "--snapshot", "2", "--display", "1", "--quiet"]
    first = torchrun(common + ["--max-iter", "2"], project)
    assert first.returncode == 0, first.stderr[-3000:]
    second = torchrun(common + ["--max-iter", str(ITERS)], project)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming from" in second.stdout and "iteration 2" in second.stdout
    run_dir = tmp_path / "runs" / "fcn32s"

    state = read_solverstate(run_dir / "snapshot" / "train_iter_2.solverstate.pt")
    assert state["world_size"] == 2 and len(state["ranks"]) == 2
    streams = [next(iter(rank["data"].values()))["sampler"] for rank in state["ranks"]]
    assert streams[0] != streams[1]                            # seed 1337 vs 1338

    threads = torch.get_num_threads()
    torch.set_num_threads(1)            # as the ranks (torchrun sets OMP_NUM_THREADS=1)
    try:
        reference, drawn, grads_differ = reference_run(run_dir, data, init)
    finally:
        torch.set_num_threads(threads)
    assert drawn[0] != drawn[1] and grads_differ               # two different streams were averaged
    got = load_weights(run_dir / "final.caffemodel")
    want = reference.weights()
    assert list(got) == list(want)
    for layer in want:
        for i, (g, w) in enumerate(zip(got[layer], want[layer])):
            np.testing.assert_array_equal(g, w, err_msg=f"{layer} blob {i}")

    # seg_tests: sharded over both ranks, all-reduced = one process over all images
    from reproduce.data import VOCSegmentation
    from reproduce.evaluation.evaluate import evaluate
    from reproduce.training.stagelog import read_records

    single = evaluate(reference.test_nets[0], VOCSegmentation(data.voc_dir, "seg11valid"), progress=False)
    logged = [r for r in read_records(run_dir / "log.jsonl") if r["kind"] == "test"]
    assert [r["iter"] for r in logged] == [2, ITERS]
    assert logged[-1]["mean_iu"] == pytest.approx(single.mean_iu, abs=0, rel=0)
    assert logged[-1]["loss"] == pytest.approx(single.loss, rel=1e-6)
    # only rank 0 wrote: one row per displayed iteration, no duplicates from rank 1
    assert [r["iter"] for r in read_records(run_dir / "log.jsonl") if r["kind"] == "train"] == list(range(ITERS))


TINY_NET = """
name: "tiny"
layer { name: "input" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 1 dim: 2 dim: 5 dim: 5 } shape { dim: 1 dim: 1 dim: 5 dim: 5 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "score"
        convolution_param { num_output: 3 kernel_size: 3 pad: 1 weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss"
        loss_param { normalize: false } }
"""
TINY_SOLVER = 'train_net: "train.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\nmomentum: 0.9\n' \
              'max_iter: 5\ndisplay: 0\nrandom_seed: 3\n'


def _diverging_rank_worker(rank: int, port: int, run_dir: str, nan_rank: int, nan_iter: int) -> None:
    import json

    import torch.distributed as dist

    from reproduce.training.distributed import DistributedSGDSolver, broadcast_parameters
    from reproduce.solver import NonFiniteLossError

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    from datetime import timedelta

    # a rank left waiting in a collective fails the test within a minute instead of hanging it
    dist.init_process_group("gloo", rank=rank, world_size=2, timeout=timedelta(seconds=60))
    solver = DistributedSGDSolver(Path(run_dir) / "solver.prototxt")
    broadcast_parameters(solver.net)
    rng = np.random.default_rng(rank)

    def feed():
        data = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
        if rank == nan_rank and solver.iter == nan_iter:
            data[0, 0, 0, 0] = np.nan
        return {"data": data, "label": rng.integers(0, 3, (1, 1, 5, 5)).astype(np.float32)}

    stopped = None
    try:
        solver.step(4, feed=feed)
    except NonFiniteLossError:
        stopped = solver.iter
    params = [p.detach().numpy().tolist() for p in solver.learnable_parameters]
    Path(run_dir, f"rank{rank}.json").write_text(json.dumps({"stopped": stopped, "params": params}))
    dist.destroy_process_group()


@pytest.mark.parametrize("nan_rank", [None, 1])
def test_a_diverging_rank_stops_every_rank_at_the_same_iteration(tmp_path, nan_rank):
    """Rank 1's loss turns NaN at iteration 2: both ranks raise there, with the parameters of
    iteration 2 (no update from the NaN gradient, no rank left waiting in an all-reduce).
    Without NaN both ranks run all 4 iterations and end with identical parameters (averaged
    gradients)."""
    import json

    import torch.multiprocessing as mp

    (tmp_path / "train.prototxt").write_text(TINY_NET)
    (tmp_path / "solver.prototxt").write_text(TINY_SOLVER)
    mp.spawn(_diverging_rank_worker, args=(free_port(), str(tmp_path), nan_rank, 2), nprocs=2,
             join=True)
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["stopped"] for r in results] == ([None, None] if nan_rank is None else [2, 2])
    assert results[0]["params"] == results[1]["params"]
    assert np.all(np.isfinite(np.asarray(results[0]["params"][0])))

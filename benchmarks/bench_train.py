"""Benchmark: one training iteration of full-width FCN-8s at SBD image size on the CPU, and data loading.

Method
------
* A small SBD-layout dataset of generated 500×375 images (``make_synthetic_dataset``) in a
  temporary folder; the FCN-8s ``train`` description from ``reproduce.models`` with its
  reference Python data layer pointed at it; the reference FCN-8s solver (momentum 0.99,
  weight decay 5e-4, unnormalized loss). Weights: zero-initialised as the net description
  leaves them before surgery (the cost of a convolution does not depend on its values).
* ``SGDSolver.step(1)`` is timed ``--iters`` times after one warm-up iteration (best and
  median wall time). The time the training loop waits for its next sample (the feeder's
  ``next``: with the background prefetch, only what is not hidden behind compute) is timed
  separately, and so is one synchronous ``load`` of a sample (JPEG decode, BGR, mean, .mat
  label) — the cost prefetching hides.
* Freed memory is kept for reuse (``reproduce.runtime.keep_freed_memory``), as the command
  line does; the net uses its defaults (constant band on).
* Forward+backward alone is ``bench_forward.py``'s figure; the difference is the update.
* The demo's stage iteration (``--widths tiny --sides 128,192 --model fcn32s|fcn16s|fcn8s``):
  the same loop on the width-reduced net ``make demo`` trains, on generated images of the
  demo's 128–192 px, with ``bench_forward.random_fcn_weights`` (bilinear upscore kernels, as
  surgery leaves them) instead of zeros; ``--threads`` fixes torch's thread count and
  ``--clock cpu`` times the calling thread's CPU time (``--threads 1``; a loaded shared
  machine delays wall time by whatever else runs).

    python benchmarks/bench_train.py [--iters 3]
    python benchmarks/bench_train.py --widths tiny --sides 128,192 --model fcn8s --iters 40 --threads 1 --clock cpu
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--model", default="fcn8s")
    parser.add_argument("--widths", default="full")
    parser.add_argument("--sides", default="375,500", help="image sides of the generated set")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.clock == "cpu" and torch.get_num_threads() != 1:
        raise SystemExit("--clock cpu times the calling thread: use it with --threads 1")
    timer = time.thread_time if args.clock == "cpu" else time.perf_counter
    sides = tuple(int(v) for v in args.sides.split(","))

    from host import describe
    from reproduce.data import make_synthetic_dataset
    from reproduce.models import net_param, solver_param
    from reproduce.runtime import keep_freed_memory
    from reproduce.solver import SGDSolver
    from reproduce.training.stages import point_data_layer

    keep_freed_memory()  # as the command line does
    with tempfile.TemporaryDirectory() as scratch:
        data = make_synthetic_dataset(Path(scratch) / "data", n_train=8, n_val=1, seed=0, sides=sides)
        solver_msg = solver_param(args.model)
        for name in ("train_net", "test_net", "snapshot_prefix"):
            solver_msg.clear(name)
        solver_msg.test_iter = []
        solver_msg.snapshot = 0
        solver_msg.train_net_param = point_data_layer(
            net_param(args.model, "train", widths=args.widths), data.sbdd_dir)
        solver = SGDSolver(solver_msg)
        if args.widths != "full":  # the demo's nets start from transplanted, non-zero weights
            from bench_forward import random_fcn_weights

            random_fcn_weights(solver.net.params)
        source = next(iter(solver.feeder.sources.values()))
        waits = []
        original_next = solver.feeder.next

        def timed_next(*a, **k):
            start = time.perf_counter()
            result = original_next(*a, **k)
            waits.append(time.perf_counter() - start)
            return result

        solver.feeder.next = timed_next
        times = []
        for _ in range(args.iters + 1):
            start = timer()
            solver.step(1)
            times.append(timer() - start)
        inner = getattr(source, "source", source)
        loads = []
        for i in range(5):
            start = time.perf_counter()
            inner.load(i % len(inner))
            loads.append(time.perf_counter() - start)
        result = {"step_best_s": min(times[1:]), "step_median_s": statistics.median(times[1:]),
                  "warmup_s": times[0], "data_wait_median_s": statistics.median(waits[1:]),
                  "sync_load_median_s": statistics.median(loads), "loss_last": float(solver.smoothed_loss),
                  "model": args.model, "widths": args.widths, "sides": list(sides),
                  "clock": args.clock, "host": describe()}
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

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

    python benchmarks/bench_train.py [--iters 3]
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
    args = parser.parse_args()

    from host import describe
    from reproduce.data import make_synthetic_dataset
    from reproduce.models import net_param, solver_param
    from reproduce.runtime import keep_freed_memory
    from reproduce.solver import SGDSolver
    from reproduce.training.stages import point_data_layer

    keep_freed_memory()  # as the command line does
    with tempfile.TemporaryDirectory() as scratch:
        data = make_synthetic_dataset(Path(scratch) / "data", n_train=8, n_val=1, seed=0, sides=(375, 500))
        solver_msg = solver_param("fcn8s")
        for name in ("train_net", "test_net", "snapshot_prefix"):
            solver_msg.clear(name)
        solver_msg.test_iter = []
        solver_msg.snapshot = 0
        solver_msg.train_net_param = point_data_layer(net_param("fcn8s", "train"), data.sbdd_dir)
        solver = SGDSolver(solver_msg)
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
            start = time.perf_counter()
            solver.step(1)
            times.append(time.perf_counter() - start)
        inner = getattr(source, "source", source)
        loads = []
        for i in range(5):
            start = time.perf_counter()
            inner.load(i % len(inner))
            loads.append(time.perf_counter() - start)
        result = {"step_best_s": min(times[1:]), "step_median_s": statistics.median(times[1:]),
                  "warmup_s": times[0], "data_wait_median_s": statistics.median(waits[1:]),
                  "sync_load_median_s": statistics.median(loads), "loss_last": float(solver.smoothed_loss),
                  "host": describe()}
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: a forward through the pycaffe shim against ``Net.forward`` on full FCN-8s.

Method
------
* The net is ``reproduce.models`` FCN-8s at full width (VGG16, 21 classes), the deploy
  description, random He-scaled weights (seed 0; upscore layers bilinear), one N(0, 50²)
  500×500 image — the net and image of ``bench_forward.py``.
* One ``caffe.Net`` (``reproduce.pycaffe``) is built from that NetParameter; the two ways
  to run it are timed on the very same object, weights and image, alternating pass by pass
  (A B A B …) in one process, so that the drift of this shared machine falls on both:
  - ``Net.forward``: ``net.net.forward(data=image)["score"]`` (the ``reproduce.net.Net``
    underneath) under ``torch.no_grad()``, blobs kept (``keep_blobs``, the default and what
    the shim holds too);
  - ``shim``: pycaffe's idiom — ``net.blobs["data"].data[...] = image`` then
    ``net.forward()["score"]`` (a numpy array).
* ``--rounds`` fresh processes, each: build, one warm-up pass of each, then ``--repeat``
  timed pairs (``time.perf_counter``). Reported: best and median per way over all passes,
  and the median of the per-pair ratio shim / Net.forward (the figure the target is on:
  ≤ 1.05). The two scores are compared too (they must be equal: the same modules run).
* Threads: torch's default (one per core).

    python benchmarks/bench_pycaffe.py [--repeat 4] [--rounds 3] [--size 500]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

TARGET_RATIO = 1.05


def build(size: int):
    import reproduce.pycaffe as caffe
    from bench_forward import random_fcn_weights
    from reproduce.models import net_param

    param = net_param("fcn8s", "deploy", num_classes=21, widths="full")
    for layer in param.layer:
        if layer.type == "Input":
            layer.input_param.shape[0].dim = [1, 3, size, size]
    net = caffe.Net(param, caffe.TEST)
    random_fcn_weights(net.net.params)   # the same weights as bench_forward's
    return net


def child(repeat: int, size: int) -> dict:
    import numpy as np
    import torch

    from reproduce.runtime import keep_freed_memory

    keep_freed_memory()
    net = build(size)
    image = (torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1)) * 50).numpy()

    def plain():
        with torch.no_grad():
            return net.net.forward(data=image)["score"].numpy()

    def shim():
        net.blobs["data"].data[...] = image
        return net.forward()["score"]

    a, b = plain().copy(), shim().copy()          # warm-up, and the scores compared
    times = {"net": [], "shim": []}
    for i in range(repeat):
        order = (("net", plain), ("shim", shim)) if i % 2 == 0 else (("shim", shim), ("net", plain))
        for name, run in order:
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {"times": times, "score_max_abs_diff": float(np.abs(a - b).max()),
            "score_max_abs": float(np.abs(a).max())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=500)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.repeat, args.size)))
        return 0
    from host import describe

    print(f"machine: {describe()}", flush=True)
    net, shim, ratios, diffs = [], [], [], []
    for _ in range(args.rounds):
        out = subprocess.run([sys.executable, __file__, "--child", "--repeat", str(args.repeat),
                              "--size", str(args.size)], capture_output=True, text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        net += result["times"]["net"]
        shim += result["times"]["shim"]
        ratios += [s / n for s, n in zip(result["times"]["shim"], result["times"]["net"])]
        diffs.append(result["score_max_abs_diff"] / result["score_max_abs"])
    ratio = statistics.median(ratios)
    print(f"Net.forward  best {min(net):.3f} s  median {statistics.median(net):.3f} s")
    print(f"pycaffe shim best {min(shim):.3f} s  median {statistics.median(shim):.3f} s")
    print(f"shim / Net.forward per pair: median {ratio:.4f} (min {min(ratios):.4f}, max "
          f"{max(ratios):.4f}; {len(ratios)} pairs); target <= {TARGET_RATIO}")
    print(f"best-to-best {min(shim) / min(net):.4f}; score difference (relative) {max(diffs):.1e}")
    print(json.dumps({"net_s": net, "shim_s": shim, "ratios": ratios}))
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: forward time against input size, ours and three peers, interleaved pass by pass.

Method
------
* Nets: ``reproduce.models`` FCN-8s deploy at ``--widths`` — ``full`` (VGG16, 134M
  parameters) and ``tiny`` (the golden fixtures' widths: 64→4, 128→8, 256→8, 512→16,
  4096→32) — with ``bench_forward.random_fcn_weights`` (He-scaled normal, seed 0, bilinear
  upscore kernels). Inputs N(0, 50²), 1×3×H×W, seed 1.
* Runtimes, all loaded in one process per width, on the same weights:
  ``ours`` — ``Net.forward`` as a user gets it (``no_grad``, ``keep_blobs = False``,
  ``keep_freed_memory``, defaults); ``plain`` — ``plain_fcn.PlainFCN8s``, a hand
  transcription in plain ``torch.nn`` (NCHW, every pixel, no plans) under ``no_grad``;
  ``opencv`` — OpenCV's own Caffe importer (``cv2.dnn.readNetFromCaffe``) on the prototxt and
  caffemodel we write; ``onnxruntime`` — the CPU provider on our own ``reproduce.export.to_onnx``
  export (dynamic H×W, all graph optimizations).
* Threads: ``--threads`` (2) everywhere — ``torch.set_num_threads``, ``cv2.setNumThreads``,
  onnxruntime ``intra_op_num_threads`` with one inter-op thread. onnxruntime's workers do
  not spin-wait between passes (``session.intra_op.allow_spinning = 0``; ``--ort-spinning``
  keeps its default): a spinning worker holds a core after its own pass returns, and the
  runtime that runs next in the round pays for it (2 threads under SCHED_FIFO, tiny 64×80:
  our pass 32.9 ms beside a spinning onnxruntime session, 4.7 ms beside one that does not
  spin — BENCHMARKS.md, "Two threads, wall time").
* Per size: each runtime runs warm-up passes (its first pass at a new size plans, allocates
  and tunes), then ``repeat`` rounds; each round runs every runtime once, in an order
  shuffled round by round (seeded), so that passes compared are seconds apart on a machine
  whose load drifts, and no runtime always runs right after the same other one (a rotated
  order put ours after onnxruntime in every round: a pass right after another runtime's
  pays for that runtime's threads winding down — identical passes of ours measured 1.2–1.8×
  apart, depending on which came after onnxruntime; BENCHMARKS.md, "Small inputs").
  Reported: each runtime's median and best pass, and for each peer the median over rounds of
  (peer's pass / ours in the same round) with its spread — the figure the targets are read
  on. ``repeat`` falls with the cost of a pass (``--budget`` seconds per runtime and size,
  at least 3 rounds, at most 40) so the sweep stays affordable on a loaded 2-core machine.
* Each peer's score against ours: max |Δ| / max |score| (must be float32 rounding).
* The load average is recorded before each size (other people's work counts there).
* ``--clock cpu`` times each pass by the CPU time of the calling thread
  (``time.thread_time``) instead of wall time; only with ``--threads 1``, where every runtime
  computes on the calling thread. On a shared machine whose load exceeds its cores, a pass's
  wall time mostly measures how long the scheduler kept it waiting; its CPU time does not.

    python benchmarks/bench_sizes.py [--quick] [--widths tiny,full] [--json out.json] [--plot out.png]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

RUNTIMES = ("ours", "plain", "opencv", "onnxruntime")
# not run unless named in --runtimes: ours with the one-thread rule for small passes off
# (reproduce.net.threads.SMALL_PASS_MACS = 0), to measure that rule interleaved with ours
OPTIONAL_RUNTIMES = ("ours-all-threads",)
# (height, width); 375×500 is the VOC/SBD shape, 64×80 the golden fixtures' size
SIZES = {"tiny": [(32, 32), (64, 80), (128, 128), (224, 224), (375, 500), (500, 500), (1000, 1000)],
         # full width at 1000×1000: give --sizes (each runtime holds several GB there)
         "full": [(32, 32), (64, 80), (128, 128), (224, 224), (375, 500), (500, 500)]}
QUICK_SIZES = {"tiny": [(32, 32), (64, 80), (224, 224), (500, 500)],
               "full": [(64, 80), (224, 224), (500, 500)]}


def build(widths: str):
    from bench_forward import random_fcn_weights
    from reproduce.models import net_param
    from reproduce.net import Net

    net = Net(net_param("fcn8s", "deploy", num_classes=21, widths=widths), phase="test")
    random_fcn_weights(net.params)
    net.keep_blobs = False
    return net


def load_runtimes(widths: str, threads: int, scratch: Path, names,
                  ort_spinning: bool = False) -> dict:
    import torch

    from reproduce.caffe import emit, write_caffemodel
    from reproduce.models import net_param
    from reproduce.runtime import keep_freed_memory

    torch.set_num_threads(threads)
    keep_freed_memory()
    net = build(widths)
    runs = {}
    if "ours" in names:
        def ours(x):
            with torch.no_grad():
                return net.forward(data=x)["score"].numpy()
        runs["ours"] = ours
    if "ours-all-threads" in names:
        from reproduce.net import threads as pass_threads

        def ours_all_threads(x):
            rule, pass_threads.SMALL_PASS_MACS = pass_threads.SMALL_PASS_MACS, 0
            try:
                with torch.no_grad():
                    return net.forward(data=x)["score"].numpy()
            finally:
                pass_threads.SMALL_PASS_MACS = rule
        runs["ours-all-threads"] = ours_all_threads
    if "plain" in names:
        from plain_fcn import PlainFCN8s

        plain = PlainFCN8s({k: [b.detach() for b in v] for k, v in net.params.items()}).eval()

        def plain_run(x):
            with torch.no_grad():
                return plain(x).numpy()
        runs["plain"] = plain_run
    if "opencv" in names:
        import cv2

        param = net_param("fcn8s", "deploy", num_classes=21, widths=widths)
        (scratch / "deploy.prototxt").write_text(emit(param))
        write_caffemodel(scratch / "fcn8s.caffemodel", net.weights_dict(), param)
        cv2.setNumThreads(threads)
        dnn = cv2.dnn.readNetFromCaffe(str(scratch / "deploy.prototxt"),
                                       str(scratch / "fcn8s.caffemodel"))

        def opencv(x):
            dnn.setInput(x.numpy(), "data")
            return dnn.forward("score")
        runs["opencv"] = opencv
    if "onnxruntime" in names:
        import onnxruntime as ort

        from reproduce import export

        export.to_onnx(net, scratch / "fcn8s.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        if not ort_spinning:  # see the module docstring
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(scratch / "fcn8s.onnx"), options,
                                       providers=["CPUExecutionProvider"])

        def onnx(x):
            return session.run(None, {"data": x.numpy()})[0]
        runs["onnxruntime"] = onnx
    return runs


def sweep(widths: str, sizes, threads: int, budget: float, names, clock: str = "wall",
          ort_spinning: bool = False) -> dict:
    import numpy as np
    import torch

    timer = time.thread_time if clock == "cpu" else time.perf_counter
    with tempfile.TemporaryDirectory() as tmp:
        runs = load_runtimes(widths, threads, Path(tmp), names, ort_spinning)
        order = [n for n in RUNTIMES + OPTIONAL_RUNTIMES if n in runs]
        results = []
        for height, width in sizes:
            load = os.getloadavg()[0]
            x = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(1)) * 50
            scores, first = {}, {}
            for name in order:  # warm-up: a new size plans, allocates, tunes
                start = timer()
                scores[name] = np.asarray(runs[name](x))
                first[name] = timer() - start
                runs[name](x)
            scale = float(np.abs(scores["ours"]).max()) if "ours" in scores else 1.0
            deviation = {n: float(np.abs(scores[n] - scores["ours"]).max()) / scale
                         for n in order if n != "ours" and "ours" in scores}
            estimate = max(max(first.values()), 1e-4)
            repeat = max(3, min(40, int(budget / estimate)))
            times = {n: [] for n in order}
            shuffle = random.Random(height * 100_003 + width).shuffle
            for r in range(repeat):
                round_order = list(order)
                shuffle(round_order)
                for name in round_order:
                    start = timer()
                    runs[name](x)
                    times[name].append(timer() - start)
            row = {"height": height, "width": width, "repeat": repeat, "load_average": load,
                   "median_s": {n: statistics.median(t) for n, t in times.items()},
                   "best_s": {n: min(t) for n, t in times.items()},
                   "first_pass_s": first, "deviation_from_ours": deviation}
            if "ours" in times:
                row["ratio_vs_ours"] = {}
                for name in order:
                    if name == "ours":
                        continue
                    ratios = sorted(p / o for p, o in zip(times[name], times["ours"]))
                    row["ratio_vs_ours"][name] = {"median": statistics.median(ratios),
                                                  "min": ratios[0], "max": ratios[-1]}
            results.append(row)
            print(f"{widths} {height}x{width} (load {load:.1f}, {repeat} rounds): "
                  + "  ".join(f"{n} {row['median_s'][n] * 1e3:.1f} ms" for n in order)
                  + ("  | peer/ours " + " ".join(f"{n} {v['median']:.2f}"
                                               for n, v in row.get("ratio_vs_ours", {}).items())),
                  file=sys.stderr, flush=True)
        return {"widths": widths, "threads": threads, "clock": clock,
                "ort_spinning": ort_spinning, "sizes": results}


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweeps = summary["sweeps"]
    fig, axes = plt.subplots(2, len(sweeps), figsize=(6 * len(sweeps), 8), squeeze=False)
    styles = {"ours": "o-", "plain": "s--", "opencv": "^--", "onnxruntime": "d--"}
    for column, run in enumerate(sweeps):
        rows = run["sizes"]
        pixels = [r["height"] * r["width"] for r in rows]
        top, bottom = axes[0][column], axes[1][column]
        for name in rows[0]["median_s"]:
            top.plot(pixels, [r["median_s"][name] * 1e3 for r in rows], styles.get(name, "x-"),
                     label=name)
            if name != "ours" and "ratio_vs_ours" in rows[0]:
                bottom.plot(pixels, [r["ratio_vs_ours"][name]["median"] for r in rows],
                            styles.get(name, "x-"), label=f"{name} / ours")
        for ax in (top, bottom):
            ax.set_xscale("log")
            ax.set_xticks(pixels)
            ax.set_xticklabels([f"{r['height']}×{r['width']}" for r in rows], rotation=45,
                               fontsize=8)
            ax.minorticks_off()
            ax.grid(True, alpha=0.3)
        top.set_yscale("log")
        top.set_ylabel(f"forward, median pass (ms, {run.get('clock', 'wall')} time)")
        top.set_title(f"FCN-8s, {run['widths']} widths, {run['threads']} thread(s)")
        bottom.axhline(1.0, color="k", lw=0.8)
        bottom.set_ylabel("peer time / our time (median of rounds)\n> 1: we are faster")
        top.legend(fontsize=8)
        bottom.legend(fontsize=8)
    fig.suptitle(summary["host"], fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", default="tiny,full")
    parser.add_argument("--quick", action="store_true", help="fewer sizes and rounds")
    parser.add_argument("--sizes", help="HxW,HxW,… (overrides the presets)")
    parser.add_argument("--runtimes", default=",".join(RUNTIMES),
                        help=f"comma-separated, of {', '.join(RUNTIMES + OPTIONAL_RUNTIMES)} "
                             "(ours-all-threads: ours without the one-thread rule for small "
                             "passes)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds of timed passes per runtime and size (default 3, quick 1)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: the calling thread's CPU time (needs --threads 1)")
    parser.add_argument("--ort-spinning", action="store_true",
                        help="leave onnxruntime's workers spinning between passes (its default)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--plot", type=Path, help="write the cost curves here (PNG)")
    parser.add_argument("--from-json", type=Path, nargs="+", metavar="JSON",
                        help="plot (--plot) and tabulate earlier --json results instead of running")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.from_json:
        loaded = [json.loads(path.read_text()) for path in args.from_json]
        summary = {"host": loaded[0]["host"], "sweeps": [s for d in loaded for s in d["sweeps"]]}
        if args.plot:
            plot(summary, args.plot)
        table(summary)
        return 0
    budget = args.budget if args.budget is not None else (1.0 if args.quick else 3.0)
    names = args.runtimes.split(",")
    unknown = set(names) - set(RUNTIMES + OPTIONAL_RUNTIMES)
    if unknown:
        raise SystemExit(f"unknown runtime(s) {sorted(unknown)}; "
                         f"choose from {list(RUNTIMES + OPTIONAL_RUNTIMES)}")
    if args.clock == "cpu" and args.threads != 1:
        raise SystemExit("--clock cpu times the calling thread: use it with --threads 1")
    if args.child:
        widths = args.child
        if args.sizes:
            sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
        else:
            sizes = (QUICK_SIZES if args.quick else SIZES)[widths]
        print(json.dumps(sweep(widths, sizes, args.threads, budget, names, args.clock,
                               args.ort_spinning)))
        return 0
    import torch

    from host import describe

    torch.set_num_threads(args.threads)  # so that the host line states the sweep's threads
    host = describe()
    print(f"machine: {host}", file=sys.stderr, flush=True)
    sweeps = []
    for widths in args.widths.split(","):  # one process per width: the full net is 538 MB a copy
        command = [sys.executable, __file__, "--child", widths, "--threads", str(args.threads),
                   "--budget", str(budget), "--runtimes", args.runtimes, "--clock", args.clock]
        if args.quick:
            command.append("--quick")
        if args.ort_spinning:
            command.append("--ort-spinning")
        if args.sizes:
            command += ["--sizes", args.sizes]
        out = subprocess.run(command, stdout=subprocess.PIPE, text=True)
        if out.returncode:
            raise SystemExit(f"the {widths} sweep failed (exit {out.returncode})")
        sweeps.append(json.loads(out.stdout.strip().splitlines()[-1]))
    summary = {"host": host, "load_average_end": os.getloadavg()[0], "sweeps": sweeps}
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    if args.plot:
        plot(summary, args.plot)
        print(f"plot: {args.plot}", file=sys.stderr)
    table(summary)
    return 0


def table(summary: dict) -> None:
    for run in summary["sweeps"]:
        for row in run["sizes"]:
            ratios = row.get("ratio_vs_ours", {})
            print(f"| {run['widths']} | {row['height']}×{row['width']} | {row['load_average']:.1f} | "
                  + " | ".join(f"{row['median_s'][n] * 1e3:.1f}" for n in row["median_s"]) + " | "
                  + " | ".join(f"{v['median']:.2f}" for v in ratios.values()) + " |")


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: the exported full-width FCN-8s (500×500, CPU, 2 threads) against our own forward.

Method
------
* The net is ``reproduce.models`` FCN-8s at full width (VGG16, 21 classes, 134M parameters)
  with ``bench_forward.build``'s random weights (He-scaled normal, seed 0; upscore layers
  bilinear); the image is N(0, 50²), 1×3×500×500, seed 1.
* Export (one fresh process, timed with ``time.perf_counter``): ``to_exported_program`` +
  ``save_exported_program`` (the ``.pt2``), and ``to_onnx`` from scratch (its own
  ``torch.export`` included, opset 18, dynamic batch/height/width); also a caffemodel and
  deploy prototxt of the same weights for OpenCV's Caffe importer.
* Runtimes, each in its own fresh process, ``--rounds`` processes each, interleaved round by
  round: load, one warm-up pass, ``--repeat`` timed passes; best and median over all timed
  passes (and the process's CPU time per pass, user + system, which a busy shared machine
  disturbs less than wall time), and the process's peak RSS:
  ``reproduce`` — ``FCN8s``-equivalent ``Net`` forward as a user gets it (``no_grad``,
  ``keep_blobs = False``, ``keep_freed_memory``, the default layout and constant band);
  ``pt2`` — ``torch.export.load(...).module()(data=x)``;
  ``onnxruntime`` — an ``InferenceSession`` on the ``.onnx`` (CPU provider, all graph
  optimizations);
  ``opencv_caffe`` — ``cv2.dnn.readNetFromCaffe`` on the prototxt and caffemodel (OpenCV's
  own Caffe importer, its default backend).
* Threads: 2 everywhere (``torch.set_num_threads``, onnxruntime ``intra_op_num_threads`` with
  one inter-op thread, ``cv2.setNumThreads``).
* ``paired``: our forward, the ``.pt2`` program and onnxruntime loaded in one process and run
  one pass each in turn (``--repeat`` turns after a warm-up turn); the median over turns of
  each one's time over ours. A shared machine's load drifts over minutes; passes seconds
  apart see nearly the same load, so these ratios are the steadier ones.
* Each runtime's score against ``reproduce``'s: max |Δscore| / max |score|.

    python benchmarks/bench_export.py [--repeat 3] [--rounds 1] [--runtimes reproduce,pt2,onnxruntime,opencv_caffe]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

THREADS = 2
RUNTIMES = ("reproduce", "pt2", "onnxruntime", "opencv_caffe", "paired")
TARGETS = {"onnxruntime_vs_reproduce": 1.25, "onnxruntime_vs_opencv_caffe": 1.0}


def image():
    import torch

    return torch.randn(1, 3, 500, 500, generator=torch.Generator().manual_seed(1)) * 50


def prepare(scratch: Path) -> dict:
    import torch

    from bench_forward import build
    from reproduce import export
    from reproduce.caffe import emit, write_caffemodel
    from reproduce.models import net_param

    torch.set_num_threads(THREADS)
    net = build("deploy")
    times = {}
    start = time.perf_counter()
    program = export.to_exported_program(net)
    times["torch_export_s"] = time.perf_counter() - start
    start = time.perf_counter()
    export.save_exported_program(program, scratch / "fcn8s.pt2")
    times["save_pt2_s"] = time.perf_counter() - start
    start = time.perf_counter()
    export.to_onnx(net, scratch / "fcn8s.onnx")
    times["to_onnx_s"] = time.perf_counter() - start
    param = net_param("fcn8s", "deploy", num_classes=21, widths="full")
    (scratch / "deploy.prototxt").write_text(emit(param))
    write_caffemodel(scratch / "fcn8s.caffemodel", net.weights_dict(), param)
    sizes = {name: (scratch / name).stat().st_size / 2**20
             for name in ("fcn8s.pt2", "fcn8s.onnx", "fcn8s.caffemodel")}
    return {**times, "file_mib": sizes}


def measure(runtime: str, repeat: int, scratch: Path) -> dict:
    import numpy as np
    import torch

    from reproduce.runtime import keep_freed_memory

    torch.set_num_threads(THREADS)
    keep_freed_memory()
    x = image()
    if runtime == "paired":
        return paired(repeat, scratch)
    if runtime == "reproduce":
        from bench_forward import build

        net = build("deploy")
        net.keep_blobs = False

        def run():
            with torch.no_grad():
                return net.forward(data=x)["score"].numpy()
    elif runtime == "pt2":
        module = torch.export.load(scratch / "fcn8s.pt2").module()

        def run():
            with torch.no_grad():
                return module(data=x)["score"].numpy()
    elif runtime == "onnxruntime":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = THREADS, 1
        session = ort.InferenceSession(str(scratch / "fcn8s.onnx"), options,
                                       providers=["CPUExecutionProvider"])
        feed = {"data": x.numpy()}

        def run():
            return session.run(None, feed)[0]
    elif runtime == "opencv_caffe":
        import cv2

        cv2.setNumThreads(THREADS)
        dnn = cv2.dnn.readNetFromCaffe(str(scratch / "deploy.prototxt"),
                                       str(scratch / "fcn8s.caffemodel"))
        blob = x.numpy()

        def run():
            dnn.setInput(blob, "data")
            return dnn.forward("score")
    else:
        raise SystemExit(f"unknown runtime {runtime!r}")
    times, cpu = [], []
    for _ in range(repeat + 1):
        usage = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        score = run()
        times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu.append(after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime)
    np.save(scratch / f"score_{runtime}.npy", score)
    timed = times[1:]
    return {"runtime": runtime, "best_s": min(timed), "median_s": statistics.median(timed),
            "times_s": timed, "cpu_s": cpu[1:], "warmup_s": times[0],
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def paired(repeat: int, scratch: Path) -> dict:
    """Our forward, the .pt2 program and onnxruntime in one process, one pass of each in
    turn: the ratios of passes run seconds apart, which a drifting shared machine disturbs
    least."""
    import statistics

    import torch
    import onnxruntime as ort

    from bench_forward import build

    net = build("deploy")
    net.keep_blobs = False
    module = torch.export.load(scratch / "fcn8s.pt2").module()
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = THREADS, 1
    session = ort.InferenceSession(str(scratch / "fcn8s.onnx"), options,
                                   providers=["CPUExecutionProvider"])
    x = image()
    runs = {"reproduce": lambda: net.forward(data=x), "pt2": lambda: module(data=x),
            "onnxruntime": lambda: session.run(None, {"data": x.numpy()})}
    times: dict[str, list[float]] = {name: [] for name in runs}
    with torch.no_grad():
        for i in range(repeat + 1):
            for name, run in runs.items():
                start = time.perf_counter()
                run()
                if i:
                    times[name].append(time.perf_counter() - start)
    ratios = {f"{name}_vs_reproduce": statistics.median(
        t / r for t, r in zip(times[name], times["reproduce"])) for name in ("pt2", "onnxruntime")}
    return {"runtime": "paired", "times_s": times, "median_ratios": ratios,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def child(args_list: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args_list], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{args_list[:2]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed passes per process")
    parser.add_argument("--rounds", type=int, default=1, help="processes per runtime, interleaved")
    parser.add_argument("--runtimes", default=",".join(RUNTIMES))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("WHAT", "SCRATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        what, scratch = args.child
        result = prepare(Path(scratch)) if what == "prepare" else measure(what, args.repeat, Path(scratch))
        print(json.dumps(result))
        return 0
    runtimes = args.runtimes.split(",")
    unknown = [r for r in runtimes if r not in RUNTIMES]
    if unknown:
        raise SystemExit(f"unknown runtime(s) {unknown}; choose from {list(RUNTIMES)}")
    from host import describe

    host = describe()
    print(f"machine: {host}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        exported = child(["--child", "prepare", str(scratch)])
        print(f"export: torch.export {exported['torch_export_s']:.1f} s, save .pt2 "
              f"{exported['save_pt2_s']:.1f} s, to_onnx (its own torch.export included) "
              f"{exported['to_onnx_s']:.1f} s; files (MiB) {exported['file_mib']}",
              file=sys.stderr, flush=True)
        runs: dict[str, list[dict]] = {r: [] for r in runtimes}
        for _ in range(args.rounds):
            for runtime in runtimes:
                runs[runtime].append(child(["--child", runtime, str(scratch),
                                            "--repeat", str(args.repeat)]))
        pairs = runs.pop("paired", [])
        runtimes = [r for r in runtimes if r != "paired"]
        paired_ratios = {}
        if pairs:
            for key in pairs[0]["median_ratios"]:
                values = [p["median_ratios"][key] for p in pairs]
                paired_ratios[key] = statistics.median(values)
            print(f"paired (one process, passes in turn): median ratios {paired_ratios}; "
                  f"times {[p['times_s'] for p in pairs]}", file=sys.stderr, flush=True)
        import numpy as np

        results = {}
        base = scratch / "score_reproduce.npy"
        for runtime in runtimes:
            times = [t for run in runs[runtime] for t in run["times_s"]]
            cpu = [t for run in runs[runtime] for t in run["cpu_s"]]
            merged = {"best_s": min(times), "median_s": statistics.median(times), "times_s": times,
                      "cpu_best_s": min(cpu), "cpu_median_s": statistics.median(cpu),
                      "peak_rss_gb": max(run["peak_rss_gb"] for run in runs[runtime])}
            if base.exists():
                a, b = np.load(base), np.load(scratch / f"score_{runtime}.npy")
                merged["score_rel_deviation"] = float(np.abs(a - b).max() / np.abs(a).max())
            results[runtime] = merged
            print(f"{runtime:<13} best {merged['best_s']:.2f} s  median {merged['median_s']:.2f} s  "
                  f"(CPU time best {merged['cpu_best_s']:.2f} s)  "
                  f"peak {merged['peak_rss_gb']:.2f} GB  deviation "
                  f"{merged.get('score_rel_deviation', float('nan')):.1e}", file=sys.stderr,
                  flush=True)
    ratios = {}
    if "reproduce" in results:
        for runtime in runtimes:
            ratios[f"{runtime}_vs_reproduce"] = results[runtime]["best_s"] / results["reproduce"]["best_s"]
    if "opencv_caffe" in results and "onnxruntime" in results:
        ratios["onnxruntime_vs_opencv_caffe"] = (results["onnxruntime"]["best_s"]
                                                 / results["opencv_caffe"]["best_s"])
    summary = {"host": host, "load_average_end": os.getloadavg()[0], "export": exported,
               "results": results, "ratios_best": ratios, "paired_median_ratios": paired_ratios,
               "paired_runs": pairs, "targets": TARGETS}
    print(json.dumps(summary, indent=1) if args.json else
          "\n".join(f"| {r} | {v['best_s']:.2f} | {v['median_s']:.2f} | {v['peak_rss_gb']:.2f} | "
                    f"{v.get('score_rel_deviation', float('nan')):.1e} |" for r, v in results.items())
          + "".join(f"\n{k}: {v:.2f}" for k, v in ratios.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

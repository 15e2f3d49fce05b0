"""Benchmark: reading a full-size FCN-8s caffemodel (~538 MB) with ``read_weights``.

Method
------
1. Build the real VGG16-based FCN-8s parameter shapes (random float32; convolutions and
   score layers with biases, the three deconvolutions without) and write them with the
   project's own ``write_caffemodel`` into a temporary directory (removed afterwards).
2. Time: ``read_weights`` once as warm-up (the page cache is then warm), then three timed
   reads; the best wall time (``time.perf_counter``) is reported. Each result is dropped
   before the next read.
3. Memory: a fresh Python subprocess imports the reader, records its resident set size
   (``/proc/self/statm``), reads the file once and reports ``ru_maxrss`` (the process's
   peak RSS) minus that baseline — the extra memory the read needed at its peak — plus the
   peak of ``tracemalloc`` (numpy reports its buffers to it) as a cross-check.

Targets: best read ≤ 0.5 s, peak extra memory ≤ 1.2 × file size.

    python benchmarks/bench_read.py [--keep DIR] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reproduce.caffe.weights import read_weights, write_caffemodel  # noqa: E402

TIME_TARGET_S = 0.5
MEMORY_TARGET = 1.2

# (layer, weight shape, has bias) of FCN-8s on VGG16, PASCAL VOC (21 classes)
FCN8S_LAYERS = [
    ("conv1_1", (64, 3, 3, 3), True), ("conv1_2", (64, 64, 3, 3), True),
    ("conv2_1", (128, 64, 3, 3), True), ("conv2_2", (128, 128, 3, 3), True),
    ("conv3_1", (256, 128, 3, 3), True), ("conv3_2", (256, 256, 3, 3), True),
    ("conv3_3", (256, 256, 3, 3), True),
    ("conv4_1", (512, 256, 3, 3), True), ("conv4_2", (512, 512, 3, 3), True),
    ("conv4_3", (512, 512, 3, 3), True),
    ("conv5_1", (512, 512, 3, 3), True), ("conv5_2", (512, 512, 3, 3), True),
    ("conv5_3", (512, 512, 3, 3), True),
    ("fc6", (4096, 512, 7, 7), True), ("fc7", (4096, 4096, 1, 1), True),
    ("score_fr", (21, 4096, 1, 1), True), ("upscore2", (21, 21, 4, 4), False),
    ("score_pool4", (21, 512, 1, 1), True), ("upscore_pool4", (21, 21, 4, 4), False),
    ("score_pool3", (21, 256, 1, 1), True), ("upscore8", (21, 21, 16, 16), False),
]


def fcn8s_weights(seed: int = 0) -> dict[str, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    weights = {}
    for name, shape, has_bias in FCN8S_LAYERS:
        blobs = [rng.standard_normal(shape, dtype=np.float32)]
        if has_bias:
            blobs.append(rng.standard_normal(shape[0], dtype=np.float32))
        weights[name] = blobs
    return weights


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure_memory(path: str) -> dict:
    """Run in a fresh process: peak RSS and tracemalloc peak of one ``read_weights``."""
    import tracemalloc

    baseline = _rss_bytes()
    tracemalloc.start()
    weights = read_weights(path)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024   # KiB on Linux
    count = sum(a.size for blobs in weights.values() for a in blobs)
    return {"baseline_rss": baseline, "peak_rss": peak, "extra_rss": peak - baseline,
            "tracemalloc_peak": traced_peak, "values": int(count)}


def run(directory: Path) -> dict:
    path = directory / "fcn8s-full.caffemodel"
    weights = fcn8s_weights()
    start = time.perf_counter()
    write_caffemodel(path, weights)
    write_s = time.perf_counter() - start
    n_values = sum(a.size for blobs in weights.values() for a in blobs)
    del weights
    size = path.stat().st_size

    read_weights(path)   # warm-up: page cache and allocator
    times = []
    for _ in range(3):
        start = time.perf_counter()
        result = read_weights(path)
        times.append(time.perf_counter() - start)
        del result

    child = subprocess.run([sys.executable, __file__, "--measure-memory", str(path)],
                           check=True, capture_output=True, text=True)
    memory = json.loads(child.stdout)
    assert memory["values"] == n_values
    best = min(times)
    return {
        "file_bytes": size, "parameters": int(n_values),
        "write_s": round(write_s, 3),
        "read_s_best_of_3": round(best, 4), "read_s_all": [round(t, 4) for t in times],
        "read_GB_per_s": round(size / best / 1e9, 2),
        "extra_rss_bytes": memory["extra_rss"], "extra_rss_over_file": round(memory["extra_rss"] / size, 3),
        "tracemalloc_peak_over_file": round(memory["tracemalloc_peak"] / size, 3),
        "time_target_met": best <= TIME_TARGET_S,
        "memory_target_met": memory["extra_rss"] <= MEMORY_TARGET * size,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="write the model here and keep it")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument("--measure-memory", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_memory:
        print(json.dumps(measure_memory(args.measure_memory)))
        return 0
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        result = run(args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-read-") as tmp:
            result = run(Path(tmp))
    from host import describe

    result["host"] = describe()
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        mb = result["file_bytes"] / 2**20
        print("| file | read_weights best of 3 | throughput | peak extra RSS | tracemalloc peak |")
        print("| --- | --- | --- | --- | --- |")
        print(f"| FCN-8s, {mb:.0f} MiB | {result['read_s_best_of_3']:.3f} s (target ≤ {TIME_TARGET_S} s) "
              f"| {result['read_GB_per_s']} GB/s | {result['extra_rss_over_file']:.2f} × file "
              f"(target ≤ {MEMORY_TARGET}) | {result['tracemalloc_peak_over_file']:.2f} × file |")
        print(json.dumps(result))
    return 0 if result["time_target_met"] and result["memory_target_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())

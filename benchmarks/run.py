"""Run every benchmark in this folder, one after another, and print their results.

Each benchmark is a script with its own method in its docstring; this runner only calls
them in fresh processes (so one's memory does not weigh on the next). Record the figures
in BENCHMARKS.md together with the machine and its load at the time.

    python benchmarks/run.py [NAME …]      # names: read, forward, train, conv, dense, export, pycaffe, data, sizes (default: all)
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = {"read": "bench_read.py", "forward": "bench_forward.py", "train": "bench_train.py",
              "conv": "bench_conv_products.py", "dense": "bench_dense.py",
              "export": "bench_export.py", "pycaffe": "bench_pycaffe.py", "data": "bench_data.py",
              "sizes": "bench_sizes.py"}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    from host import describe

    print(f"machine: {describe()}", flush=True)
    status = 0
    for name in names:
        print(f"\n## {name}", flush=True)
        status |= subprocess.call([sys.executable, str(HERE / BENCHMARKS[name])])
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""The machine a benchmark ran on, in one line: benchmark figures mean little without it.

The project's machine is a shared cloud host whose CPU changes between sessions (an AVX2-only
EPYC in one, an AVX-512 one in another), and oneDNN's and MKL's kernels differ with the vector
width, so every benchmark prints this line and BENCHMARKS.md records it with each run.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe() -> str:
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    return (f"{cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__} "
            f"(kernels: {capability}), {torch.get_num_threads()} threads, "
            f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    print(describe())

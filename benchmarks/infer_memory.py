"""Is ``infer``'s memory estimate an upper bound? Peak RSS of ``python -m reproduce infer`` at three sizes.

For each image size a separate ``infer`` process segments one generated image with FCN-8s
(random weights written here, ``--widths`` as given) and its peak resident set size is read
from ``getrusage(RUSAGE_CHILDREN)`` after it exits. The process's own footprint (interpreter,
torch, the net) is measured the same way on a 32×32 image and subtracted; what remains is the
pass, which the estimate (``memory.pass_bytes`` of the blob peak plus the image's buffers,
``infer.IMAGE_BYTES_PER_PIXEL``) must cover.

    .venv/bin/python benchmarks/infer_memory.py --widths tiny --sizes 1000 2000 3000
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def peak_rss(argv: list[str]) -> int:
    """Peak RSS in bytes of one child process (each measured in a fresh wrapper process)."""
    code = ("import resource, subprocess, sys\n"
            "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)\n"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    out = subprocess.run([sys.executable, "-c", code, *argv], check=True, capture_output=True, text=True)
    return int(out.stdout.strip().splitlines()[-1]) * 1024   # Linux: KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", default="tiny")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 3000])
    args = parser.parse_args()

    from PIL import Image

    from reproduce.evaluation.infer import IMAGE_BYTES_PER_PIXEL
    from reproduce.evaluation.memory import forward_bytes, format_bytes, pass_bytes
    from reproduce.models import net_param
    from reproduce.net import Net
    from reproduce.weights.convert import save_weights

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        net = Net(net_param("fcn8s", "deploy", widths=args.widths), phase="test")
        rng = np.random.default_rng(0)
        weights = {name: [rng.standard_normal(tuple(p.shape)).astype(np.float32) * 0.01 for p in blobs]
                   for name, blobs in net.params.items()}
        save_weights(tmp / "w.pth", weights)
        net.keep_blobs = False
        base = [sys.executable, "-m", "reproduce", "infer", "--weights", str(tmp / "w.pth"), "--widths",
                args.widths, "--quiet", "-o", str(tmp / "out")]

        def image(side: int) -> Path:
            path = tmp / f"{side}.png"
            Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(path)
            return path

        floor = peak_rss(base + [str(image(32))])
        print(f"machine: {os.cpu_count()} cpus; widths {args.widths}; process floor (32×32 image) "
              f"{format_bytes(floor)}")
        print(f"{'size':>11} {'peak RSS':>10} {'pass MiB':>10} {'estimate MiB':>13}  bound")
        for side in args.sizes:
            rss = peak_rss(base + [str(image(side))])
            blobs = forward_bytes(net, {net.inputs[0]: (1, 3, side, side)})
            estimate = pass_bytes(blobs, side * side * IMAGE_BYTES_PER_PIXEL)
            used = rss - floor
            print(f"{side:>5}×{side:<5} {format_bytes(rss):>10} {used / 2**20:>10,.0f} "
                  f"{estimate / 2**20:>13,.0f}  {'holds' if estimate >= used else 'EXCEEDED'}")


if __name__ == "__main__":
    main()

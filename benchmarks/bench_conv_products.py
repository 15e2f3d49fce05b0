"""Benchmark: the three products of each dense 3×3 VGG layer of FCN-8s at 500×500, on the CPU.

Where forward+backward spends its time, layer by layer: for each 3×3 convolution shape the
FCN-8s VGG16 body runs at 500×500 (input padded by 100), the forward convolution, the input
gradient and the weight gradient as oneDNN computes them (``F.conv2d`` and
``aten.convolution_backward`` with one product requested at a time), and one alternative:
the weight gradient as nine GEMMs over shifted views of the input.

The alternative: for a 3×3 kernel, stride 1, the weight gradient's tap (ky, kx) is
``top_diff[Cout, H·W] @ input[Cin, H·W shifted by (ky, kx)]ᵀ``. Padding the top diff with two
zero columns per row makes every tap's input one strided matrix of the flattened input
(row stride = the input's width), so no im2col copy is needed; the zero columns cancel the
pixels that wrap around a row. It is exact up to float32 summation order (the deviation from
oneDNN is printed).

Method: random inputs (N(0, 1), weights N(0, 0.05²)), valid convolution of a (H+2)×(W+2)
input; one warm-up call, then the best of ``--repeat`` calls (``time.perf_counter``); freed
memory kept for reuse (``reproduce.runtime.keep_freed_memory``); torch's default threads.
To see the AVX2 picture on an AVX-512 host, cap the kernel libraries as BENCHMARKS.md says.

    python benchmarks/bench_conv_products.py [--repeat 3]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# (channels in, channels out, input side) of FCN-8s's dense 3×3 layers at 500×500
SHAPES = [(64, 64, 506), (128, 128, 259), (256, 256, 137), (256, 512, 88), (512, 512, 88),
          (512, 512, 44)]


def weight_gradient_by_shifts(top_diff, bottom):
    """The 3×3, stride-1, unpadded convolution's weight gradient as nine GEMMs (docstring)."""
    import torch
    import torch.nn.functional as F

    channels_out, height, width = top_diff.shape[1:]
    channels_in, _, padded_width = bottom.shape[1:]
    rows = F.pad(top_diff[0], (0, padded_width - width)).reshape(channels_out, -1)
    flat = bottom[0].reshape(channels_in, -1)
    length = height * padded_width - (padded_width - width)  # the last row's pad would overrun
    grad = torch.empty(channels_out, channels_in, 3, 3)
    for ky in range(3):
        for kx in range(3):
            offset = ky * padded_width + kx
            grad[:, :, ky, kx] = rows[:, :length] @ flat[:, offset:offset + length].t()
    return grad


def best_ms(fn, repeat: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import torch
    import torch.nn.functional as F

    from host import describe
    from reproduce.runtime import keep_freed_memory

    keep_freed_memory()
    backward = torch.ops.aten.convolution_backward
    print(f"machine: {describe()}")
    print("| layer | forward ms | input gradient ms | weight gradient ms | "
          "weight gradient by shifts ms | its deviation |")
    print("| --- | --- | --- | --- | --- | --- |")
    gen = torch.Generator().manual_seed(0)
    for channels_in, channels_out, side in SHAPES:
        bottom = torch.randn(1, channels_in, side, side, generator=gen)
        weight = torch.randn(channels_out, channels_in, 3, 3, generator=gen) * 0.05
        top_diff = torch.randn(1, channels_out, side - 2, side - 2, generator=gen)

        def products(mask):
            return backward(top_diff, bottom, weight, None, [1, 1], [0, 0], [1, 1], False,
                            [0, 0], 1, mask)

        forward = best_ms(lambda: F.conv2d(bottom, weight), args.repeat)
        input_grad = best_ms(lambda: products([True, False, False]), args.repeat)
        weight_grad = best_ms(lambda: products([False, True, False]), args.repeat)
        shifts = best_ms(lambda: weight_gradient_by_shifts(top_diff, bottom), args.repeat)
        reference = products([False, True, False])[1]
        deviation = float((weight_gradient_by_shifts(top_diff, bottom) - reference).abs().max()
                          / reference.abs().max())
        print(f"| {channels_in}→{channels_out} at {side}×{side} | {forward:.0f} | {input_grad:.0f} "
              f"| {weight_grad:.0f} | {shifts:.0f} | {deviation:.1e} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

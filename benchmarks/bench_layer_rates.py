"""Benchmark: the FLOP rate each convolution of FCN-8s reaches in our pass, against oneDNN's own.

Method
------
* The net: ``reproduce.models`` FCN-8s deploy at ``--widths`` (``full`` by default) with
  ``bench_forward.random_fcn_weights``, one N(0, 50²) image of ``--size`` (500×500), run as
  ``bench_sizes`` runs it (``no_grad``, ``keep_blobs = False``, ``keep_freed_memory``,
  defaults: constant band where it pays, channels-last activations, fc6/fc7 as GEMM,
  diagonal upscores).
* **ours**: every layer's time inside ``Net.forward`` (each layer's ``forward_banded``
  wrapped by a timer), median over ``--repeat`` passes after one warm-up pass.
* **plain**: ``plain_fcn.PlainFCN8s`` on the same weights (NCHW, every pixel), each module's
  time inside its own pass (forward hooks), median over the same passes, interleaved.
* **oneDNN alone**: the layer's own shape (the bottom blob's shape, the weight, stride, pad)
  run in isolation through ``F.conv2d`` / ``F.conv_transpose2d`` on an NCHW tensor — what
  oneDNN reaches on that layer when nothing else runs; median of ``--repeat`` calls after a
  warm-up call.
* Multiply-adds are Caffe's (every output pixel, every filter: ``out pixels × out channels
  × in channels / group × kernel``; a deconvolution's ``in pixels × …``). ``computed`` is
  what our pass actually multiplies: the explicit part of a banded output (the band's one
  patch convolution is negligible), 1/channels of a diagonal deconvolution. Rates are
  2 · multiply-adds / time (GFLOP/s): ``ours, Caffe's work`` is the rate a user sees,
  ``ours, computed`` the rate our kernels reach on what they do compute.
* Clock: ``--threads 1`` times by the calling thread's CPU time (``time.thread_time``,
  steady on a shared machine); with more threads, wall time.
* ``bound``: our pass if every convolution computed only what ours computes, each at the
  better of the two rates measured for its shape (ours on what it computes, oneDNN alone),
  plus our time in the other layers — how far the multiplications our routes leave can go
  without faster kernels; printed against half the plain pass (the issue's target) with
  the multiply-adds that would have to go to reach it at the pass's mean rate.

    python benchmarks/bench_layer_rates.py [--widths full] [--size 500x500] [--threads 1] [--repeat 3] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def _computed_fraction(layer, bottom_shape) -> float:
    """The share of Caffe's multiply-adds our pass computed for this layer (module docstring)."""
    if layer.transposed:
        return 1.0 / layer.channels if layer._diagonal_weight([]) is not None else 1.0
    for (shape, _), (plan, banded) in getattr(layer, "_band_plans", {}).items():
        if tuple(shape) == tuple(bottom_shape) and plan is not None and banded:
            return plan.explicit_fraction
    return 1.0


def run(widths: str, height: int, width: int, threads: int, repeat: int) -> dict:
    import torch
    import torch.nn.functional as F

    from bench_sizes import build
    from plain_fcn import PlainFCN8s
    from reproduce.net.layers.convolution import _ConvolutionBase
    from reproduce.runtime import keep_freed_memory

    torch.set_num_threads(threads)
    keep_freed_memory()
    timer = time.thread_time if threads == 1 else time.perf_counter
    net = build(widths)
    plain = PlainFCN8s({k: [b.detach() for b in v] for k, v in net.params.items()}).eval()
    x = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(1)) * 50

    ours: dict[str, list[float]] = {}
    shapes: dict[str, tuple] = {}
    for step in net._plan:
        layer = step.layer
        name = layer.layer_param.name

        def timed(bottoms, bands, forward=layer.forward_banded, name=name):
            shapes.setdefault(name, tuple(bottoms[0].shape))
            start = timer()
            result = forward(bottoms, bands)
            ours.setdefault(name, []).append(timer() - start)
            return result
        layer.forward_banded = timed

    mine: dict[str, list[float]] = {}
    starts: dict[str, float] = {}
    for name, module in plain.named_children():
        if name in ("pool", "relu"):
            continue
        module.register_forward_pre_hook(lambda m, a, name=name: starts.__setitem__(name, timer()))
        module.register_forward_hook(
            lambda m, a, o, name=name: mine.setdefault(name, []).append(timer() - starts[name]))

    totals = {"ours": [], "plain": []}
    with torch.no_grad():
        net.forward(data=x)
        plain(x)
        ours.clear()
        mine.clear()
        for r in range(repeat):
            for which in (("ours", "plain") if r % 2 == 0 else ("plain", "ours")):
                start = timer()
                net.forward(data=x) if which == "ours" else plain(x)
                totals[which].append(timer() - start)

        rows = []
        for step in net._plan:
            layer = step.layer
            if not isinstance(layer, _ConvolutionBase):
                continue
            name = layer.layer_param.name
            bottom = shapes[name]
            g = layer.geometry
            inp = torch.randn(bottom)
            weight = layer.weight.detach().contiguous()
            bias = layer.bias.detach() if layer.bias_term else None
            if layer.transposed:
                call = lambda: F.conv_transpose2d(inp, weight, bias, g.stride, g.pad, 0,  # noqa: E731
                                                  layer.group, g.dilation)
            else:
                call = lambda: F.conv2d(inp, weight, bias, g.stride, g.pad, g.dilation,  # noqa: E731
                                        layer.group)
            call()
            alone = []
            for _ in range(repeat):
                start = timer()
                call()
                alone.append(timer() - start)
            macs = layer.multiply_adds(bottom)
            fraction = _computed_fraction(layer, bottom)
            t_ours, t_alone = statistics.median(ours[name]), statistics.median(alone)
            t_plain = statistics.median(mine[name]) if name in mine else None
            top = layer.output_shape(bottom)
            rows.append({
                "layer": name, "type": "Deconvolution" if layer.transposed else "Convolution",
                "in_channels": layer.channels, "out_channels": layer.num_output,
                "kernel": list(g.kernel), "top_hw": list(top[2:]), "gmacs": macs / 1e9,
                "computed_fraction": fraction, "ours_s": t_ours, "plain_s": t_plain,
                "onednn_alone_s": t_alone,
                "ours_gflops_caffe_work": 2 * macs / t_ours / 1e9,
                "ours_gflops_computed": 2 * macs * fraction / t_ours / 1e9,
                "plain_gflops": 2 * macs / t_plain / 1e9 if t_plain else None,
                "onednn_alone_gflops": 2 * macs / t_alone / 1e9,
            })
    conv_names = {r["layer"] for r in rows}
    other = sum(statistics.median(v) for k, v in ours.items() if k not in conv_names)
    bound = other + sum(2e9 * r["gmacs"] * r["computed_fraction"]
                        / (1e9 * max(r["ours_gflops_computed"], r["onednn_alone_gflops"]))
                        for r in rows)
    return {"widths": widths, "size": [height, width], "threads": threads,
            "clock": "cpu" if threads == 1 else "wall", "rows": rows,
            "ours_pass_s": statistics.median(totals["ours"]),
            "plain_pass_s": statistics.median(totals["plain"]),
            "ours_other_layers_s": other, "bound_s": bound}


def table(result: dict) -> None:
    rows = result["rows"]
    print("| layer | in→out, k | top | GMAC | computed | ours ms | GFLOP/s ours (Caffe's work) "
          "| GFLOP/s ours (computed) | plain ms | oneDNN alone ms | GFLOP/s oneDNN alone |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        plain_ms = f"{r['plain_s'] * 1e3:.1f}" if r["plain_s"] else ""
        print(f"| {r['layer']} | {r['in_channels']}→{r['out_channels']}, "
              f"{'×'.join(map(str, r['kernel']))} | {'×'.join(map(str, r['top_hw']))} "
              f"| {r['gmacs']:.3g} | {r['computed_fraction']:.2f} | {r['ours_s'] * 1e3:.1f} "
              f"| {r['ours_gflops_caffe_work']:.0f} | {r['ours_gflops_computed']:.0f} | {plain_ms} "
              f"| {r['onednn_alone_s'] * 1e3:.1f} | {r['onednn_alone_gflops']:.0f} |")
    gmacs = sum(r["gmacs"] for r in rows)
    computed = sum(r["gmacs"] * r["computed_fraction"] for r in rows)
    t_ours = sum(r["ours_s"] for r in rows)
    t_alone = sum(r["onednn_alone_s"] for r in rows)
    t_plain = sum(r["plain_s"] or 0 for r in rows)
    print(f"| **sum** | | | {gmacs:.3g} | {computed / gmacs:.2f} | {t_ours * 1e3:.0f} "
          f"| {2 * gmacs / t_ours:.0f} | {2 * computed / t_ours:.0f} | {t_plain * 1e3:.0f} "
          f"| {t_alone * 1e3:.0f} | {2 * gmacs / t_alone:.0f} |")
    print(f"\nwhole pass: ours {result['ours_pass_s'] * 1e3:.0f} ms, plain "
          f"{result['plain_pass_s'] * 1e3:.0f} ms (ours ÷ plain "
          f"{result['ours_pass_s'] / result['plain_pass_s']:.2f}); our other layers "
          f"{result['ours_other_layers_s'] * 1e3:.0f} ms; bound (computed work at the better "
          f"rate per layer + other layers) {result['bound_s'] * 1e3:.0f} ms = "
          f"{result['bound_s'] / result['plain_pass_s']:.2f} × plain")
    half = result["plain_pass_s"] / 2
    rate = 2 * computed / t_ours  # GFLOP/s over the pass's convolutions
    print(f"0.5 × plain = {half * 1e3:.0f} ms: "
          + (f"the bound is over it by {(result['bound_s'] - half) * 1e3:.0f} ms, "
             f"{(result['bound_s'] - half) * rate / 2:.1f} GMAC of the {computed:.1f} computed "
             f"at {rate:.0f} GFLOP/s" if result["bound_s"] > half else "within the bound"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", default="full")
    parser.add_argument("--size", default="500x500", help="HxW")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from host import describe
    import torch

    torch.set_num_threads(args.threads)
    print(f"machine: {describe()}", file=sys.stderr)
    height, width = (int(v) for v in args.size.split("x"))
    result = run(args.widths, height, width, args.threads, args.repeat)
    result["host"] = describe()
    table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

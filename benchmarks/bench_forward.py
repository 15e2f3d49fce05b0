"""Benchmark: full-width FCN-8s on one 500×500 image, forward and forward+backward, on the CPU.

Method
------
* The net is ``reproduce.models`` FCN-8s at full width (VGG16, 21 classes): the deploy
  description for forward, the train description (SoftmaxWithLoss, unnormalized, dropout
  on) for forward+backward. Weights are random (He-scaled normal, seed 0; upscore layers
  bilinear), the image N(0, 50²), the label uniform over the 21 classes.
* Each configuration runs in fresh Python subprocesses (``--rounds`` of them, the
  configurations interleaved round by round so that a slow spell of a shared machine hits
  them all): build, one warm-up pass, then ``--repeat`` timed passes
  (``time.perf_counter``); the best and the median over all timed passes are reported, and
  the minor page faults of the last pass (``getrusage``).
  Peak memory is the subprocess's ``ru_maxrss`` (the whole process: Python, torch, weights
  of 538 MB and activations).
* Forward runs under ``torch.no_grad()`` with ``keep_blobs = False`` (blobs freed after
  their last consumer, as an inference module should); forward+backward keeps what autograd
  needs.
* Configurations (``CONFIGS``): ``default`` is what a user of the command line gets — NCHW
  weights with channels-last activations when gradients are off (``Net.use_channels_last``),
  the constant band skipped (``Net.use_constant_band``), freed memory kept for reuse
  (``reproduce.runtime.keep_freed_memory``); the others switch one of those, and ``before``
  all of them (NCHW, every pixel convolved, glibc's default allocator: the previous state).
* Each configuration's score deviation from ``before`` (every output convolved, NCHW) on
  the same weights and image is reported as max |Δscore| / max |score|; agreement with Caffe
  itself is a test (``tests/test_golden_forward.py`` runs every golden blob with and without
  the band and in both layouts).
* Threads: torch's default (one per core, 2 here).

    python benchmarks/bench_forward.py [--repeat 3] [--rounds 2] [--configs default,before] [--json]
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGETS = {"forward_s": 2.5, "forward_peak_gb": 2.0, "forward_backward_s": 7.0}


# name: (layout, constant band, keep freed memory); the first is the default a user gets.
# layout "auto" = NCHW weights, channels-last activations when gradients are off.
CONFIGS = {
    "default": ("auto", True, True),
    "nchw": ("nchw", True, True),
    "channels_last": ("channels_last", True, True),
    "no_constant_band": ("auto", False, True),
    "glibc_default_malloc": ("auto", True, False),
    "before": ("nchw", False, False),
}


def random_fcn_weights(params, seed: int = 0) -> None:
    """Fill an FCN's parameters in place (``{layer: [tensor, …]}``): He-scaled normal weights,
    N(0, 0.1²) biases, bilinear kernels on the ``upscore*`` deconvolutions — the weights every
    forward benchmark times (the values do not change the cost; the bilinear kernels keep
    the outputs finite)."""
    import torch

    from reproduce.weights.surgery import upsample_filt

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, blobs in params.items():
            weight = blobs[0]
            if name.startswith("upscore"):
                weight.zero_()
                k = weight.shape[-1]
                for c in range(weight.shape[0]):
                    weight[c, c] = torch.from_numpy(upsample_filt(k))
                continue
            fan_in = weight[0].numel()
            weight.copy_(torch.randn(weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
            for bias in blobs[1:]:
                bias.copy_(torch.randn(bias.shape, generator=gen) * 0.1)


def build(split: str, layout: str = "auto", constant_band: bool = True):
    from reproduce.models import net_param
    from reproduce.net import Net

    net = Net(net_param("fcn8s", split, num_classes=21, widths="full"), phase="test" if split == "deploy" else "train")
    random_fcn_weights(net.params)
    net.use_channels_last({"auto": None, "nchw": False, "channels_last": True}[layout])
    net.use_constant_band(constant_band)
    return net


def measure(mode: str, config: str, repeat: int, scratch: Path) -> dict:
    import torch

    from reproduce.runtime import keep_freed_memory

    layout, constant_band, keep_memory = CONFIGS[config]
    if keep_memory:
        keep_freed_memory()

    gen = torch.Generator().manual_seed(1)
    image = torch.randn(1, 3, 500, 500, generator=gen) * 50
    times, faults = [], []
    if mode == "forward":
        net = build("deploy", layout, constant_band)
        net.keep_blobs = False
        with torch.no_grad():
            for i in range(repeat + 1):
                faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)
                start = time.perf_counter()
                score = net.forward(data=image)["score"]
                times.append(time.perf_counter() - start)
        extra = {"score_max_abs": float(score.abs().max())}
        np_score = score.numpy()
    else:
        net = build("train", layout, constant_band)
        label = torch.randint(0, 21, (1, 1, 500, 500), generator=gen).float()
        for i in range(repeat + 1):
            net.zero_grad(set_to_none=True)
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)
            start = time.perf_counter()
            net.forward(data=image, label=label)
            net.backward()
            times.append(time.perf_counter() - start)
        extra = {"loss": float(net.loss.detach())}
        np_score = None
    timed = times[1:]
    result = {"mode": mode, "config": config, "best_s": min(timed), "median_s": statistics.median(timed),
              "times_s": timed,
              "minor_faults_last_pass": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults[-1],
              "warmup_s": times[0], "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
              "threads": torch.get_num_threads(), **extra}
    if np_score is not None:
        import numpy as np

        np.save(scratch / f"score_{config}.npy", np_score)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed passes per process")
    parser.add_argument("--rounds", type=int, default=2, help="processes per configuration, interleaved")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--modes", default="forward,forward_backward")
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help="comma-separated subset of: " + ", ".join(CONFIGS))
    parser.add_argument("--child", nargs=3, metavar=("MODE", "CONFIG", "SCRATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, layout, scratch = args.child
        print(json.dumps(measure(mode, layout, args.repeat, Path(scratch))))
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        return run_all(args, Path(scratch))


def run_all(args, scratch: Path) -> int:
    from host import describe

    host = describe()
    print(f"machine: {host}", file=sys.stderr, flush=True)
    results = []
    configs = args.configs.split(",")
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        raise SystemExit(f"unknown configuration(s) {unknown}; choose from {list(CONFIGS)}")
    for mode in args.modes.split(","):
        runs: dict[str, list[dict]] = {config: [] for config in configs}
        # configurations interleaved round by round, so a slow spell of a shared machine
        # falls on all of them rather than on one
        for _ in range(args.rounds):
            for config in configs:
                out = subprocess.run([sys.executable, __file__, "--child", mode, config, str(scratch),
                                      "--repeat", str(args.repeat)],
                                     capture_output=True, text=True, check=True)
                runs[config].append(json.loads(out.stdout.strip().splitlines()[-1]))
        for config in configs:
            merged = dict(runs[config][0])
            times = [t for run in runs[config] for t in run["times_s"]]
            merged.update(best_s=min(times), median_s=statistics.median(times), times_s=times,
                          peak_rss_gb=max(run["peak_rss_gb"] for run in runs[config]))
            results.append(merged)
            print(f"{mode:<17} {config:<21} best {merged['best_s']:.2f} s  median {merged['median_s']:.2f} s  "
                  f"peak {merged['peak_rss_gb']:.2f} GB  page faults in the last pass "
                  f"{merged['minor_faults_last_pass']}", file=sys.stderr)
    import numpy as np

    # each configuration's score against the previous state: dense NCHW, as Caffe computes
    deviations = {}
    reference = scratch / "score_before.npy"
    if reference.exists():
        a = np.load(reference)
        for config in configs:
            b = np.load(scratch / f"score_{config}.npy")
            deviations[config] = float(np.abs(a - b).max() / np.abs(a).max())
    summary = {"host": host, "results": results, "score_rel_deviation_from_before": deviations, "targets": TARGETS}
    print(json.dumps(summary, indent=1) if args.json else
          "\n".join(f"| {r['mode']} | {r['config']} | {r['best_s']:.2f} | {r['median_s']:.2f} | {r['peak_rss_gb']:.2f} |"
                    for r in results)
          + "".join(f"\n{c} vs before: {d:.2e}" for c, d in deviations.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

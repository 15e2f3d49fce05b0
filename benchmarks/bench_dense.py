"""Benchmark: the cost of dense coarse scores — coarse net vs shift-and-stitch vs rarefied (CPU).

CVPR 2015 Sec. 3.2: shift-and-stitch by ``f`` costs ``f²`` passes of the coarse net;
filter rarefaction computes the same dense output (``tests/test_shift_and_stitch.py``) in one
pass of a net whose layers after the rarefied one run on an ``f``× denser grid.

Method
------
* The net is the coarse score net of full-width FCN-32s (VGG16, 21 classes, every layer up
  to ``score_fr``: ``reproduce.net.rarefy.coarse_net``), random He-scaled weights (seed 0),
  one N(0, 50²) image of ``--size`` pixels (default 224×224, the classifier's input size).
* Configurations: ``coarse`` (one pass, stride 32), ``shift-and-stitch F`` for F = 2 and 4
  (``reproduce.shift_and_stitch``: F² passes, stride 32/F) and ``rarefied F`` (one pass of
  ``rarefy(…, "pool5", 2)`` for F = 2, of ``pool4`` then ``pool5`` by 2 for F = 4).
* Each configuration is built once, run once to warm up, then ``--repeat`` times under
  ``torch.no_grad()`` (``time.perf_counter``); best and median are reported. All run in one
  process, one after another, interleaved round by round (``--rounds``) so that a slow spell
  of the shared machine hits every configuration. Threads: torch's default.
* Reported besides: the output grid, and the largest |difference| of the rarefied and the
  shift-and-stitch output at the stride-aligned positions (both are the coarse net there)
  relative to the largest |score|.

    python benchmarks/bench_dense.py [--size 224] [--repeat 2] [--rounds 2] [--json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def build():
    import torch

    from reproduce.models import net_param
    from reproduce.net import Net
    from reproduce.net.rarefy import coarse_net, rarefy

    param = coarse_net(net_param("fcn32s", "deploy", num_classes=21, widths="full"), "score_fr")
    coarse = Net(param)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for blobs in coarse.params.values():
            weight = blobs[0]
            weight.normal_(0, (2.0 / weight[0].numel()) ** 0.5, generator=gen)
            if len(blobs) > 1:
                blobs[1].normal_(0, 0.1, generator=gen)
    rare2 = Net(rarefy(param, "pool5", 2))
    rare4 = Net(rarefy(rarefy(param, "pool4", 2), "pool5", 2))
    for net in (rare2, rare4):
        net.load_state_dict(coarse.state_dict())
    for net in (coarse, rare2, rare4):
        net.keep_blobs = False
    return coarse, rare2, rare4


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    import torch

    from host import describe
    from reproduce.net.shift_and_stitch import shift_and_stitch
    from reproduce.runtime import keep_freed_memory

    keep_freed_memory()
    coarse, rare2, rare4 = build()
    image = torch.randn(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(1)) * 50
    configs = {
        "coarse": (1, lambda: coarse.forward(data=image)["score_fr"]),
        "shift-and-stitch 2": (4, lambda: shift_and_stitch(coarse, 2, data=image)["score_fr"]),
        "rarefied 2": (1, lambda: rare2.forward(data=image)["score_fr"]),
        "shift-and-stitch 4": (16, lambda: shift_and_stitch(coarse, 4, data=image)["score_fr"]),
        "rarefied 4": (1, lambda: rare4.forward(data=image)["score_fr"]),
    }
    times = {name: [] for name in configs}
    outputs = {}
    with torch.no_grad():
        for name, (_, run) in configs.items():
            outputs[name] = run()   # warm-up
        for _ in range(args.rounds):
            for name, (_, run) in configs.items():
                for _ in range(args.repeat):
                    start = time.perf_counter()
                    run()
                    times[name].append(time.perf_counter() - start)
    scale = outputs["coarse"].abs().max().item()
    rows = []
    for name, (passes, _) in configs.items():
        out = outputs[name]
        row = {"config": name, "passes": passes, "grid": "×".join(map(str, out.shape[2:])),
               "best_s": min(times[name]), "median_s": statistics.median(times[name])}
        factor = int(name.split()[-1]) if name != "coarse" else 1
        if name.startswith("rarefied"):
            sas = outputs[f"shift-and-stitch {factor}"]
            a, b = out[:, :, ::factor, ::factor], sas[:, :, ::factor, ::factor]
            h, w = min(a.shape[2], b.shape[2]), min(a.shape[3], b.shape[3])
            row["aligned_rel_diff"] = ((a[:, :, :h, :w] - b[:, :, :h, :w]).abs().max().item() / scale)
        rows.append(row)
    if args.json:
        print(json.dumps({"machine": describe(), "size": args.size, "rows": rows}, indent=2))
        return 0
    print(f"machine: {describe()}")
    print(f"FCN-32s coarse net (to score_fr), full width, one {args.size}×{args.size} image; "
          f"{args.rounds}×{args.repeat} timed passes each")
    print(f"{'config':<20} {'passes':>6} {'grid':>8} {'best s':>8} {'median s':>9}  aligned Δ/max")
    for row in rows:
        diff = f"{row['aligned_rel_diff']:.1e}" if "aligned_rel_diff" in row else ""
        print(f"{row['config']:<20} {row['passes']:>6} {row['grid']:>8} {row['best_s']:>8.2f} "
              f"{row['median_s']:>9.2f}  {diff}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

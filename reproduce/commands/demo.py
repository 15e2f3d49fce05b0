"""The small-scale demo on generated data: ``prepare`` its inputs, ``report`` its results.

``python -m reproduce demo prepare --out DIR`` writes a synthetic segmentation set in the SBD
and VOC2011 layouts (``DIR/data/sbdd/dataset``, ``DIR/data/pascal/VOC2011``) and a tiny
VGG16-shaped classifier pre-trained on it, saved as a legacy V1 caffemodel
(``DIR/vgg16-tiny-v1.caffemodel`` + ``.prototxt``) — the stand-in for
VGG_ILSVRC_16_layers.caffemodel. ``make demo`` then trains FCN-32s → 16s → 8s from it and
scores them; ``python -m reproduce demo report --out DIR`` turns ``DIR/runs`` into tables,
prediction panels and learning curves under ``DIR/report/``. ``demo estimate`` prints how long
the demo will take on this machine now (and, with ``--step``, each step as it starts).
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from reproduce.commands.common import add_device, add_quiet
    from reproduce.demo.timing import STEPS

    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    prepare = sub.add_parser("prepare", help="generate the data and the V1 classifier")
    prepare.add_argument("--out", type=Path, default=Path("demo-run"), help="demo folder (default demo-run)")
    prepare.add_argument("--n-train", type=int, default=60, help="training images (default 60)")
    prepare.add_argument("--n-val", type=int, default=16, help="held-out validation images (default 16)")
    prepare.add_argument("--sides", type=int, nargs=2, default=None, metavar=("MIN", "MAX"),
                         help="image side range in px (default 128 192)")
    prepare.add_argument("--pretrain-iters", type=int, default=600, help="classifier iterations (default 600)")
    prepare.add_argument("--seed", type=int, default=0)
    add_quiet(prepare, "no progress bar")
    add_device(prepare, "where the classifier is pre-trained")
    report = sub.add_parser("report", help="tables, panels and curves of a finished demo")
    report.add_argument("--out", type=Path, default=Path("demo-run"), help="demo folder (default demo-run)")
    report.add_argument("--images", type=int, default=4, help="validation images to show (default 4)")
    estimate = sub.add_parser("estimate", help="print how long the demo (or one step of it) will take here")
    estimate.add_argument("--out", type=Path, default=Path("demo-run"), help="demo folder (default demo-run)")
    estimate.add_argument("--step", choices=STEPS,
                          help="a step about to start: its estimate, the time so far (default: calibrate and "
                               "estimate the whole demo)")


def run(args: argparse.Namespace) -> int:
    from reproduce.cli import UserError
    from reproduce.demo.pipeline import IMAGE_SIDES, DemoError, prepare, report

    try:
        if args.action == "estimate":
            from reproduce.demo import timing

            if args.step:
                timing.step(args.out, args.step)
            else:
                timing.start(args.out)
        elif args.action == "prepare":
            if args.n_train < 1 or args.n_val < 1 or args.pretrain_iters < 1:
                raise UserError("--n-train, --n-val and --pretrain-iters must be at least 1")
            sides = tuple(args.sides) if args.sides else IMAGE_SIDES
            if not 16 <= sides[0] <= sides[1]:
                raise UserError(f"--sides must satisfy 16 <= MIN <= MAX, got {sides[0]} {sides[1]}")
            prepare(args.out, n_train=args.n_train, n_val=args.n_val, seed=args.seed,
                    pretrain_iters=args.pretrain_iters, sides=sides, progress=not args.quiet,
                    device=args.device)
        else:
            report(args.out, n_images=args.images)
    except DemoError as err:
        raise UserError(str(err)) from None
    return 0

"""Run one stage of the staged FCN pipeline, as the reference ``voc-fcn*/solve.py`` does.

``python -m reproduce stage fcn32s --init VGG_ILSVRC_16_layers.caffemodel --sbd-dir … --voc-dir …``
trains on SBD ``train`` with the reference solver, runs seg_tests on VOC2011 ``seg11valid``
every ``--test-interval`` iterations and writes ``<runs>/<stage>/``: the prototxts used, logs
(``log.csv``, ``test.csv``, ``log.jsonl``), ``curve.png``, snapshots, ``final.caffemodel``,
``final.pth`` and ``done.json``. Re-running resumes from the last snapshot; a finished stage
says so. Under ``torchrun --nproc_per_node=N -m reproduce stage …`` the N processes average
their gradients every iteration as Caffe's multi-GPU training does.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from reproduce.training.stages import DEFAULT_INTERVAL, DEFAULT_SEED, STAGES

    parser.add_argument("model", choices=list(STAGES), help="the stage (net) to train")
    parser.add_argument("--init", type=Path, required=True,
                        help="init weights: the ILSVRC classifier (fcn32s, fcn8s-atonce, fcn-alexnet) "
                             "or the previous stage's final.caffemodel (fcn16s, fcn8s)")
    parser.add_argument("--sbd-dir", type=Path, default=Path("data/sbdd/dataset"),
                        help="SBD dataset folder (train.txt, img/, cls/)")
    parser.add_argument("--voc-dir", type=Path, default=Path("data/pascal/VOC2011"),
                        help="PASCAL VOC2011 folder (ImageSets/Segmentation/seg11valid.txt, …)")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="runs folder (the stage writes <runs>/<model>/)")
    parser.add_argument("--widths", default="full", choices=["full", "tiny"], help="layer widths")
    parser.add_argument("--num-classes", type=int, default=21)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--max-iter", type=int, help="iterations (default: the reference solver's)")
    parser.add_argument("--base-lr", type=float, help="learning rate (default: the reference solver's)")
    parser.add_argument("--test-interval", type=int, default=DEFAULT_INTERVAL,
                        help=f"seg_tests every N iterations (default {DEFAULT_INTERVAL}, as solve.py)")
    parser.add_argument("--snapshot", type=int, default=DEFAULT_INTERVAL,
                        help=f"snapshot every N iterations (default {DEFAULT_INTERVAL}, as solver.prototxt)")
    parser.add_argument("--display", type=int, help="log the training loss every N iterations (default 20)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help="solver random_seed (dropout); rank r of a torchrun launch uses seed + r")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from reproduce.cli import UserError
    from reproduce.training.stages import StageError, StageOptions, run_stage

    opts = StageOptions(model=args.model, init=args.init, sbd_dir=args.sbd_dir, voc_dir=args.voc_dir,
                        runs=args.runs, widths=args.widths, num_classes=args.num_classes,
                        device=args.device, max_iter=args.max_iter, base_lr=args.base_lr,
                        test_interval=args.test_interval, snapshot=args.snapshot, display=args.display,
                        seed=args.seed, progress=not args.quiet)
    try:
        run_stage(opts)
    except StageError as err:
        raise UserError(str(err)) from None
    return 0

"""Run one stage of the staged FCN pipeline, as the reference ``*/solve.py`` scripts do.

Every net of the release is a stage (``fcn32s``…, ``nyud-fcn32s-color``…, ``siftflow-fcn8s``…,
``pascalcontext-fcn16s``…); the data are read from ``--data-dir`` in the release's layout
(what ``python -m reproduce data fetch`` writes), the VOC nets' also from ``--sbd-dir`` and
``--voc-dir``.

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
    parser.add_argument("--init", type=Path,
                        help="init weights: the ILSVRC classifier (32s stages, fcn8s-atonce, fcn-alexnet, "
                             "fcn-googlenet) "
                             "or the previous stage's final.caffemodel (16s, 8s)")
    parser.add_argument("--init-stream", action="append", default=[], metavar="STREAM=WEIGHTS",
                        help="late fusion (nyud-fcn32s-color-hha): a stream's single-modality weights "
                             "(default <runs>/nyud-fcn32s-<stream>/final.caffemodel)")
    parser.add_argument("--data-dir", type=Path, default=Path("data"),
                        help="the release's data/ folder (sbdd/, pascal/, nyud/, sift-flow/, pascal-context/)")
    parser.add_argument("--sbd-dir", type=Path, default=None,
                        help="VOC nets: SBD dataset folder (train.txt, img/, cls/; default <data-dir>/sbdd/dataset)")
    parser.add_argument("--voc-dir", type=Path, default=None,
                        help="VOC nets: PASCAL VOC2011 folder (default <data-dir>/pascal/VOC2011)")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="runs folder (the stage writes <runs>/<model>/)")
    parser.add_argument("--widths", default="full", choices=["full", "tiny"], help="layer widths")
    parser.add_argument("--num-classes", type=int, default=None, help="classes (default: the release's)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--max-iter", type=int, help="iterations (default: the reference solver's)")
    parser.add_argument("--base-lr", type=float, help="learning rate (default: the reference solver's)")
    parser.add_argument("--test-interval", type=int, default=None,
                        help="seg_tests every N iterations (default: as the net's solve.py — 4000 VOC, "
                             "2000 NYUDv2 and SIFT Flow, 8000 PASCAL-Context)")
    parser.add_argument("--snapshot", type=int, default=DEFAULT_INTERVAL,
                        help=f"snapshot every N iterations (default {DEFAULT_INTERVAL}, as solver.prototxt)")
    parser.add_argument("--display", type=int, help="log the training loss every N iterations (default 20)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help="solver random_seed (dropout); rank r of a torchrun launch uses seed + r")
    parser.add_argument("--fixed", action="store_true",
                        help="fine-tune only the score layers (CVPR 2015 Table 2 'FCN-32s-fixed')")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from reproduce.cli import UserError
    from reproduce.training.stages import StageError, StageOptions, run_stage

    streams = {}
    for item in args.init_stream:
        stream, sep, path = item.partition("=")
        if not sep or not stream or not path:
            raise UserError(f"--init-stream {item!r}: expected STREAM=WEIGHTS (e.g. color=runs/a.caffemodel)")
        streams[stream] = Path(path)
    opts = StageOptions(model=args.model, init=args.init, sbd_dir=args.sbd_dir, voc_dir=args.voc_dir,
                        data_dir=args.data_dir, stream_inits=streams or None,
                        runs=args.runs, widths=args.widths, num_classes=args.num_classes,
                        device=args.device, max_iter=args.max_iter, base_lr=args.base_lr,
                        test_interval=args.test_interval, snapshot=args.snapshot, display=args.display,
                        seed=args.seed, progress=not args.quiet, fixed=args.fixed)
    try:
        run_stage(opts)
    except StageError as err:
        raise UserError(str(err)) from None
    return 0

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
    from reproduce.commands.common import add_device, add_quiet
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
    parser.add_argument("--dataset", type=Path, metavar="DIR",
                        help="train on your own dataset folder (images/ + labels/, or VOC-style; README "
                             "'Your own data'): K-class scores, its train/val splits, iterations scaled "
                             "to its size (VOC nets)")
    parser.add_argument("--ignore-label", type=int, default=255,
                        help="--dataset: the label value to ignore (default 255; colour masks: the colour "
                             "of classes.txt's line N, from 0)")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="runs folder (the stage writes <runs>/<model>/)")
    parser.add_argument("--widths", default="full", choices=["full", "tiny"], help="layer widths")
    parser.add_argument("--num-classes", type=int, default=None, help="classes (default: the release's)")
    add_device(parser)
    parser.add_argument("--max-iter", type=int, help="iterations (default: the reference solver's)")
    parser.add_argument("--base-lr", type=float, help="learning rate (default: the reference solver's)")
    parser.add_argument("--test-interval", type=int, default=None,
                        help="seg_tests every N iterations (default: as the net's solve.py — 4000 VOC, "
                             "2000 NYUDv2 and SIFT Flow, 8000 PASCAL-Context)")
    parser.add_argument("--snapshot", type=int, default=None,
                        help=f"snapshot every N iterations (default {DEFAULT_INTERVAL}, as solver.prototxt; "
                             f"with --dataset, as often as seg_tests)")
    parser.add_argument("--display", type=int, help="log the training loss every N iterations (default 20)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help="solver random_seed (dropout); rank r of a torchrun launch uses seed + r")
    paper = parser.add_argument_group(
        "the paper's regime and ablations (CVPR 2015 Sec. 4.3; recorded in config.json, shown in log.jsonl)")
    paper.add_argument("--recipe", choices=["release", "paper"], default="release",
                       help="release: the published heavy models' solver (default); paper: the CVPR "
                            "regime of Table 1 (minibatch 20, momentum 0.9, lr 1e-3/1e-4/5e-5 for "
                            "AlexNet/VGG16/GoogLeNet, normalized loss)")
    paper.add_argument("--train-set", choices=["sbd", "voc2011"], default="sbd",
                       help="VOC nets: train on SBD train (8,498 images; the release) or VOC2011 "
                            "segmentation train (1,112; the paper's Table 1)")
    paper.add_argument("--fixed", action="store_true",
                       help="fine-tune only the score layers (Table 2 'FCN-32s-fixed')")
    paper.add_argument("--loss-sampling", type=float, default=1.0, metavar="P",
                       help="keep each loss term with probability P per iteration, the batch grown "
                            "by 1/P (Sec. 3.4 patchwise training as loss sampling, Fig. 5); 1 = all")
    paper.add_argument("--class-weights", metavar="median-frequency|FILE",
                       help="class balancing by loss weighting: median frequency over the training "
                            "labels, or a file of one weight per class")
    paper.add_argument("--mirror", action="store_true", help="randomly mirror training samples")
    paper.add_argument("--jitter", type=int, default=0, metavar="N",
                       help="randomly translate training samples by up to N pixels (the paper: 32)")
    paper.add_argument("--learn-upsampling", action="store_true",
                       help="learn the Deconvolution layers from their bilinear init (the release fixes them)")
    add_quiet(parser)


def run(args: argparse.Namespace) -> int:
    from reproduce.cli import UserError
    from reproduce.training.stages import DEFAULT_INTERVAL, StageError, StageOptions, run_stage

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
                        test_interval=args.test_interval,
                        snapshot=args.snapshot if args.snapshot is not None or args.dataset else DEFAULT_INTERVAL,
                        display=args.display,
                        seed=args.seed, progress=not args.quiet, fixed=args.fixed,
                        recipe=args.recipe, loss_sampling=args.loss_sampling,
                        class_weights=args.class_weights, mirror=args.mirror, jitter=args.jitter,
                        learn_upsampling=args.learn_upsampling, train_set=args.train_set,
                        dataset=args.dataset, ignore_label=args.ignore_label)
    try:
        run_stage(opts)
    except StageError as err:
        raise UserError(str(err)) from None
    return 0

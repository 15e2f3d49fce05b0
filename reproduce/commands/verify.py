"""Score every stage whose weights are present on VOC2011 seg11valid against the published mean IU.

Sources: the release's caffemodels converted into ``--weights-dir`` (``make weights``) and
the stages trained under ``--runs`` (``runs/<stage>/final.pth``/``final.caffemodel`` or the
last ``snapshot/train_iter_<N>.caffemodel``). Prints one table row per stage and source —
PASS/FAIL against the published mean IU (±0.1 for official weights, −2.0/+2.0 for re-trained
stages; see ``reproduce.evaluation.verify``), MEASURED when there is nothing to compare with, SKIPPED
with the command that fetches what is missing — and writes a JSON report (default
``<runs>/verify.json``). Exit status: 1 if any row FAILs (or its weights cannot be scored),
otherwise 0 — also when everything is SKIPPED.

The release's nets of the other datasets (NYUDv2, SIFT Flow, PASCAL-Context) are scored on
their own test splits under ``--data-dir`` (the release's ``data/`` folder), one row per head,
MEASURED with the paper's figure as context.

The CVPR 2015 paper's experiments (``python -m reproduce paper``) are scored too, each from its
run under ``<runs>/paper/<experiment>/`` (SKIPPED with its command when absent): by default
unless ``--demo`` or ``--stages``; ``--paper``/``--no-paper`` decide.

``--demo``: the generated-data demo — trained stages only (fcn32s, fcn16s, fcn8s unless
``--stages``), no release numbers (only ``--published-json``'s, if given).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reproduce.cli import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from reproduce.commands.common import add_device, add_quiet

    parser.add_argument("--voc-dir", type=Path, default=Path("data/pascal/VOC2011"),
                        help="PASCAL VOC2011 folder (default data/pascal/VOC2011)")
    parser.add_argument("--split", default="seg11valid", help="split under ImageSets/Segmentation (default seg11valid)")
    parser.add_argument("--split-file", type=Path, help="a split list to use instead (one image id a line)")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="trained stages (default runs)")
    parser.add_argument("--weights-dir", type=Path, default=Path("weights"), help="converted release weights (default weights)")
    parser.add_argument("--data-dir", type=Path, default=Path("data"),
                        help="the release's data/ folder, for the NYUDv2, SIFT Flow and Context nets (default data)")
    parser.add_argument("--stages", nargs="+", metavar="STAGE",
                        help="stages to score (default: every release net; --demo: 32s, 16s, 8s)")
    parser.add_argument("--sources", nargs="+", choices=("official", "trained"), help="default: both (--demo: trained)")
    parser.add_argument("--published-json", type=Path,
                        help='expectations {"<stage>": {"mean_iu": percent, "tolerance_below": …, "tolerance_above": …}} '
                             "replacing the release's numbers")
    parser.add_argument("--demo", action="store_true", help="the generated-data demo (see above)")
    parser.add_argument("--paper", action=argparse.BooleanOptionalAction, default=None,
                        help="also score the paper's experiments under <runs>/paper/ (default: unless "
                             "--demo or --stages)")
    parser.add_argument("--widths", default="auto", help="full, tiny or auto (read off the weights; default)")
    add_device(parser)
    parser.add_argument("--tolerance", type=float, default=None, help="official weights: ± mean IU points (default 0.1)")
    parser.add_argument("--trained-below", type=float, default=None, help="re-trained: allowed shortfall (default 2.0)")
    parser.add_argument("--trained-above", type=float, default=None, help="re-trained: allowed excess (default 2.0)")
    parser.add_argument("--limit", type=int, help="score only the first N images (a smoke test; rows are not judged)")
    parser.add_argument("--save-dir", type=Path, help="also write each prediction as <dir>/<stage>-<source>/<id>.png")
    parser.add_argument("--report", type=Path, help="JSON report path (default <runs>/verify.json)")
    parser.add_argument("--dataset", type=Path, metavar="DIR",
                        help="score the stages trained on your own dataset (stage --dataset DIR) on its val "
                             "split: per-class IU with its class names, a confusion-matrix PNG, no PASS/FAIL")
    parser.add_argument("--ignore-label", type=int, default=255,
                        help="--dataset: the label to ignore (default 255; colour masks: the colour of "
                             "classes.txt's line N, from 0)")
    add_quiet(parser)


def run(args: argparse.Namespace) -> int:
    from reproduce.evaluation import verify as V
    from reproduce.models import MODELS

    if args.dataset is not None:
        return _verify_dataset(args)
    stages = args.stages or (V.DEMO_STAGES if args.demo else V.ALL_STAGES)
    unknown = [s for s in stages if s not in MODELS]
    if unknown:
        raise UserError(f"unknown stage(s) {', '.join(unknown)} (choose from {', '.join(MODELS)})")
    if args.limit is not None and args.limit < 1:
        raise UserError("--limit must be at least 1")
    published = None
    if args.published_json is not None:
        try:
            published = V.load_published(args.published_json)
        except ValueError as err:
            raise UserError(str(err)) from None
    from reproduce.evaluation.experiments import EXPERIMENTS

    paper = args.paper if args.paper is not None else not (args.demo or args.stages)
    world = _join_torchrun(args.device)
    report = V.verify(
        voc_dir=args.voc_dir, runs_dir=args.runs, weights_dir=args.weights_dir, split=args.split,
        split_file=args.split_file, stages=stages, data_dir=args.data_dir,
        sources=args.sources or (("trained",) if args.demo else V.SOURCES),
        published=published, published_origin=str(args.published_json or ""), use_release=not args.demo,
        widths=args.widths, device=args.device,
        official_tol=_given(args.tolerance, V.OFFICIAL_TOLERANCE),
        trained_below=_given(args.trained_below, V.TRAINED_BELOW),
        trained_above=_given(args.trained_above, V.TRAINED_ABOVE),
        limit=args.limit, progress=not args.quiet, save_dir=args.save_dir,
        experiments=EXPERIMENTS if paper else (),
        log=lambda line: print(line, file=sys.stderr, flush=True) if world.is_root else None)
    from reproduce.training.distributed import destroy_process_group

    destroy_process_group(world)   # the scoring's collectives are done on every rank
    if not world.is_root:  # every rank scored its shard; rank 0 holds the all-reduced totals
        return report.exit_status
    print(V.format_table(report))
    report_path = args.report or args.runs / "verify.json"
    V.write_report(report_path, report)
    print(f"report: {report_path}")
    return report.exit_status


def _given(value, default):
    if value is not None and value < 0:
        raise UserError("tolerances must be non-negative")
    return default if value is None else value


def _join_torchrun(device: str):
    """Under ``torchrun``, join the process group: images are sharded, histograms all-reduced."""
    from reproduce.training.distributed import init_process_group, world_from_env

    world = world_from_env()
    if world.distributed:
        import torch

        cuda = str(device).startswith("cuda") or (device == "auto" and torch.cuda.is_available())
        init_process_group(world, torch.device("cuda" if cuda else "cpu"))
    return world


def _verify_dataset(args: argparse.Namespace) -> int:
    """``verify --dataset DIR``: MEASURED rows for the stages trained on it (evaluation.own_data)."""
    from reproduce.data import DatasetError
    from reproduce.evaluation.own_data import DATASET_STAGES, verify_dataset

    unknown = [s for s in args.stages or () if s not in DATASET_STAGES]
    if unknown:
        raise UserError(f"--dataset: unknown stage(s) {', '.join(unknown)} (choose from {', '.join(DATASET_STAGES)})")
    if args.limit is not None and args.limit < 1:
        raise UserError("--limit must be at least 1")
    try:
        return verify_dataset(args.dataset, args.runs, stages=args.stages, ignore_label=args.ignore_label,
                              device=args.device, widths=args.widths,
                              limit=args.limit, progress=not args.quiet, report=args.report,
                              log=lambda line: print(line, flush=True))
    except DatasetError as err:
        raise UserError(str(err)) from None

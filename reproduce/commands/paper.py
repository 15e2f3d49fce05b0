"""The CVPR 2015 paper's experiments: what each runs, the published figure, and Fig. 5.

``python -m reproduce paper`` prints one row per experiment (``reproduce.evaluation.
experiments``): where in the paper, what it varies, the published mean IU (or the finding,
where the paper gives no number), whether its run exists under ``<runs>/paper/<experiment>/``,
and the ``stage`` command that runs it. ``--plot F`` draws Fig. 5 (training loss against
iterations and wall time, whole-image training vs loss sampling) from the runs it finds.
``make verify`` scores every experiment whose run exists.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="runs folder (experiments under <runs>/paper/)")
    parser.add_argument("--weights-dir", type=Path, default=Path("weights"),
                        help="where the ILSVRC classifiers are (the init of the commands; default weights)")
    parser.add_argument("--data-dir", type=Path, default=Path("data"), help="the release's data/ folder")
    parser.add_argument("--plot", type=Path, help="write Fig. 5 from the loss-sampling runs found to this PNG")


def run(args: argparse.Namespace) -> int:
    from reproduce.evaluation import experiments as E

    print(E.format_table(args.runs, args.weights_dir, args.data_dir))
    if args.plot is not None:
        path = E.fig5(args.runs, args.plot)
        if path is None:
            print(f"Fig. 5: no run of {', '.join(E.FIG5)} has logged anything yet under {args.runs}/paper/")
        else:
            print(f"Fig. 5: {path}")
    return 0

"""``python -m reproduce train``: train from a solver.prototxt, as ``caffe train`` does.

``--weights`` copies weights (.caffemodel, .caffemodel.h5 or .pth; a comma-separated list is
copied in order) into the train net by layer name and nothing more — no surgery, exactly
``caffe train --weights``. ``--resume`` continues from a ``.solverstate.pt`` snapshot (or
Caffe's ``.solverstate`` or ``.solverstate.h5``; ``latest`` picks the newest ``.pt`` under the
solver's snapshot_prefix).
As in Caffe, ``--weights`` and ``--resume`` exclude each other. ``--max-iter`` replaces the
solver's ``max_iter`` as if edited in the prototxt (so a ``poly`` schedule follows it).
``--data PARAM=DIR`` relocates the Python data layers' directories (``sbdd_dir``,
``voc_dir``, …), relative paths being taken from the working directory.
``--loss-sampling P`` and ``--class-weights FILE`` set two of the paper's ablations on the train
net's SoftmaxWithLoss layers (``reproduce.training.ablations``; CVPR 2015 Sec. 3.4, 4.3) —
beyond ``caffe train``: the solver file is used as it is (no batch growth by 1/P: set its
``iter_size``), and nothing records them for a resume (``stage`` does).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--solver", required=True, help="the solver .prototxt")
    parser.add_argument("--weights", help="weights to start from (comma-separated list allowed)")
    parser.add_argument("--resume", help="snapshot to continue from (.solverstate.pt, or Caffe's .solverstate[.h5]), or 'latest'")
    parser.add_argument("--max-iter", type=int, help="replace the solver's max_iter")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present; the default), cpu, cuda or cuda:N")
    parser.add_argument("--data", action="append", default=[], metavar="PARAM=DIR",
                        help="data layer directory override, e.g. sbdd_dir=data/sbdd/dataset")
    parser.add_argument("--log-jsonl", metavar="PATH", help="append one JSON line per iteration, "
                                                           "snapshot and test to PATH")
    parser.add_argument("--loss-sampling", type=float, default=1.0, metavar="P",
                        help="keep each loss term with probability P (CVPR 2015 Sec. 3.4); default 1")
    parser.add_argument("--class-weights", metavar="FILE",
                        help="weight each loss term by its class (a file of one weight per class)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress bar and no Caffe-style log lines on stderr")


def run(args: argparse.Namespace) -> int:
    from . import NonFiniteLossError, SGDSolver, latest_snapshot

    if args.weights and args.resume:
        return _fail("give a snapshot to resume training or weights to finetune, but not both")
    if not args.quiet and not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        overrides = _parse_overrides(args.data)
        from reproduce.weights.pretrained import resolve_device

        solver = SGDSolver(args.solver, data_root_overrides=overrides, device=resolve_device(args.device))
        for path in (args.weights.split(",") if args.weights else []):
            solver.net.copy_from(_read_weights(path.strip()))
        _loss_options(solver.net, args.loss_sampling, args.class_weights)
        if args.max_iter is not None:
            if args.max_iter < 0:
                return _fail(f"--max-iter must not be negative, got {args.max_iter}")
            solver.param.max_iter = args.max_iter
        resume = args.resume
        if resume == "latest":
            resume = latest_snapshot(solver.snapshot_prefix)
            if resume is None:
                return _fail(f"no snapshot {solver.snapshot_prefix}_iter_*.solverstate.pt to resume from")
        log_file = open(args.log_jsonl, "a") if args.log_jsonl else None
        try:
            if log_file is not None:
                solver.add_callback(lambda record: (log_file.write(json.dumps(record) + "\n"),
                                                    log_file.flush()))
            solver.solve(resume_file=resume, progress=not args.quiet and sys.stderr.isatty())
        finally:
            if log_file is not None:
                log_file.close()
    except NonFiniteLossError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except _user_errors() as err:
        return _fail(str(err))
    if solver.last_snapshot is not None:
        print(f"last snapshot: {solver.last_snapshot}")
    return 0


def train_main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (without the ``train`` word) and train; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m reproduce train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except FileNotFoundError as err:
        return _fail(str(err))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _user_errors() -> tuple[type[BaseException], ...]:
    """What a user can fix: bad solver, net, weights or data; printed as one line."""
    from reproduce.caffe.errors import CaffeFormatError
    from reproduce.data import DatasetError, ParamStrError, UnknownDataLayerError
    from reproduce.net import LayerError, NetError, UnsupportedLayerError

    from reproduce.training.ablations import AblationError

    from . import SolverConfigError

    return (SolverConfigError, CaffeFormatError, NetError, LayerError, UnsupportedLayerError,
            DatasetError, ParamStrError, UnknownDataLayerError, FileNotFoundError, AblationError)


def _loss_options(net, sampling: float, weights_file: str | None) -> None:
    from reproduce.net.layers.softmax_loss import SoftmaxWithLoss
    from reproduce.training import ablations

    if sampling == 1.0 and not weights_file:
        return
    losses = [layer for layer in net.layer_dict.values() if isinstance(layer, SoftmaxWithLoss)]
    if not losses:
        raise ablations.AblationError(f"--loss-sampling/--class-weights: the train net {net.name!r} "
                                      f"has no SoftmaxWithLoss layer")
    weights = None
    if weights_file:
        classes = {int(net.blob_shapes[layer.layer_param.bottom[0]][layer.axis]) for layer in losses}
        if len(classes) > 1:
            raise ablations.AblationError(f"--class-weights: the train net's losses score "
                                          f"{sorted(classes)} classes; one file cannot weight them all")
        weights = ablations.read_class_weights(weights_file, classes.pop())
    ablations.configure_loss(net, sampling, weights)


def _parse_overrides(items: list[str]) -> dict[str, str] | None:
    from . import SolverConfigError

    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise SolverConfigError(f"--data expects PARAM=DIR (e.g. sbdd_dir=data/sbdd/dataset), got {item!r}")
        overrides[key] = str(Path(value).resolve())
    return overrides or None


def _read_weights(path: str):
    from reproduce.weights.convert import load_weights

    return load_weights(path)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2

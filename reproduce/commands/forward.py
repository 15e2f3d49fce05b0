"""Run a Caffe net on arrays: ``forward --prototxt P [--weights W] --input X.npz [-o Y.npz] [--blobs …]``.

The ``.npz`` holds one array per input blob, keyed by the blob's name (e.g. ``data``,
N×C×H×W float32, any H×W). The output ``.npz`` holds the requested blobs keyed by name:
the net's outputs by default, ``--blobs all`` for every blob (as pycaffe's ``net.blobs``),
or a comma-separated list.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from reproduce.cli import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prototxt", type=Path, required=True, help="net definition")
    parser.add_argument("--weights", type=Path, help=".caffemodel, .caffemodel.h5 or .pth")
    parser.add_argument("--input", type=Path, required=True, help=".npz with one array per input blob")
    parser.add_argument("-o", "--out", type=Path, help="write the blobs to this .npz")
    parser.add_argument("--blobs", default="outputs", help="'outputs' (default), 'all', or names a,b,c")
    parser.add_argument("--phase", choices=("test", "train"), default="test")


def run(args: argparse.Namespace) -> int:
    import torch

    from reproduce.weights.convert import load_weights
    from reproduce.net import Net, NetError

    inputs = _read_inputs(args.input)
    net = Net(args.prototxt, phase=args.phase)
    if args.weights is not None:
        net.copy_from(load_weights(args.weights))
    with torch.no_grad():
        try:
            outputs = net.forward(**{name: array for name, array in inputs.items()
                                     if name in net.inputs or name not in net.blobs})
        except NetError as err:
            raise UserError(f"{args.input}: {err}") from None
    if args.blobs == "outputs":
        chosen = dict(outputs)
    elif args.blobs == "all":
        chosen = dict(net.blobs)
    else:
        names = [n.strip() for n in args.blobs.split(",") if n.strip()]
        unknown = [n for n in names if n not in net.blobs]
        if unknown:
            raise UserError(f"{args.prototxt}: no blob named {', '.join(unknown)} (blobs: {', '.join(net.blobs)})")
        chosen = {n: net.blobs[n] for n in names}
    arrays = {name: t.detach().cpu().numpy() for name, t in chosen.items()}
    for name, a in arrays.items():
        lo, hi = (float(a.min()), float(a.max())) if a.size else (float("nan"), float("nan"))
        print(f"{name:<20} {'×'.join(map(str, a.shape)):<20} [{lo:.6g}, {hi:.6g}]")
    if args.out is not None:
        from reproduce.caffe.files import atomic_output

        with atomic_output(args.out) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)
        print(f"wrote {args.out}")
    return 0


def _read_inputs(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such input file")
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":
            raise UserError(f"{path}: not an .npz archive (expected a zip of .npy arrays, one per input blob)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except (ValueError, OSError, EOFError) as err:
        raise UserError(f"{path}: not a readable .npz of arrays ({err})") from None

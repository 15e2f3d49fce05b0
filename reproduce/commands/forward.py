"""Run a Caffe net on arrays: ``forward --prototxt P [--weights W] --input X.npz [-o Y.npz] [--blobs …]``.

It prints each chosen blob's shape, min and max (``--top K``: a classifier's K best classes);
``--run runs/<stage>`` takes a trained stage's deploy.prototxt and final weights.

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
    from reproduce.commands.common import add_device

    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--prototxt", type=Path, help="net definition")
    source.add_argument("--run", type=Path, metavar="RUN_DIR",
                        help="a stage's run folder (runs/<stage>): its deploy.prototxt and final weights")
    parser.add_argument("--weights", type=Path, help=".caffemodel, .caffemodel.h5 or .pth")
    parser.add_argument("--input", type=Path, required=True, help=".npz with one array per input blob")
    parser.add_argument("-o", "--out", type=Path, help="write the blobs to this .npz")
    parser.add_argument("--blobs", default="outputs", help="'outputs' (default), 'all', or names a,b,c")
    parser.add_argument("--phase", choices=("test", "train"), default="test")
    parser.add_argument("--top", type=int, metavar="K",
                        help="a classifier's output (N×C, or N×C×1×1): print the K most probable classes per item")
    parser.add_argument("--labels", type=Path, metavar="FILE",
                        help="with --top: class names, one a line (e.g. ILSVRC's synset_words.txt)")
    add_device(parser)


def run(args: argparse.Namespace) -> int:
    import torch

    from reproduce.net import Net, NetError
    from reproduce.weights.convert import load_weights
    from reproduce.weights.pretrained import resolve_device

    if args.top is not None and args.top < 1:
        raise UserError("--top must be at least 1")
    labels = _read_labels(args.labels) if args.labels is not None else None
    inputs = _read_inputs(args.input)
    if args.run is not None:
        from reproduce.training.run_folder import read_run

        found = read_run(args.run)
        net = Net(found.net_param(), phase=args.phase)
        weights = args.weights or found.weights
        source = found.deploy or args.run
    else:
        net = Net(args.prototxt, phase=args.phase)
        weights, source = args.weights, args.prototxt
    if weights is not None:
        net.copy_from(load_weights(weights))
    net = net.to(resolve_device(args.device))
    _check_memory(net, inputs, args.input)
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
            raise UserError(f"{source}: no blob named {', '.join(unknown)} (blobs: {', '.join(net.blobs)})")
        chosen = {n: net.blobs[n] for n in names}
    arrays = {name: t.detach().cpu().numpy() for name, t in chosen.items()}
    for line in describe_blobs(arrays):
        print(line)
    if args.top is not None:
        lines = top_classes({name: arrays.get(name, outputs[name].detach().cpu().numpy()) for name in outputs},
                            args.top, labels)
        if not lines:
            shapes = ", ".join(f"{n} {'×'.join(map(str, t.shape))}" for n, t in outputs.items())
            raise UserError(f"--top: no output of {source} is a classifier's N×C scores ({shapes})")
        for line in lines:
            print(line)
    if args.out is not None:
        from reproduce.caffe.files import atomic_output

        with atomic_output(args.out) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)
        print(f"wrote {args.out}")
    return 0


def describe_blobs(arrays: dict[str, np.ndarray]) -> list[str]:
    """One line per blob with what each number is: ``prob  shape 1×2  min 0.0218  max 0.978``."""
    width = max((len(n) for n in arrays), default=4)
    lines = []
    for name, a in arrays.items():
        lo, hi = (float(a.min()), float(a.max())) if a.size else (float("nan"), float("nan"))
        lines.append(f"{name:<{width}}  shape {'×'.join(map(str, a.shape)) or 'scalar':<16} "
                     f"min {lo:<12.6g} max {hi:.6g}")
    return lines


def top_classes(outputs: dict[str, np.ndarray], k: int, labels: list[str] | None = None) -> list[str]:
    """The ``k`` highest-scoring classes of every classifier output (N×C or N×C×1×1), per item."""
    lines = []
    for name, a in outputs.items():
        if a.ndim < 2 or a.ndim > 4 or any(d != 1 for d in a.shape[2:]):
            continue
        scores = a.reshape(a.shape[0], a.shape[1])
        for item, row in enumerate(scores):
            order = np.argsort(-row, kind="stable")[:k]
            lines.append(f"{name} item {item}: top {len(order)} of {row.size} classes")
            for rank, c in enumerate(order, 1):
                label = f"  {labels[c]}" if labels and c < len(labels) else ""
                lines.append(f"  {rank:>2}. class {c:<5} score {row[c]:.6g}{label}")
    return lines


def _read_labels(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such labels file")
    return [line.strip() for line in path.read_text(errors="replace").splitlines()]


def _check_memory(net, inputs: dict, path: Path) -> None:
    """Refuse, before any blob is allocated, a forward whose blobs would not fit in memory
    (``reproduce.evaluation.memory``: the peak of the live blobs, as ``infer`` estimates it)."""
    from reproduce.evaluation.memory import available_bytes, format_bytes, forward_bytes

    shapes = {name: tuple(np.shape(inputs[name])) for name in net.inputs if name in inputs}
    if len(shapes) != len(net.inputs):
        return   # the forward names what is missing
    try:
        need = forward_bytes(net, shapes)
    except Exception:   # a shape the layers refuse: the forward says so in its own words
        return
    available = available_bytes(next((p.device for p in net.parameters()), None))
    if available is not None and need > available:
        raise UserError(f"{path}: a forward on these inputs needs about {format_bytes(need)} of blobs, more "
                        f"than the {format_bytes(available)} available; give smaller inputs")


def _read_inputs(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an .npz, each member's .npy header checked against what the member holds
    before anything is allocated (a header may declare terabytes)."""
    import zipfile
    import zlib

    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such input file")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: an empty file (0 bytes), not an .npz of arrays")
    with open(path, "rb") as f:
        if f.read(4) != b"PK\x03\x04":
            raise UserError(f"{path}: not an .npz archive (expected a zip of .npy arrays, one per input blob)")
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                _check_npy_member(zf, info, path)
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except UserError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise UserError(f"{path}: not a readable .npz of arrays ({str(err).splitlines()[0] if str(err) else type(err).__name__}; "
                        f"truncated?)") from None


def _check_npy_member(zf, info, path: Path) -> None:
    """A member's declared array size against its stored size (the .npy format stores the data raw)."""
    from numpy.lib import format as npy

    if not info.filename.endswith(".npy"):
        return
    with zf.open(info) as member:
        version = npy.read_magic(member)
        reader = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        shape, _, dtype = reader(member, max_header_size=10000)
        header = member.tell() if member.seekable() else 0
    if dtype.hasobject:
        raise UserError(f"{path}: member {info.filename!r} holds Python objects, not numbers; not loaded")
    declared = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if declared > info.file_size - min(header, info.file_size):
        raise UserError(f"{path}: member {info.filename!r} declares a {'×'.join(map(str, shape))} {dtype} array "
                        f"({declared:,} bytes) but holds {info.file_size:,} bytes (truncated or forged); not loaded")

"""Export a net out of PyTorch: ONNX (``.onnx``) or ``torch.export`` (``.pt2``), any input size.

``python -m reproduce export --net fcn8s --weights weights/fcn8s-heavy-pascal.pth -o fcn8s.onnx``
(or ``--prototxt NET [--weights W]``) writes the net's deploy graph in the format of OUT's
suffix: ``.onnx`` (opset ``--opset``, default 18, at least 17; onnxruntime, OpenCV, …) or
``.pt2`` (a ``torch.export`` ExportedProgram: ``torch.export.load(path).module()(data=x)``
returns ``{"score": …}``). Batch, height and width stay dynamic wherever the net allows;
inputs and outputs carry the net's blob names; loss and accuracy layers are left out, so a
train/val prototxt exports as its deploy net. ``--input NAME=N,C,H,W`` sets an input's
shape (the channels of a Python data layer's top, the example's size); ``--static`` fixes
every axis at those shapes, for importers that cannot read symbolic shapes (OpenCV's).
Without ``--weights`` the net keeps its fillers' values. See ``reproduce.export``.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from reproduce.cli import UserError

FORMATS = (".onnx", ".pt2")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from reproduce.commands.common import add_device, add_quiet, add_run

    source = parser.add_mutually_exclusive_group(required=True)
    add_run(source)
    source.add_argument("--net", help="model name (fcn32s fcn16s fcn8s fcn8s-atonce fcn-alexnet, "
                                      "nyud-…, siftflow-…, pascalcontext-…)")
    source.add_argument("--prototxt", type=Path, help="any net definition (deploy, train or val)")
    parser.add_argument("--weights", type=Path, help=".caffemodel, .caffemodel.h5 or .pth (default: the fillers)")
    parser.add_argument("-o", "--out", type=Path, required=True, help="OUT.onnx or OUT.pt2")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset (at least 17; default 18)")
    parser.add_argument("--input", action="append", default=[], metavar="NAME=N,C,H,W",
                        help="an input's shape (repeatable); the example's size and the static axes")
    parser.add_argument("--static", action="store_true", help="fix every axis at the input shapes")
    parser.add_argument("--widths", default="auto", help="with --net: full, tiny, or auto (read off --weights)")
    parser.add_argument("--num-classes", type=int, help="with --net: classes (default: the weights', else the release's)")
    add_device(parser, "device the net is traced on (a .pt2 keeps it)")
    add_quiet(parser, "no progress lines")


def parse_inputs(values: list[str]) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for value in values:
        name, sep, dims = value.partition("=")
        try:
            shape = tuple(int(d) for d in dims.split(","))
        except ValueError:
            shape = ()
        if not sep or not name or not shape or min(shape) <= 0:
            raise UserError(f"--input {value!r}: expected NAME=N,C,H,W (positive integers)")
        shapes[name] = shape
    return shapes


def run(args: argparse.Namespace) -> int:
    from reproduce import export

    from reproduce.commands.common import apply_run

    args.weights_required = False      # without weights the net keeps its fillers' values
    apply_run(args)
    suffix = args.out.suffix.lower()
    if suffix not in FORMATS:
        raise UserError(f"{args.out}: the format follows the suffix, {' or '.join(FORMATS)}")
    if suffix == ".onnx":
        export.require_onnx()
    if args.weights is not None and not args.weights.is_file():
        raise UserError(f"{args.weights}: no such weights file")
    from reproduce.commands.common import phase

    shapes = parse_inputs(args.input)
    with phase(f"building {args.net or args.prototxt}" + (f" with {args.weights}" if args.weights else ""),
               args.quiet):
        net = _build(args, shapes)
    graph = export.DeployGraph(net)
    unknown = set(shapes) - set(graph.inputs)
    if unknown:
        raise UserError(f"--input names {', '.join(sorted(unknown))}, which the deploy graph "
                        f"does not take (inputs: {', '.join(graph.inputs)})")
    axes = ({name: {} for name in graph.inputs} if args.static
            else export.dynamic_axes(graph, shapes))
    start = time.perf_counter()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".pt2":
        with phase("tracing with torch.export", args.quiet):
            program = export.to_exported_program(graph, input_shapes=shapes, dynamic=not args.static)
        with phase(f"writing {args.out}", args.quiet):
            export.save_exported_program(program, args.out)
    else:
        with phase(f"tracing and writing ONNX opset {args.opset} (minutes for a full-width net)", args.quiet):
            export.to_onnx(graph, args.out, opset=args.opset, input_shapes=shapes,
                           dynamic=not args.static)
    seconds = time.perf_counter() - start
    built = graph.input_shapes()
    for name in graph.inputs:
        shape = list(shapes.get(name, built[name]))
        dims = [f"{axes[name][a].name}≥{axes[name][a].minimum}" if a in axes[name] else str(d)
                for a, d in enumerate(shape)]
        print(f"input  {name}: {'×'.join(dims)}")
    for name in graph.outputs:
        print(f"output {name}")
    size = sum(p.stat().st_size for p in [args.out, *args.out.parent.glob(args.out.name + ".data")])
    print(f"wrote {args.out} ({size / 2**20:.1f} MiB) in {seconds:.1f} s")
    return 0


def _build(args: argparse.Namespace, shapes):
    from reproduce.net import Net
    from reproduce.weights.pretrained import load_net, resolve_device

    try:
        if args.prototxt is not None:
            net = Net(args.prototxt, phase="test", input_shapes=shapes or None)
            if args.weights is not None:
                net.copy_from(args.weights)
            return net.to(resolve_device(args.device))
        from reproduce.models import MODELS, net_param

        if args.net not in MODELS:
            raise UserError(f"unknown --net {args.net!r} (choose from {', '.join(MODELS)})")
        if args.weights is not None:
            return load_net(args.net, args.weights, split="deploy", widths=args.widths,
                            num_classes=args.num_classes, device=args.device)
        widths = "full" if args.widths == "auto" else args.widths
        net = Net(net_param(args.net, "deploy", num_classes=args.num_classes, widths=widths),
                  phase="test", input_shapes=shapes or None)
        return net.to(resolve_device(args.device))
    except ValueError as err:  # NetError, shape mismatches, undetectable widths
        source = args.weights or args.prototxt
        raise UserError(f"{source}: {err}" if source and str(source) not in str(err)
                        else str(err)) from None

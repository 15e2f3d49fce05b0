"""The command line: ``python -m reproduce <command> …``.

Each command lives in its own module with ``add_arguments(parser)`` and ``run(args) -> int``;
this file only lists them, so ``--help`` stays fast (nothing heavy is imported until a
command runs). Errors the user can act on (bad files, missing data) print one line and exit
with status 2; they never show a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

COMMANDS = {
    "convert": ("reproduce.commands.convert", "convert caffemodels (V1, binary, HDF5) to .pth and back; transplant"),
    "inspect": ("reproduce.commands.inspect", "show a caffemodel's or prototxt's format, layers and blob shapes"),
    "forward": ("reproduce.commands.forward", "run a net from prototxt (+ weights) on arrays in an .npz"),
    "train": ("reproduce.commands.train", "train from a solver.prototxt, as `caffe train` does"),
    "prototxt": ("reproduce.commands.prototxt", "emit the reference prototxts from the net definitions"),
    "stage": ("reproduce.commands.stage", "run one stage of the staged FCN pipeline (32s, 16s, 8s, …)"),
    "verify": ("reproduce.commands.verify", "score stages on seg11valid against the published numbers"),
    "paper": ("reproduce.commands.paper", "the CVPR 2015 experiments: commands, published figures, Fig. 5"),
    "export": ("reproduce.commands.export", "export a net to ONNX (.onnx) or torch.export (.pt2), any input size"),
    "infer": ("reproduce.commands.infer", "segment images: palette PNGs and overlays"),
    "weights": ("reproduce.commands.weights", "download, check and convert the official caffemodels"),
    "data": ("reproduce.commands.data", "download, extract and check the release's datasets (SBD, VOC, NYUDv2, …)"),
    "demo": ("reproduce.commands.demo", "the whole pipeline at small scale on generated data"),
    "pycaffe": ("reproduce.commands.pycaffe", "pycaffe on PyTorch: --path prints the folder that makes `import caffe` this port"),
}


from reproduce.commands.common import UserError  # noqa: E402  (an error the user can fix: one line, exit 2)


# Errors that mean "your input is wrong", printed as one line. Loaded only if their module is.
USER_ERRORS = (
    "reproduce.caffe.errors:CaffeFormatError", "reproduce.weights.surgery:SurgeryError",
    "reproduce.data.errors:DatasetError", "reproduce.data.errors:SampleError",
    "reproduce.data.param_str:ParamStrError",
    "reproduce.data.registry:UnknownDataLayerError", "reproduce.net.net:NetError",
    "reproduce.net.layers.base:LayerError", "reproduce.net.layers.registry:UnsupportedLayerError",
    "reproduce.net.coord_map:CoordMapError", "reproduce.net.spec:SpecError",
    "reproduce.net.fillers:FillerError", "reproduce.net.state_rules:NetStateError",
    "reproduce.solver.errors:SolverConfigError", "reproduce.solver.errors:NonFiniteLossError",
    "reproduce.weights.download:DownloadError", "reproduce.weights.legacy_v1:LegacyExportError",
    "reproduce.data.fetch:DataFetchError", "reproduce.training.lock:RunDirBusy",
    "reproduce.export:ExportError", "reproduce.pycaffe.layer:PythonLayerError",
    "reproduce.training.run_folder:RunFolderError",
)


def _user_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [UserError, FileNotFoundError, IsADirectoryError, PermissionError]
    for entry in USER_ERRORS:
        module, name = entry.split(":")
        if module in sys.modules:
            errors.append(getattr(sys.modules[module], name))
    return tuple(errors)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m reproduce",
                                     description="The Berkeley Fully Convolutional Networks, Caffe-exact, in PyTorch.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        sub.add_parser(name, help=help_, add_help=False)
    return parser


def _version() -> str:
    from reproduce import __version__

    return __version__


def command_parser(name: str) -> argparse.ArgumentParser:
    """The parser of command ``name``: its flags, plain-text help, examples and ``--version``."""
    from reproduce.commands import common

    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"python -m reproduce {name}", description=common.plain(module.__doc__),
                                     epilog=common.epilog(name),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    module.add_arguments(parser)
    common.finish(parser, _version())
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--version":
        print(f"python -m reproduce {_version()}")
        return 0
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        parser = build_parser()
        if argv and argv[0] not in ("-h", "--help"):
            parser.print_usage(sys.stderr)
            print(f"error: unknown command {argv[0]!r}; choose from {', '.join(COMMANDS)}", file=sys.stderr)
            return 2
        parser.print_help()
        return 0
    name, rest = argv[0], argv[1:]
    module = importlib.import_module(COMMANDS[name][0])
    args = command_parser(name).parse_args(rest)
    from reproduce.runtime import keep_freed_memory

    keep_freed_memory()
    try:
        return int(module.run(args) or 0)
    except _user_errors() as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and closed early
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130

"""pycaffe on PyTorch: where the ``caffe`` shim is, for unmodified pycaffe scripts.

``--path`` prints the folder to put on PYTHONPATH so that ``import caffe`` (and
``caffe.io``, ``caffe.proto.caffe_pb2``, ``caffe.net_spec``, ``caffe.coord_map``) resolve to
``reproduce.pycaffe``; it shadows a real Caffe. For example:

    PYTHONPATH=$(python -m reproduce pycaffe --path) python infer.py

Python layers named in a net (``python_param { module … }``) are imported from sys.path by
that API only, as Caffe does; every other command of this project refuses to run them.
"""
from __future__ import annotations

import argparse
from pathlib import Path


def shim_path() -> Path:
    """The folder holding the ``caffe`` shim package."""
    import reproduce.pycaffe

    return Path(reproduce.pycaffe.__file__).resolve().parent / "shim"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--path", action="store_true",
                        help="print the folder that makes `import caffe` this port")


def run(args: argparse.Namespace) -> int:
    if args.path:
        print(shim_path())
        return 0
    print(__doc__.strip())
    print(f"\nshim folder: {shim_path()}")
    return 0

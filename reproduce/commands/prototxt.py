"""Emit the reference prototxts (train, val, deploy, solver) of the VOC nets from their definitions."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--out", type=Path, default=Path("prototxt_ref"), help="output folder")


def run(args: argparse.Namespace) -> int:
    from reproduce.models import write_prototxt_ref

    for path in write_prototxt_ref(args.out):
        print(path)
    return 0

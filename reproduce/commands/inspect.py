"""Show what a Caffe file holds: format (V1, current, HDF5, prototxt), net name, layers and blob shapes."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", type=Path, help=".caffemodel, .caffemodel.h5, .pth or .prototxt")


def run(args: argparse.Namespace) -> int:
    for line in describe(args.src):
        print(line)
    return 0


def describe(path: Path) -> list[str]:
    name = path.name.lower()
    if name.endswith((".prototxt", ".pt.txt", ".txt")):
        return _describe_prototxt(path)
    if name.endswith((".h5", ".hdf5")):
        from reproduce.caffe.weights import read_weights

        return _table(path, "HDF5 caffemodel", None, [(layer, "", blobs) for layer, blobs in read_weights(path).items()])
    if name.endswith((".pth", ".pt")):
        from reproduce.weights.convert import load_weights

        return _table(path, "PyTorch state_dict", None, [(layer, "", blobs) for layer, blobs in load_weights(path).items()])
    from reproduce.caffe.weights import caffemodel_layers, read_caffemodel

    net = read_caffemodel(path)
    form = "V1 binary caffemodel (layers)" if net.has("layers") else "binary caffemodel (layer)"
    return _table(path, form, net.name, caffemodel_layers(net, path))


def _table(path: Path, form: str, net_name, rows) -> list[str]:
    lines = [f"file:   {path}", f"format: {form}"]
    if net_name:
        lines.append(f"net:    {net_name}")
    total = 0
    width = max((len(r[0]) for r in rows), default=5)
    for layer, type_, blobs in rows:
        shapes = "  ".join("×".join(map(str, b.shape)) or "scalar" for b in blobs)
        total += sum(int(b.size) for b in blobs)
        lines.append(f"  {layer:<{width}}  {type_:<16} {shapes}")
    lines.append(f"layers with blobs: {sum(1 for r in rows if r[2])}, parameters: {total:,}")
    return lines


def _describe_prototxt(path: Path) -> list[str]:
    from reproduce.caffe import text
    from reproduce.caffe.upgrade import upgrade_net

    raw = text.read(path, "NetParameter")
    net, notes = upgrade_net(raw, path=str(path))
    form = "V1 prototxt (layers)" if raw.has("layers") else "prototxt (layer)"
    lines = [f"file:   {path}", f"format: {form}" + (f", upgraded: {'; '.join(notes)}" if notes else ""),
             f"net:    {net.name}"]
    width = max((len(l.name) for l in net.layer), default=5)
    for layer in net.layer:
        lines.append(f"  {layer.name:<{width}}  {layer.type:<16} {', '.join(layer.bottom)} -> {', '.join(layer.top)}")
    lines.append(f"layers: {len(net.layer)}")
    return lines

"""Golden fixtures for Caffe's data layers: three SGD steps (and CaffeNet's 20) from generated data.

One script for both sides: ``--backend caffe`` runs the real pycaffe (PYTHONPATH naming a built
BVLC Caffe's ``python/`` folder; the fixtures in ``tests/golden_data/`` come from it; ImageData
and WindowData need a Caffe built with OpenCV), ``--backend reproduce`` runs this project's
pycaffe shim on the very same files, and ``tests/test_golden_data_layers.py`` compares the two
at the solver tolerance.

Inputs, all generated (seeded) in ``--work``: an LMDB of raw ``Datum`` records, lists of PNG
images (and one JPEG), two HDF5 files, two pictures with R-CNN window files. The nets: a small
conv → pool → ip → SoftmaxWithLoss net behind each data layer — Data with a mean file and a
scale; HDF5Data over two files; ImageData with a resize, a mean value and two passes over its
list (``image_data``), with centred 11×11 crops of five images of varied sizes under a
``root_folder`` (``image_data_crop``), and grey reads resized to 12×10, cropped to 9×9 and
mirrored (``image_data_grey``, behind a 1×1 convolution and a global average, which no flip
changes), and shuffled, a batch being the whole list, so that whatever
Caffe's order the batch holds the same items (``image_data_shuffle``); WindowData with one
foreground and one background window (so that Caffe's draws cannot change the batch), windows
between the thresholds dropped, ``context_pad`` reaching past the image borders and a mean file
(``window_data``), and with several windows of each kind, mirror, square crops and cached images
(``window_data_mirror``: its tops only) — and CaffeNet's train_val at 1/8 width
(``benchmarks/caffenet_lmdb.py``) without crop, mirror or dropout, 20 iterations. Caffe's random
choices come from its Boost generator, which is not emulated: crops are centred (``state {
phase: TEST }`` in the ImageData nets), and the test compares mirrored items and shuffled
batches and drawn windows up to those choices (its docstring says how). CaffeNet learns at 0.001
from weights of deviation 0.01 (its fillers'), the small nets at 0.01 from He-scaled ones.
Initial weights are random, written once as a caffemodel that both sides load. Per net the npz
holds ``step<k>/loss`` and ``step<k>/param/<layer>/<i>`` (CaffeNet: every loss and the final
parameters; of a blob above 20,000 values, ``step<k>/sample/<layer>/<i>``, every 61st), for the
ImageData and WindowData nets ``step<k>/top/data`` and ``step<k>/top/label``, and for a net that
reads a JPEG ``input/<path>``, the SHA-256 of that file (the pictures are made in numpy; the
JPEG's bytes are OpenCV's encoder's, which the test checks are still those Caffe decoded).

The real Caffe's Python may lack what writes the inputs (lmdb, OpenCV, h5py): write them with
this project's environment first, into ``--work``, whose initial weights the Caffe run then reads::

    python benchmarks/golden_data_layers.py --backend reproduce --work W --out /tmp/ours
    PYTHONPATH=CAFFE/python python3 benchmarks/golden_data_layers.py --backend caffe --work W --out tests/golden_data
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

SAMPLE_ABOVE = 20000

SOLVER = '''net: "{net}"
base_lr: {lr}
lr_policy: "fixed"
momentum: 0.9
weight_decay: 0.0005
max_iter: 100
display: 0
snapshot_after_train: false
solver_mode: CPU
random_seed: 3
'''

HEAD = '''layer {{ name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param {{ num_output: 4 kernel_size: 3 stride: 2 }} }}
layer {{ name: "relu" type: "ReLU" bottom: "conv" top: "conv" }}
layer {{ name: "pool" type: "Pooling" bottom: "conv" top: "pool" pooling_param {{ pool: MAX kernel_size: 2 stride: 2 }} }}
layer {{ name: "ip" type: "InnerProduct" bottom: "pool" top: "ip" inner_product_param {{ num_output: {classes} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }}
'''

# Invariant under left-right flips of the data (1×1 convolution, global average): the losses and
# parameters after a batch whose items Caffe mirrored at random are its own, whatever the coins
FLIP_HEAD = '''layer {{ name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param {{ num_output: 4 kernel_size: 1 }} }}
layer {{ name: "relu" type: "ReLU" bottom: "conv" top: "conv" }}
layer {{ name: "pool" type: "Pooling" bottom: "conv" top: "pool" pooling_param {{ pool: AVE global_pooling: true }} }}
layer {{ name: "ip" type: "InnerProduct" bottom: "pool" top: "ip" inner_product_param {{ num_output: {classes} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }}
'''


def make_inputs(work: Path) -> dict[str, str]:
    """Write the data and the nets into ``work``; ``{name: solver path}``."""
    import cv2
    import h5py

    import caffenet_lmdb

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (10, 3, 19, 23)).astype(np.uint8)
    labels = rng.integers(0, 5, 10)
    caffenet_lmdb.write_lmdb(work / "lmdb", images, labels)
    caffenet_lmdb.write_mean(work / "mean.binaryproto", images.astype(np.float32).mean(0))
    (work / "img").mkdir(exist_ok=True)
    lines = []
    for i in range(6):
        cv2.imwrite(str(work / "img" / f"{i}.png"), images[i].transpose(1, 2, 0))
        lines.append(f"{i}.png {labels[i]}")
    (work / "images.txt").write_text("\n".join(lines) + "\n")
    for k, n in enumerate((5, 4)):
        with h5py.File(work / f"h{k}.h5", "w") as f:
            f["data"] = rng.normal(0, 1, (n, 2, 11, 13)).astype(np.float32)
            f["label"] = rng.integers(0, 5, n).astype(np.float32)
    (work / "h5.txt").write_text("h0.h5\nh1.h5\n")
    nets = {
        "data": ('layer { name: "d" type: "Data" top: "data" top: "label" transform_param { '
                 'scale: 0.0078125 mean_file: "mean.binaryproto" } data_param { source: "lmdb" '
                 'batch_size: 4 backend: LMDB } }\n'),
        "image_data": ('layer { name: "d" type: "ImageData" top: "data" top: "label" transform_param { '
                       'mean_value: 104 mean_value: 117 mean_value: 123 scale: 0.01 } image_data_param { '
                       'source: "images.txt" root_folder: "img/" batch_size: 4 new_height: 15 new_width: 17 } }\n'),
        "hdf5_data": ('layer { name: "d" type: "HDF5Data" top: "data" top: "label" hdf5_data_param { '
                      'source: "h5.txt" batch_size: 3 } }\n'),
    }
    solvers = {}
    for name, data in nets.items():
        (work / f"{name}.prototxt").write_text(f'name: "{name}"\n' + data + HEAD.format(classes=5))
        (work / f"{name}_solver.prototxt").write_text(SOLVER.format(net=f"{name}.prototxt", lr=0.01))
        solvers[name] = f"{name}_solver.prototxt"
    # CaffeNet at 1/8 width: 227×227 records, no crop, mirror or dropout
    big = rng.integers(0, 256, (8, 3, 227, 227)).astype(np.uint8)
    caffenet_lmdb.write_lmdb(work / "train_lmdb", big, rng.integers(0, 10, 8))
    caffenet_lmdb.write_lmdb(work / "val_lmdb", big[:2], np.zeros(2, int))
    caffenet_lmdb.write_mean(work / "mean227.binaryproto", big.astype(np.float32).mean(0))
    text = caffenet_lmdb.train_val(8, 2).replace("crop_size: 227  ", "").replace(
        "mirror: true", "mirror: false").replace("dropout_ratio: 0.5", "dropout_ratio: 0").replace(
        '"mean.binaryproto"', '"mean227.binaryproto"')
    (work / "caffenet.prototxt").write_text(text)
    (work / "caffenet_solver.prototxt").write_text(SOLVER.format(net="caffenet.prototxt", lr=0.001))
    solvers["caffenet"] = "caffenet_solver.prototxt"
    solvers.update(make_image_window_inputs(work))
    return solvers


def _picture(rng, height: int, width: int, channels: int = 3) -> np.ndarray:
    """A smooth random picture (JPEG-friendly: a coarse random grid, linearly interpolated in
    numpy alone, so that no OpenCV version changes it, plus a little noise), H×W×C uint8."""
    coarse = rng.uniform(30, 225, (4, 5, channels))
    rows = np.stack([np.interp(np.linspace(0, 3, height), np.arange(4), coarse[:, j, c])
                     for j in range(5) for c in range(channels)], 1).reshape(height, 5, channels)
    big = np.stack([np.interp(np.linspace(0, 4, width), np.arange(5), rows[i, :, c])
                    for i in range(height) for c in range(channels)], 0)
    big = big.reshape(height, channels, width).transpose(0, 2, 1)
    return np.clip(big + rng.normal(0, 8, big.shape), 0, 255).astype(np.uint8)


def make_image_window_inputs(work: Path) -> dict[str, str]:
    """Images of varied sizes (PNG and one JPEG) under ``img2/`` for ImageData with crops, grey
    reads and mirrors, and two pictures with an R-CNN window file for WindowData."""
    import cv2

    import caffenet_lmdb

    rng = np.random.default_rng(23)
    (work / "img2").mkdir(exist_ok=True)
    sizes = [(13, 16), (15, 14), (12, 20), (17, 12), (14, 18)]
    names = ["a0.png", "a1.jpg", "a2.png", "a3.png", "a4.png"]
    labels = [1, 3, 0, 4, 2]
    for (h, w), name in zip(sizes, names):
        cv2.imwrite(str(work / "img2" / name), _picture(rng, h, w))
    (work / "crop.txt").write_text("".join(f"{n} {k}\n" for n, k in zip(names, labels)))
    # WindowData: two pictures; one foreground window (in picture 1) and one background window
    # (label 4, forced to 0; in picture 0), each reaching past a border so that context_pad pads,
    # and windows of overlap between the thresholds, which Caffe drops.
    cv2.imwrite(str(work / "img2" / "w0.png"), _picture(rng, 24, 30))
    cv2.imwrite(str(work / "img2" / "w1.png"), _picture(rng, 20, 18))
    (work / "windows.txt").write_text(
        "# 0\nw0.png\n3 24 30\n3\n4 0.1 14 9 29 23\n1 0.5 3 3 20 15\n2 0.45 0 0 10 10\n"
        "# 1\nw1.png\n3 20 18\n2\n2 0.8 0 2 9 15\n3 0.55 4 4 15 17\n")
    caffenet_lmdb.write_mean(work / "mean14.binaryproto", rng.uniform(90, 140, (3, 14, 14)))
    # Windows of both kinds, sampled at random by Caffe: only the tops' structure is compared
    (work / "windows_many.txt").write_text(
        "# 0\nw0.png\n3 24 30\n4\n1 0.9 2 3 12 20\n4 0.2 14 9 29 23\n2 0.7 20 1 28 9\n"
        "3 0.1 0 15 8 23\n# 1\nw1.png\n3 20 18\n3\n3 0.75 5 2 17 11\n1 0.05 0 0 6 19\n"
        "2 0.6 1 12 11 19\n")
    test = 'state { phase: TEST }\n'   # centred crops: Caffe's random ones come from Boost
    nets = {
        "image_data_crop": (test +
            'layer { name: "d" type: "ImageData" top: "data" top: "label" transform_param { '
            'crop_size: 11 mean_value: 100 mean_value: 110 mean_value: 120 scale: 0.02 } '
            'image_data_param { source: "crop.txt" root_folder: "img2/" batch_size: 3 } }\n', HEAD),
        "image_data_grey": (test +
            'layer { name: "d" type: "ImageData" top: "data" top: "label" transform_param { '
            'crop_size: 9 mirror: true mean_value: 128 scale: 0.015625 } image_data_param { '
            'source: "crop.txt" root_folder: "img2/" batch_size: 4 is_color: false '
            'new_height: 12 new_width: 10 } }\n', FLIP_HEAD),
        "window_data": (
            'layer { name: "d" type: "WindowData" top: "data" top: "label" transform_param { '
            'crop_size: 12 mean_file: "mean14.binaryproto" } window_data_param { '
            'source: "windows.txt" root_folder: "img2/" batch_size: 4 fg_threshold: 0.6 '
            'bg_threshold: 0.3 fg_fraction: 0.5 context_pad: 2 scale: 0.0125 } }\n', HEAD),
        "window_data_mirror": (
            'layer { name: "d" type: "WindowData" top: "data" top: "label" transform_param { '
            'crop_size: 10 mirror: true mean_value: 104 mean_value: 117 mean_value: 123 } '
            'window_data_param { source: "windows_many.txt" root_folder: "img2/" batch_size: 6 '
            'fg_threshold: 0.5 bg_threshold: 0.3 fg_fraction: 0.5 context_pad: 1 '
            'crop_mode: "square" scale: 0.01 cache_images: true } }\n', HEAD),
        "image_data_shuffle": (test +
            'layer { name: "d" type: "ImageData" top: "data" top: "label" transform_param { '
            'crop_size: 11 mean_value: 100 mean_value: 110 mean_value: 120 scale: 0.02 } '
            'image_data_param { source: "crop.txt" root_folder: "img2/" batch_size: 5 '
            'shuffle: true } }\n', HEAD),
    }
    solvers = {}
    for name, (data, head) in nets.items():
        (work / f"{name}.prototxt").write_text(f'name: "{name}"\n' + data + head.format(classes=5))
        (work / f"{name}_solver.prototxt").write_text(SOLVER.format(net=f"{name}.prototxt", lr=0.01))
        solvers[name] = f"{name}_solver.prototxt"
    return solvers


def initial_weights(caffe, solver_path: str, out: Path, seed: int, std: float | None = None) -> None:
    """Random weights for the solver's train net: normal, He-scaled (or of deviation ``std``, as
    CaffeNet's fillers), biases N(0, 0.1²)."""
    rng = np.random.default_rng(seed)
    solver = caffe.SGDSolver(solver_path)
    for name, blobs in solver.net.params.items():
        for i, blob in enumerate(blobs):
            fan_in = max(1, int(np.prod(blob.data.shape[1:])))
            scale = (std or np.sqrt(2.0 / fan_in)) if i == 0 else 0.1
            blob.data[...] = rng.normal(0, scale, blob.data.shape).astype(np.float32)
    solver.net.save(str(out))


# Nets whose data tops go into the fixture too; of the last, only they (its windows are Caffe's
# random draws, so its losses and parameters are not comparable)
WITH_TOPS = ("image_data", "image_data_crop", "image_data_grey", "image_data_shuffle", "window_data",
             "window_data_mirror")
TOPS_ONLY = ("window_data_mirror",)
# JPEG files a net reads, whose bytes (an encoder's choice) go into the fixture as SHA-256, so that
# an OpenCV whose encoder writes other bytes than the one Caffe read is named as the cause
JPEGS = {name: ("img2/a1.jpg",) for name in ("image_data_crop", "image_data_grey", "image_data_shuffle")}


def run(caffe, solver_path: str, weights: Path, steps: int, every_param: bool, tops: bool = False,
        tops_only: bool = False) -> dict[str, np.ndarray]:
    solver = caffe.SGDSolver(solver_path)
    solver.net.copy_from(str(weights))
    out = {}
    for k in range(1, steps + 1):
        solver.step(1)
        if tops:
            for top in ("data", "label"):
                out[f"step{k}/top/{top}"] = np.array(solver.net.blobs[top].data, np.float32)
        if tops_only:
            continue
        out[f"step{k}/loss"] = np.array(solver.net.blobs["loss"].data, np.float32)
        if every_param or k == steps:
            for name, blobs in solver.net.params.items():
                for i, blob in enumerate(blobs):
                    data = np.array(blob.data, np.float32)
                    if data.size > SAMPLE_ABOVE:   # keep the fixture small: every 61st value
                        out[f"step{k}/sample/{name}/{i}"] = data.reshape(-1)[::61].copy()
                    else:
                        out[f"step{k}/param/{name}/{i}"] = data
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("caffe", "reproduce"), required=True)
    parser.add_argument("--out", required=True, help="folder for the npz files")
    parser.add_argument("--work", help="folder for the generated data (default: a temporary one)")
    parser.add_argument("--only", help="comma-separated nets to run (default: all)")
    args = parser.parse_args(argv)
    if args.backend == "caffe":
        import caffe
        caffe.set_mode_cpu()
    else:
        import reproduce.pycaffe as caffe
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp).resolve()
        work.mkdir(parents=True, exist_ok=True)
        cwd = os.getcwd()
        os.chdir(work)   # Caffe reads sources relative to the working directory
        try:
            marker = work / "solvers.txt"   # inputs made by an earlier run: reuse them as they are
            if marker.is_file():
                solvers = dict(line.split() for line in marker.read_text().splitlines())
            else:
                solvers = make_inputs(work)
            for seed, (name, solver) in enumerate(solvers.items()):
                if args.only and name not in args.only.split(","):
                    continue
                weights = work / f"{name}_init.caffemodel"
                if not weights.exists():
                    initial_weights(caffe, solver, weights, seed, 0.01 if name == "caffenet" else None)
                steps = 20 if name == "caffenet" else 3
                result = run(caffe, solver, weights, steps, every_param=name != "caffenet",
                             tops=name in WITH_TOPS, tops_only=name in TOPS_ONLY)
                for jpeg in JPEGS.get(name, ()):
                    digest = hashlib.sha256((work / jpeg).read_bytes()).digest()
                    result[f"input/{jpeg}"] = np.frombuffer(digest, np.uint8)
                np.savez_compressed(out / f"{name}.npz", **result)
                what = "top/label" if name in TOPS_ONLY else "loss"
                print(f"{name}: {what} {[result[f'step{k}/{what}'].tolist() for k in range(1, steps + 1)]}")
            marker.write_text("".join(f"{n} {s}\n" for n, s in solvers.items()))
        finally:
            os.chdir(cwd)
    return 0


if __name__ == "__main__":
    sys.exit(main())

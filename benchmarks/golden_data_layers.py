"""Golden fixtures for Caffe's data layers: three SGD steps (and CaffeNet's 20) from generated data.

One script for both sides: ``--backend caffe`` runs the real pycaffe (PYTHONPATH naming a built
BVLC Caffe's ``python/`` folder; the fixtures in ``tests/golden_data/`` come from it),
``--backend reproduce`` runs this project's pycaffe shim on the very same files, and
``tests/test_golden_data_layers.py`` compares the two at the solver tolerance.

Inputs, all generated (seeded) in ``--work``: an LMDB of raw ``Datum`` records, a list of PNG
images, two HDF5 files; the nets (train phase, no random transformation — Caffe's crops,
mirrors and dropout masks come from its Boost generator, which is not emulated): a small
conv → pool → ip → SoftmaxWithLoss net behind each data layer (Data with a mean file and a
scale; ImageData with a resize, a mean value and two passes over its list; HDF5Data over two
files), and CaffeNet's train_val at 1/8 width (``benchmarks/caffenet_lmdb.py``) without crop,
mirror or dropout, 20 iterations. CaffeNet learns at 0.001 from weights of
deviation 0.01 (its fillers'), the small nets at 0.01 from He-scaled ones. Initial weights are random, written once as a caffemodel
that both sides load. Per net the npz holds ``step<k>/loss`` and ``step<k>/param/<layer>/<i>``
(CaffeNet: every loss and the final parameters; of a blob above 20,000 values,
``step<k>/sample/<layer>/<i>``, every 61st).

The real Caffe's Python may lack what writes the inputs (lmdb, OpenCV, h5py): write them with
this project's environment first, into ``--work``, whose initial weights the Caffe run then reads::

    python benchmarks/golden_data_layers.py --backend reproduce --work W --out /tmp/ours
    PYTHONPATH=CAFFE/python python3 benchmarks/golden_data_layers.py --backend caffe --work W --out tests/golden_data
"""
from __future__ import annotations

import argparse
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


def run(caffe, solver_path: str, weights: Path, steps: int, every_param: bool) -> dict[str, np.ndarray]:
    solver = caffe.SGDSolver(solver_path)
    solver.net.copy_from(str(weights))
    out = {}
    for k in range(1, steps + 1):
        solver.step(1)
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
                result = run(caffe, solver, weights, steps, every_param=name != "caffenet")
                np.savez_compressed(out / f"{name}.npz", **result)
                print(f"{name}: losses {[float(result[f'step{k}/loss']) for k in range(1, steps + 1)]}")
            marker.write_text("".join(f"{n} {s}\n" for n, s in solvers.items()))
        finally:
            os.chdir(cwd)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""CaffeNet's model-zoo ``train_val.prototxt`` shape, trained on a generated LMDB with
``python -m reproduce train --solver`` — Caffe's Data layer end to end.

``write_fixture(folder, ...)`` writes, all generated here (nothing copied from Caffe's model
zoo): ``train_lmdb``/``val_lmdb`` (raw ``Datum`` records, BGR uint8, labels 0–9), ``mean.binaryproto``
(their per-pixel mean), ``train_val.prototxt`` — the layers of BVLC's CaffeNet (``bvlc_reference_caffenet``):
conv1 11×11/4 → ReLU → pool 3/2 → LRN → conv2 5×5 group 2 → … → fc6, fc7 with dropout → fc8 →
Accuracy (TEST) and SoftmaxWithLoss, its Data layers with ``mirror``, ``crop_size: 227`` and
``mean_file`` — and ``solver.prototxt`` (its SGD settings, ``random_seed`` set). ``width``
divides the hidden widths (1: CaffeNet's own 96-256-384-384-256-4096-4096).

    python benchmarks/caffenet_lmdb.py OUT [--width 1] [--iters 20] [--images 24]
    (then: python -m reproduce train --solver OUT/solver.prototxt)
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZE = 256


def write_lmdb(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    import lmdb

    from reproduce.caffe import encode
    from reproduce.caffe.schema import Message

    env = lmdb.open(str(path), map_size=1 << 30)
    with env.begin(write=True) as txn:
        for i, (image, label) in enumerate(zip(images, labels)):
            datum = Message("Datum", channels=image.shape[0], height=image.shape[1],
                            width=image.shape[2], data=image.tobytes(), label=int(label))
            txn.put(f"{i:08d}".encode(), encode(datum))
    env.close()


def write_mean(path: Path, mean: np.ndarray) -> None:
    from reproduce.caffe import encode
    from reproduce.caffe.schema import Message

    c, h, w = mean.shape
    blob = Message("BlobProto", num=1, channels=c, height=h, width=w,
                   data=mean.astype(np.float32).reshape(-1))
    path.write_bytes(encode(blob))


def train_val(width: int, batch: int) -> str:
    n = {k: max(1, v // width) for k, v in dict(c1=96, c2=256, c3=384, c4=384, c5=256, f6=4096, f7=4096).items()}

    def data(phase, source, mirror):
        return f'''layer {{
  name: "data"  type: "Data"  top: "data"  top: "label"
  include {{ phase: {phase} }}
  transform_param {{ mirror: {mirror}  crop_size: 227  mean_file: "mean.binaryproto" }}
  data_param {{ source: "{source}"  batch_size: {batch}  backend: LMDB }}
}}
'''

    def conv(name, bottom, out, kernel, stride=1, pad=0, group=1, bias=0.0):
        return f'''layer {{
  name: "{name}"  type: "Convolution"  bottom: "{bottom}"  top: "{name}"
  param {{ lr_mult: 1  decay_mult: 1 }}  param {{ lr_mult: 2  decay_mult: 0 }}
  convolution_param {{ num_output: {out}  kernel_size: {kernel}  stride: {stride}  pad: {pad}  group: {group}
    weight_filler {{ type: "gaussian"  std: 0.01 }}  bias_filler {{ type: "constant"  value: {bias} }} }}
}}
layer {{ name: "relu{name[-1]}"  type: "ReLU"  bottom: "{name}"  top: "{name}" }}
'''

    def pool(name, bottom):
        return (f'layer {{ name: "{name}"  type: "Pooling"  bottom: "{bottom}"  top: "{name}"\n'
                f'  pooling_param {{ pool: MAX  kernel_size: 3  stride: 2 }} }}\n')

    def norm(name, bottom):
        return (f'layer {{ name: "{name}"  type: "LRN"  bottom: "{bottom}"  top: "{name}"\n'
                f'  lrn_param {{ local_size: 5  alpha: 0.0001  beta: 0.75 }} }}\n')

    def fc(name, bottom, out, std, bias, relu=True, drop=True):
        text = f'''layer {{
  name: "{name}"  type: "InnerProduct"  bottom: "{bottom}"  top: "{name}"
  param {{ lr_mult: 1  decay_mult: 1 }}  param {{ lr_mult: 2  decay_mult: 0 }}
  inner_product_param {{ num_output: {out}  weight_filler {{ type: "gaussian"  std: {std} }}
    bias_filler {{ type: "constant"  value: {bias} }} }}
}}
'''
        if relu:
            text += f'layer {{ name: "relu{name[2:]}"  type: "ReLU"  bottom: "{name}"  top: "{name}" }}\n'
        if drop:
            text += (f'layer {{ name: "drop{name[2:]}"  type: "Dropout"  bottom: "{name}"  top: "{name}"\n'
                     f'  dropout_param {{ dropout_ratio: 0.5 }} }}\n')
        return text

    return ('name: "CaffeNet"\n' + data("TRAIN", "train_lmdb", "true") + data("TEST", "val_lmdb", "false")
            + conv("conv1", "data", n["c1"], 11, stride=4) + pool("pool1", "conv1") + norm("norm1", "pool1")
            + conv("conv2", "norm1", n["c2"], 5, pad=2, group=2, bias=0.1) + pool("pool2", "conv2")
            + norm("norm2", "pool2")
            + conv("conv3", "norm2", n["c3"], 3, pad=1)
            + conv("conv4", "conv3", n["c4"], 3, pad=1, group=2, bias=0.1)
            + conv("conv5", "conv4", n["c5"], 3, pad=1, group=2, bias=0.1) + pool("pool5", "conv5")
            + fc("fc6", "pool5", n["f6"], 0.005, 0.1) + fc("fc7", "fc6", n["f7"], 0.005, 0.1)
            + fc("fc8", "fc7", 10, 0.01, 0.0, relu=False, drop=False)
            + 'layer { name: "accuracy"  type: "Accuracy"  bottom: "fc8"  bottom: "label"  top: "accuracy"\n'
              '  include { phase: TEST } }\n'
            + 'layer { name: "loss"  type: "SoftmaxWithLoss"  bottom: "fc8"  bottom: "label"  top: "loss" }\n')


def solver(iters: int, snapshot: int) -> str:
    return f'''net: "train_val.prototxt"
test_iter: 2
test_interval: 1000
test_initialization: false
base_lr: 0.01
lr_policy: "step"
gamma: 0.1
stepsize: 100000
display: 1
max_iter: {iters}
momentum: 0.9
weight_decay: 0.0005
snapshot: {snapshot}
snapshot_prefix: "snapshots/caffenet_train"
solver_mode: CPU
random_seed: 1701
'''


def write_fixture(folder: str | Path, width: int = 1, iters: int = 20, images: int = 24,
                  batch: int = 4, snapshot: int = 0, seed: int = 0) -> Path:
    """Write the fixture into ``folder`` (see the module docstring); ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    # smooth random images: a coarse colour field upsampled, plus noise
    coarse = rng.integers(0, 256, (images, 3, 8, 8)).astype(np.float32)
    data = np.repeat(np.repeat(coarse, SIZE // 8, axis=2), SIZE // 8, axis=3)
    data = np.clip(data + rng.normal(0, 20, data.shape), 0, 255).astype(np.uint8)
    labels = rng.integers(0, 10, images)
    half = images * 3 // 4
    write_lmdb(folder / "train_lmdb", data[:half], labels[:half])
    write_lmdb(folder / "val_lmdb", data[half:], labels[half:])
    write_mean(folder / "mean.binaryproto", data[:half].astype(np.float32).mean(axis=0))
    (folder / "train_val.prototxt").write_text(train_val(width, batch))
    (folder / "solver.prototxt").write_text(solver(iters, snapshot))
    (folder / "snapshots").mkdir(exist_ok=True)
    return folder


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument("--width", type=int, default=1, help="divide CaffeNet's widths (default 1)")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--train", action="store_true", help="then run reproduce train in OUT")
    args = parser.parse_args(argv)
    folder = write_fixture(args.out, args.width, args.iters, args.images)
    print(f"wrote {folder}")
    if args.train:   # Caffe takes the sources relative to the working directory: run there
        return subprocess.call([sys.executable, "-m", "reproduce", "train", "--solver",
                                "solver.prototxt"], cwd=folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())

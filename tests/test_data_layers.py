"""Caffe's data layers — Data (LMDB), ImageData, HDF5Data, HDF5Output — and transform_param,
on generated data whose every value the tests know; and exact resumption from snapshots."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from reproduce.caffe import parse
from reproduce.net import Net
from reproduce.net.layers import LayerError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
lmdb = pytest.importorskip("lmdb", reason="the data extra (pip install 'reproduce[data]') reads LMDB")
import caffenet_lmdb  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _images(n=6, c=3, h=9, w=11, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, c, h, w)).astype(np.uint8), np.arange(n) % 4


def _data_net(source, transform="", batch=2, phase="TEST", tops=('data', 'label'), backend="LMDB"):
    top_text = " ".join(f'top: "{t}"' for t in tops)
    return Net(parse(f'layer {{ name: "d" type: "Data" {top_text} transform_param {{ {transform} }} '
                     f'data_param {{ source: "{source}" batch_size: {batch} backend: {backend} }} }}'),
               phase=phase, generator=torch.Generator().manual_seed(3))


@pytest.fixture
def db(tmp_path):
    images, labels = _images()
    caffenet_lmdb.write_lmdb(tmp_path / "db", images, labels)
    return tmp_path / "db", images, labels


def test_data_reads_records_in_order_wrapping_with_centre_crop_mean_and_scale(db):
    path, images, labels = db
    net = _data_net(path, "crop_size: 5 mean_value: 10 mean_value: 20 mean_value: 30 scale: 0.5", batch=4)
    assert net.blob_shapes["data"] == (4, 3, 5, 5) and net.blob_shapes["label"] == (4,)
    mean = np.array([10, 20, 30], np.float32)[:, None, None]
    want = (images[:, :, 2:7, 3:8].astype(np.float32) - mean) * np.float32(0.5)
    seen = []
    for batch in range(3):   # 12 items from 6 records: twice round
        out = net.forward()
        seen.append((out["data"].numpy(), out["label"].numpy()))
    data = np.concatenate([d for d, _ in seen])
    label = np.concatenate([lab for _, lab in seen])
    np.testing.assert_array_equal(data, np.concatenate([want, want]))
    np.testing.assert_array_equal(label, np.concatenate([labels, labels]).astype(np.float32))


def test_data_train_crops_at_random_and_mirrors(db):
    path, images, _ = db
    net = _data_net(path, "crop_size: 5 mirror: true", batch=6, phase="TRAIN", tops=("data",))
    data = net.forward()["data"].numpy()
    offsets, flips = set(), 0
    for item, image in zip(data, images.astype(np.float32)):
        found = [(h, w, f) for h in range(5) for w in range(7) for f in (0, 1)
                 if np.array_equal(item, image[:, h:h + 5, w:w + 5][:, :, ::-1] if f
                                   else image[:, h:h + 5, w:w + 5])]
        assert found, "every item is a crop (or its mirror) of its record"
        offsets.add(found[0][:2])
        flips += found[0][2]
    assert len(offsets) > 1 and 0 < flips < 6


def test_data_mean_file_and_encoded_records(tmp_path):
    cv2 = pytest.importorskip("cv2")
    from reproduce.caffe import encode
    from reproduce.caffe.schema import Message

    images, labels = _images(n=3)
    env = lmdb.open(str(tmp_path / "enc"), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for i, image in enumerate(images):
            ok, png = cv2.imencode(".png", image.transpose(1, 2, 0))
            txn.put(b"%03d" % i, encode(Message("Datum", data=png.tobytes(), encoded=True,
                                                label=int(labels[i]))))
    env.close()
    mean = images.astype(np.float32).mean(0)
    caffenet_lmdb.write_mean(tmp_path / "mean.binaryproto", mean)
    net = _data_net(tmp_path / "enc", f'mean_file: "{tmp_path / "mean.binaryproto"}"', batch=3)
    np.testing.assert_array_equal(net.forward()["data"].numpy(), images.astype(np.float32) - mean)
    with pytest.raises(LayerError, match="Cannot specify mean_file and mean_value"):
        _data_net(tmp_path / "enc", f'mean_file: "{tmp_path / "mean.binaryproto"}" mean_value: 1')


def test_data_refuses_what_caffe_cannot_read(tmp_path, db):
    with pytest.raises(LayerError, match="no such database"):
        _data_net(tmp_path / "missing")
    try:
        import plyvel  # noqa: F401
    except ImportError:
        (tmp_path / "ldb").mkdir()
        with pytest.raises(LayerError, match="needs the 'plyvel' package: pip install plyvel"):
            _data_net(tmp_path / "ldb", backend="LEVELDB")
    with pytest.raises(LayerError, match=r"crop_size 20 is larger than the item \(9×11\)"):
        _data_net(db[0], "crop_size: 20")


def test_image_data_list_root_resize_grey_and_shuffle(tmp_path):
    cv2 = pytest.importorskip("cv2")
    images, labels = _images(n=5, h=12, w=10)
    (tmp_path / "img").mkdir()
    lines = []
    for i, image in enumerate(images):
        cv2.imwrite(str(tmp_path / "img" / f"a {i}.png"), image.transpose(1, 2, 0))
        lines.append(f"a {i}.png {labels[i]}")
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")

    def net(params, phase="TEST"):
        return Net(parse('layer { name: "d" type: "ImageData" top: "data" top: "label" '
                         f'image_data_param {{ source: "{tmp_path / "list.txt"}" root_folder: "{tmp_path}/img/" '
                         f'batch_size: 5 {params} }} }}'), phase=phase, generator=torch.Generator().manual_seed(1))

    plain = net("").forward()
    np.testing.assert_array_equal(plain["data"].numpy(), images.astype(np.float32))
    np.testing.assert_array_equal(plain["label"].numpy(), labels.astype(np.float32))
    grey = net("new_height: 6 new_width: 7 is_color: false").forward()["data"].numpy()
    want = [cv2.resize(cv2.cvtColor(i.transpose(1, 2, 0), cv2.COLOR_BGR2GRAY), (7, 6)) for i in images]
    assert grey.shape == (5, 1, 6, 7)
    # imread grey and cvtColor may round apart by 1; resize of the same grey image is exact
    assert np.abs(grey[:, 0] - np.stack(want).astype(np.float32)).max() <= 1
    shuffled = net("shuffle: true")
    orders = []
    for _ in range(3):
        out = shuffled.forward()
        order = [int(np.flatnonzero((images.astype(np.float32) == d).all((1, 2, 3)))[0])
                 for d in out["data"].numpy()]
        assert sorted(order) == list(range(5))
        np.testing.assert_array_equal(out["label"].numpy(), labels[order].astype(np.float32))
        orders.append(order)
    assert len({tuple(o) for o in orders}) > 1, "shuffled again after every pass"
    with pytest.raises(LayerError, match="new_height and new_width to be set at the same time"):
        net("new_height: 6")


def test_hdf5_data_files_rows_shuffle_and_hdf5_output(tmp_path):
    rows = []
    for k, n in enumerate((3, 5)):
        data = np.arange(n * 4, dtype=np.float64).reshape(n, 2, 2) + 100 * k
        with h5py.File(tmp_path / f"f{k}.h5", "w") as f:
            f["data"] = data
            f["label"] = np.arange(n, dtype=np.int32) + 10 * k
        rows += [(d, 10 * k + i) for i, d in enumerate(data)]
    (tmp_path / "list.txt").write_text(f"{tmp_path / 'f0.h5'}\n{tmp_path / 'f1.h5'}\n")

    def net(shuffle):
        return Net(parse('layer { name: "h" type: "HDF5Data" top: "data" top: "label" hdf5_data_param { '
                         f'source: "{tmp_path / "list.txt"}" batch_size: 4 shuffle: {shuffle} }} }}'),
                   generator=torch.Generator().manual_seed(2))

    ordered = net("false")
    assert ordered.blob_shapes["data"] == (4, 2, 2) and ordered.blob_shapes["label"] == (4,)
    got = [ordered.forward() for _ in range(4)]   # 16 rows: twice round the 8
    labels = np.concatenate([g["label"].numpy() for g in got])
    np.testing.assert_array_equal(labels, [r[1] for r in rows] * 2)
    np.testing.assert_array_equal(got[0]["data"].numpy(), np.stack([r[0] for r in rows[:4]]))
    shuffled = net("true")
    labels = np.concatenate([shuffled.forward()["label"].numpy() for _ in range(4)])
    assert sorted(labels[:8]) == sorted(r[1] for r in rows) and list(labels[:8]) != [r[1] for r in rows]

    out = tmp_path / "out.h5"
    sink = Net(parse('layer { name: "in" type: "Input" top: "a" top: "b" input_param { shape { dim: 2 dim: 3 } '
                     'shape { dim: 2 } } }\n'
                     f'layer {{ name: "o" type: "HDF5Output" bottom: "a" bottom: "b" hdf5_output_param {{ file_name: "{out}" }} }}'))
    a, b = torch.randn(2, 3), torch.tensor([1.0, 2.0])
    sink.forward(a=a, b=b)
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["data"][()], a.numpy())
        np.testing.assert_array_equal(f["label"][()], b.numpy())
    with pytest.raises(LayerError, match="Caffe fails here too"):
        sink.forward(a=a, b=b)


@pytest.mark.parametrize("layer", ["data", "hdf5"])
def test_a_layer_resumes_from_its_state_exactly(db, tmp_path, layer):
    if layer == "data":
        def make():
            return _data_net(db[0], "crop_size: 5 mirror: true", batch=4, phase="TRAIN")
    else:
        with h5py.File(tmp_path / "f.h5", "w") as f:
            f["data"] = np.arange(7 * 3, dtype=np.float32).reshape(7, 3)
        (tmp_path / "list.txt").write_text(str(tmp_path / "f.h5"))

        def make():
            return Net(parse('layer { name: "d" type: "HDF5Data" top: "data" hdf5_data_param { '
                             f'source: "{tmp_path / "list.txt"}" batch_size: 3 shuffle: true }} }}'),
                       generator=torch.Generator().manual_seed(5))
    first = make()
    for _ in range(3):
        first.forward()
    state = first.layer("d").state_dict_data()
    want = [first.forward()["data"].clone() for _ in range(4)]
    second = make()
    second.forward()
    second.layer("d").load_state_dict_data(state)
    got = [second.forward()["data"] for _ in range(4)]
    assert all(torch.equal(a, b) for a, b in zip(want, got))
    assert not all(torch.equal(want[0], w) for w in want[1:])


def _train(folder: Path, *args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "reproduce", "train", "--solver", "solver.prototxt",
                           "--quiet", *args], cwd=folder, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def test_caffenet_train_val_on_lmdb_trains_and_resumes_exactly(tmp_path):
    """CaffeNet's train_val (widths / 8) with Data layers (mirror, random 227 crops, mean file)
    trains with reproduce train --solver; resumed from the iteration-2 snapshot it ends with the
    same weights as the run that went straight on (crops, mirrors, dropout, LMDB position)."""
    from reproduce.caffe.weights import read_weights as read_caffemodel

    straight = caffenet_lmdb.write_fixture(tmp_path / "a", width=8, iters=4, images=12, batch=2, snapshot=2)
    _train(straight)
    resumed = tmp_path / "b"
    shutil.copytree(straight, resumed)
    for stale in (resumed / "snapshots").glob("*iter_4*"):
        stale.unlink()
    _train(resumed, "--resume", "snapshots/caffenet_train_iter_2.solverstate.pt")
    start = read_caffemodel(straight / "snapshots" / "caffenet_train_iter_2.caffemodel")
    a = read_caffemodel(straight / "snapshots" / "caffenet_train_iter_4.caffemodel")
    b = read_caffemodel(resumed / "snapshots" / "caffenet_train_iter_4.caffemodel")
    assert sorted(a) == sorted(b)
    assert all(np.array_equal(x, y) for name in a for x, y in zip(a[name], b[name]))
    assert not np.array_equal(a["fc8"][0], start["fc8"][0])   # it did learn


def test_data_layers_are_refused_in_export(db):
    from reproduce.export import DeployGraph, ExportError

    net = Net(parse(f'layer {{ name: "d" type: "Data" top: "data" top: "label" data_param {{ '
                    f'source: "{db[0]}" batch_size: 2 backend: LMDB }} }}\n'
                    'layer { name: "p" type: "Pooling" bottom: "data" top: "p" '
                    'pooling_param { kernel_size: 2 stride: 2 } }'))
    with pytest.raises(ExportError, match="layer 'd' \\(Data\\): a Data source; export the net with Input"):
        DeployGraph(net)


def test_window_data_samples_bg_then_fg_warps_and_pads_context(tmp_path):
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, (30, 40, 3)).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "im0.png"), image)
    # one foreground window inside the image, one background window at its corner
    (tmp_path / "windows.txt").write_text(
        "# 0\nim0.png\n3 30 40\n3\n2 0.9 10 10 15 15\n0 0.1 0 0 5 5\n1 0.4 3 3 9 9\n")

    def net(extra):
        return Net(parse('layer { name: "w" type: "WindowData" top: "data" top: "label" '
                         'transform_param { crop_size: 10 mean_value: 100 } window_data_param { '
                         f'source: "{tmp_path / "windows.txt"}" root_folder: "{tmp_path}/" batch_size: 4 '
                         f'fg_fraction: 0.5 {extra} }} }}'), phase="TRAIN",
                   generator=torch.Generator().manual_seed(1))

    out = net("").forward()
    np.testing.assert_array_equal(out["label"].numpy(), [0, 0, 2, 2])   # bg first, then fg
    warp = lambda x1, y1, x2, y2, size=(10, 10): cv2.resize(  # noqa: E731
        image[y1:y2 + 1, x1:x2 + 1], size, interpolation=cv2.INTER_LINEAR).transpose(2, 0, 1)
    data = out["data"].numpy()
    np.testing.assert_array_equal(data[2], warp(10, 10, 15, 15).astype(np.float32) - 100)
    np.testing.assert_array_equal(data[0], warp(0, 0, 5, 5).astype(np.float32) - 100)
    # context_pad 2: 10 / (10 - 4) wider; the fg window (centre 13, half 3) becomes 8..18; the bg
    # window (centre 3) becomes -2..8, clipped to 0..8 with round(2 * 10/11) = 2 padding columns
    padded = net("context_pad: 2").forward()["data"].numpy()
    np.testing.assert_array_equal(padded[2], warp(8, 8, 18, 18).astype(np.float32) - 100)
    np.testing.assert_array_equal(padded[0][:, :2], 0)
    np.testing.assert_array_equal(padded[0][:, :, :2], 0)
    np.testing.assert_array_equal(padded[0][:, 2:, 2:], warp(0, 0, 8, 8, (8, 8)).astype(np.float32) - 100)


def test_data_reads_float_data_records(tmp_path):
    from reproduce.caffe import encode
    from reproduce.caffe.schema import Message

    values = np.random.default_rng(4).normal(size=(2, 2, 3, 4)).astype(np.float32)
    env = lmdb.open(str(tmp_path / "f"), map_size=1 << 24)
    with env.begin(write=True) as txn:
        for i, v in enumerate(values):
            txn.put(b"%d" % i, encode(Message("Datum", channels=2, height=3, width=4,
                                              float_data=list(v.reshape(-1)), label=i)))
    env.close()
    out = _data_net(tmp_path / "f", "scale: 2").forward()
    np.testing.assert_array_equal(out["data"].numpy(), values * 2)
    np.testing.assert_array_equal(out["label"].numpy(), [0, 1])


def test_pycaffe_net_reads_its_first_batch_on_the_first_forward(db, tmp_path):
    """Caffe's data layers only shape their tops at set-up: the first forward gives record 0."""
    import reproduce.pycaffe as caffe

    path, images, labels = db
    proto = tmp_path / "net.prototxt"
    proto.write_text(f'layer {{ name: "d" type: "Data" top: "data" top: "label" data_param {{ '
                     f'source: "{path}" batch_size: 2 backend: LMDB }} }}')
    net = caffe.Net(str(proto), caffe.TRAIN)
    assert net.blobs["data"].data.shape == (2, 3, 9, 11)
    net.forward()
    np.testing.assert_array_equal(net.blobs["data"].data, images[:2].astype(np.float32))
    np.testing.assert_array_equal(net.blobs["label"].data, labels[:2].astype(np.float32))

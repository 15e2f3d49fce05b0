"""pycaffe's ``caffe.Classifier``, ``caffe.Detector`` and ``caffe.draw`` on this port: each
checked against the same computation written out here (numpy pre-processing, crops, a plain
``caffe.Net`` forward), context-pad crop geometry against values worked out by hand from
pycaffe's ``detector.py``, and the DOT graph against what pycaffe's ``draw.py`` builds.
"""
from __future__ import annotations

import os
import stat
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import reproduce.pycaffe as caffe
from conftest import PROJECT_ROOT
from reproduce.pycaffe import draw
from reproduce.pycaffe.proto import caffe_pb2, text_format

TINY_NET = """name: "tiny"
layer { name: "data" type: "Input" top: "data"
  input_param { shape { dim: 4 dim: 3 dim: 6 dim: 6 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_output: 4 kernel_size: 3
    weight_filler { type: "gaussian" std: 0.5 } bias_filler { type: "constant" value: 0.1 } } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip"
  inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.3 }
    bias_filler { type: "constant" value: -0.2 } } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""
MEAN = np.array([0.1, 0.2, 0.3])
SWAP = (1, 2, 0)
RAW, INPUT_SCALE = 255.0, 0.5


@pytest.fixture
def tiny(tmp_path):
    """The net's prototxt and random weights saved by ``Net.save``."""
    prototxt = tmp_path / "tiny.prototxt"
    prototxt.write_text(TINY_NET)
    caffe.set_random_seed(5)
    weights = tmp_path / "tiny.caffemodel"
    caffe.Net(str(prototxt), caffe.TEST).save(str(weights))
    return str(prototxt), str(weights)


def by_hand(crop: np.ndarray) -> np.ndarray:
    """H×W×K crop (already the input's size) → K×H×W: the transformer's steps written out."""
    x = crop.transpose(2, 0, 1)[list(SWAP)]
    return ((x * RAW) - MEAN[:, None, None]) * INPUT_SCALE


def net_forward(tiny, batch: np.ndarray) -> np.ndarray:
    """The batch through a plain ``caffe.Net`` with the same weights, at the batch's size."""
    net = caffe.Net(tiny[0], caffe.TEST, weights=tiny[1])
    net.blobs["data"].reshape(*batch.shape)
    net.blobs["data"].data[...] = batch
    return net.forward()["prob"].copy()


def images(seed: int, count: int, shape=(10, 12, 3)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.random(shape).astype(np.float32) for _ in range(count)]


# ------------------------------------------------------------------------------ Classifier
def test_classifier_oversample_is_ten_crops_averaged(tiny):
    clf = caffe.Classifier(*tiny, image_dims=(8, 9), mean=MEAN, input_scale=INPUT_SCALE,
                           raw_scale=RAW, channel_swap=SWAP)
    assert isinstance(clf, caffe.Net) and list(clf.crop_dims) == [6, 6]
    assert list(clf.image_dims) == [8, 9]
    ims = images(0, 3)
    got = clf.predict(ims)                 # 30 crops through batches of 4 (the last padded)
    assert got.shape == (3, 5)

    # 8x9 resized images; corners at rows {0, 2} x cols {0, 3}; centre [4 - 3, 4.5 - 3] -> (1, 1)
    origins = [(0, 0), (0, 3), (2, 0), (2, 3), (1, 1)]
    batch = []
    for im in ims:
        resized = caffe.io.resize_image(im, (8, 9))
        crops = [resized[r:r + 6, c:c + 6] for r, c in origins]
        crops += [crop[:, ::-1] for crop in crops]
        batch += [by_hand(crop) for crop in crops]
    expected = net_forward(tiny, np.array(batch, dtype=np.float32)).reshape(3, 10, 5).mean(1)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.sum(1), 1.0, rtol=1e-5)


def test_classifier_centre_crop_without_oversample(tiny):
    clf = caffe.Classifier(*tiny, image_dims=(8, 9), mean=MEAN, input_scale=INPUT_SCALE,
                           raw_scale=RAW, channel_swap=SWAP)
    ims = images(1, 5)
    got = clf.predict(ims, oversample=False)
    batch = [by_hand(caffe.io.resize_image(im, (8, 9))[1:7, 1:7]) for im in ims]
    expected = net_forward(tiny, np.array(batch, dtype=np.float32))
    assert got.shape == (5, 5)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # the crops differ from the oversampled mean: the two paths are not the same computation
    assert np.abs(got - clf.predict(ims)).max() > 1e-4


def test_classifier_default_image_dims_are_the_input(tiny):
    clf = caffe.Classifier(*tiny)                 # no pre-processing but the transpose
    assert list(clf.image_dims) == [6, 6]
    im = images(2, 1, shape=(6, 6, 3))[0]
    got = clf.predict([im])
    # every "crop" is the whole 6x6 image: five of it and five of its mirror
    both = np.array([im.transpose(2, 0, 1), im[:, ::-1].transpose(2, 0, 1)], dtype=np.float32)
    np.testing.assert_allclose(got[0], net_forward(tiny, both).mean(0), rtol=1e-5, atol=1e-6)


def test_classifier_refuses_bad_input(tiny):
    clf = caffe.Classifier(*tiny, image_dims=(8, 9))
    with pytest.raises(ValueError, match="at least one"):
        clf.predict([])
    with pytest.raises(ValueError, match="channels"):
        clf.predict([np.zeros((8, 9, 1), np.float32)])
    with pytest.raises(ValueError, match="H x W x K"):
        clf.predict([np.zeros((8, 9), np.float32)])
    with pytest.raises(ValueError, match="smaller than the net's input"):
        caffe.Classifier(*tiny, image_dims=(5, 9)).predict(images(3, 1))
    with pytest.raises(ValueError, match="image_dims"):
        caffe.Classifier(*tiny, image_dims=(8, 9, 2))
    with pytest.raises(FileNotFoundError, match="nope.caffemodel"):
        caffe.Classifier(tiny[0], str(Path(tiny[1]).with_name("nope.caffemodel")))


def test_classifier_and_detector_need_an_image_input(tmp_path):
    flat = tmp_path / "flat.prototxt"
    flat.write_text("""name: 'flat'
        layer { name: 'in' type: 'Input' top: 'data' input_param { shape { dim: 2 dim: 6 } } }
        layer { name: 'ip' type: 'InnerProduct' bottom: 'data' top: 'ip'
                inner_product_param { num_output: 3 } }""")
    weights = tmp_path / "flat.caffemodel"
    caffe.Net(str(flat), caffe.TEST).save(str(weights))
    for kind in (caffe.Classifier, caffe.Detector):
        with pytest.raises(ValueError, match=f"^{kind.__name__} needs a 4-axis .* data has shape \\(2, 6\\)"):
            kind(str(flat), str(weights))


# ------------------------------------------------------------------------------ Detector
def save_image(path: Path, seed: int, shape=(20, 24, 3)) -> np.ndarray:
    pixels = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return pixels.astype(np.float32) / 255.0       # what caffe.io.load_image gives


def test_detector_windows_are_warped_crops(tiny, tmp_path):
    det = caffe.Detector(*tiny, mean=MEAN, input_scale=INPUT_SCALE, raw_scale=RAW,
                         channel_swap=SWAP)
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    im_a, im_b = save_image(first, 0), save_image(second, 1)
    windows_a = [np.array([2, 3, 10, 12]), np.array([5, 0, 20, 24])]
    windows_b = [np.array([0, 0, 7, 7])]
    # a generator, read once: the detections still come back for every window
    got = det.detect_windows(pair for pair in [(str(first), windows_a), (str(second), windows_b)])

    crops = [im_a[2:10, 3:12], im_a[5:20, 0:24], im_b[0:7, 0:7]]
    batch = [by_hand(caffe.io.resize_image(crop, (6, 6))) for crop in crops]
    expected = net_forward(tiny, np.array(batch, dtype=np.float32))
    assert [d["filename"] for d in got] == [str(first), str(first), str(second)]
    assert [d["window"] is w for d, w in zip(got, windows_a + windows_b)] == [True] * 3
    np.testing.assert_allclose(np.array([d["prediction"] for d in got]), expected,
                               rtol=1e-5, atol=1e-6)
    assert list(det.crop_dims) == [6, 6, 3] and not det.context_pad


def test_detector_context_crop_geometry(tiny):
    """R-CNN's context crop, worked out by hand from pycaffe's ``Detector.crop`` for a 6-wide
    input and context_pad 1 (scale 6 / (6 - 2) = 1.5) on a 20x24 image."""
    det = caffe.Detector(*tiny, mean=MEAN, raw_scale=RAW, channel_swap=SWAP, context_pad=1)
    im = np.random.default_rng(7).random((20, 24, 3)).astype(np.float32)
    # crop_mean: the mean brought back to raw space; SWAP (1, 2, 0) undone puts mean[2],
    # mean[0], mean[1] on raw channels 0, 1, 2
    crop_mean = np.array([0.3, 0.1, 0.2]) / RAW
    np.testing.assert_allclose(det.crop_mean.reshape(-1), crop_mean)

    def canvas():
        return np.ones((6, 6, 3), np.float32) * crop_mean

    # inside: half sizes 4, centre (8, 10), box (2, 4, 14, 16), 13x13 -> 6x6 at (0, 0)
    np.testing.assert_allclose(det.crop(im, np.array([4, 6, 11, 13])),
                               caffe.io.resize_image(im[2:14, 4:16], (6, 6)), rtol=1e-6)
    # top-left: half 3, centre (3, 4), box round(-1.5, -0.5, 7.5, 8.5) = (-2, -0, 8, 8) (half
    # to even: 8.5 -> 8), full 11 x 9; pad_y round(2 * 6/11) = 1, pad_x 0; clipped (0, 0, 8, 8):
    # clip 9 x 9 -> crop round(54/11) = 5 x round(6.0) = 6 of im[0:8, 0:8] at row 1
    want = canvas()
    want[1:6, 0:6] = caffe.io.resize_image(im[0:8, 0:8], (5, 6))
    np.testing.assert_allclose(det.crop(im, np.array([0, 1, 5, 6])), want, rtol=1e-6)
    # bottom-right: centre (17, 21), box round(12.5, 16.5, 21.5, 25.5) = (12, 16, 22, 26),
    # full 11 x 11, no pad; clipped (12, 16, 20, 24): clip 9 x 9 -> 5 x 5 of im[12:20, 16:24]
    want = canvas()
    want[0:5, 0:5] = caffe.io.resize_image(im[12:20, 16:24], (5, 5))
    np.testing.assert_allclose(det.crop(im, np.array([14, 18, 19, 23])), want, rtol=1e-6)
    # the mean padding is zero once pre-processed (what context padding is for)
    padded = det.transformer.preprocess("data", canvas())
    np.testing.assert_allclose(padded, 0.0, atol=1e-5)
    # without context: the window as sliced
    det.configure_crop(None)
    np.testing.assert_array_equal(det.crop(im, np.array([14, 18, 19, 23])), im[14:19, 18:23])


def test_detector_context_windows_through_the_net(tiny, tmp_path):
    det = caffe.Detector(*tiny, mean=MEAN, input_scale=INPUT_SCALE, raw_scale=RAW,
                         channel_swap=SWAP, context_pad=1)
    path = tmp_path / "c.png"
    im = save_image(path, 2)
    got = det.detect_windows([(str(path), [np.array([4, 6, 11, 13]), np.array([0, 1, 5, 6])])])
    first = caffe.io.resize_image(im[2:14, 4:16], (6, 6))
    second = np.ones((6, 6, 3), np.float32) * (np.array([0.3, 0.1, 0.2]) / RAW)
    second[1:6, 0:6] = caffe.io.resize_image(im[0:8, 0:8], (5, 6))
    expected = net_forward(tiny, np.array([by_hand(first), by_hand(second)], dtype=np.float32))
    np.testing.assert_allclose(np.array([d["prediction"] for d in got]), expected,
                               rtol=1e-5, atol=1e-6)


def test_detector_refuses_bad_windows_and_missing_selective_search(tiny, tmp_path, monkeypatch):
    det = caffe.Detector(*tiny)
    im = np.zeros((20, 24, 3), np.float32)
    with pytest.raises(ValueError, match="four whole numbers"):
        det.crop(im, [1, 2, 3])
    with pytest.raises(ValueError, match="four whole numbers"):
        det.crop(im, [1.5, 2, 3, 4])
    with pytest.raises(ValueError, match="negative"):
        det.crop(im, [-1, 2, 3, 4])
    with pytest.raises(ValueError, match="crops nothing"):
        det.crop(im, [5, 5, 5, 9])
    with pytest.raises(ValueError, match="no windows"):
        det.detect_windows([])
    with pytest.raises(ValueError, match="under half the input width"):
        det.configure_crop(3)
    wide = tmp_path / "wide.prototxt"
    wide.write_text(TINY_NET.replace("dim: 6 dim: 6", "dim: 6 dim: 7"))
    caffe.Net(str(wide), caffe.TEST).save(str(tmp_path / "wide.caffemodel"))
    with pytest.raises(ValueError, match="square net input"):
        caffe.Detector(str(wide), str(tmp_path / "wide.caffemodel"), context_pad=1)
    monkeypatch.setitem(sys.modules, "selective_search_ijcv_with_python", None)
    with pytest.raises(ImportError, match="selective_search_ijcv_with_python"):
        det.detect_selective_search([str(tmp_path / "x.png")])


def test_detector_selective_search_windows(tiny, tmp_path, monkeypatch):
    """The proposals module is asked for absolute paths with pycaffe's command, and its
    windows go through detect_windows."""
    path = tmp_path / "d.png"
    save_image(path, 3)
    asked = []

    def get_windows(fnames, cmd):
        asked.append((list(fnames), cmd))
        return [np.array([[0, 0, 10, 10], [3, 4, 15, 20]])]

    monkeypatch.setitem(sys.modules, "selective_search_ijcv_with_python",
                        types.SimpleNamespace(get_windows=get_windows))
    monkeypatch.chdir(tmp_path)
    det = caffe.Detector(*tiny)
    got = det.detect_selective_search(["d.png"])
    assert asked == [([str(path)], "selective_search_rcnn")]
    assert [d["filename"] for d in got] == [str(path)] * 2
    assert [list(d["window"]) for d in got] == [[0, 0, 10, 10], [3, 4, 15, 20]]


# ------------------------------------------------------------------------------ draw
DRAW_NET = """name: "drawnet"
layer { name: "data" type: "Data" top: "data" top: "label" include { phase: TRAIN }
  data_param { source: "train_lmdb" batch_size: 64 backend: LMDB } }
layer { name: "input" type: "Input" top: "data" top: "label" include { phase: TEST }
  input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } shape { dim: 1 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  param { lr_mult: 2 } param { lr_mult: 0 }
  convolution_param { num_output: 8 kernel_size: 5 stride: 2 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: AVE kernel_size: 3 stride: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "pool1" top: "ip"
  param { lr_mult: 0 } param { lr_mult: 0 } inner_product_param { num_output: 10 } }
layer { name: "up" type: "Deconvolution" bottom: "pool1" top: "up-1"
  convolution_param { num_output: 3 kernel_size: 4 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss"
  exclude { phase: TEST } }
"""
CONV1 = r'"conv1\n(Convolution)\nkernel size: 5\nstride: 2\npad: 1"'
POOL1 = r'"pool1\n(Pooling AVE)\nkernel size: 3\nstride: 2\npad: 0"'


def draw_net_param(text: str = DRAW_NET):
    return text_format.Merge(text, caffe_pb2.NetParameter())


def test_draw_labels_and_colours():
    net = draw_net_param()
    layer = {l.name: l for l in net.layer}
    assert draw.get_layer_label(layer["conv1"], "LR") == CONV1
    assert draw.get_layer_label(layer["conv1"], "TB") == \
        '"conv1 (Convolution) kernel size: 5 stride: 2 pad: 1"'
    assert draw.get_layer_label(layer["pool1"], "LR") == POOL1
    assert draw.get_layer_label(layer["up"], "BT") == \
        '"up (Deconvolution) kernel size: 4 stride: 1 pad: 0"'
    assert draw.get_layer_label(layer["relu1"], "LR") == r'"relu1\n(ReLU)"'
    assert draw.get_layer_label(layer["conv1"], "LR", display_lrm=True) == \
        CONV1[:-1] + r'\nlr mult: 2.0, 0.0"'
    # both multipliers zero: no lr mult descriptor; none given: Caffe's defaults 1, 1
    assert draw.get_layer_label(layer["ip"], "LR", display_lrm=True) == r'"ip\n(InnerProduct)"'
    assert draw.get_layer_label(layer["up"], "TB", display_lrm=True).endswith(
        'lr mult: 1.0, 1.0"')
    assert [draw.get_edge_label(layer[n]) for n in ("data", "conv1", "ip", "up", "relu1")] == \
        ["Batch 64", "8", "10", "3", '""']
    assert [draw.choose_color_by_layertype(t) for t in
            ("Convolution", "Deconvolution", "Pooling", "InnerProduct", "ReLU")] == \
        ["#FF5050", "#FF5050", "#FF9900", "#CC33FF", "#6495ED"]
    assert draw.get_pooling_types_dict() == {0: "MAX", 1: "AVE", 2: "STOCHASTIC"}
    assert draw.get_layer_lr_mult(layer["conv1"]) == (2.0, 0.0)
    with pytest.raises(ValueError, match="ReLU layers do not have"):
        draw.get_layer_lr_mult(layer["relu1"])
    three = draw_net_param('layer { name: "c" type: "Convolution" param { } param { } param { } }')
    with pytest.raises(ValueError, match="learning rate multiplier"):
        draw.get_layer_lr_mult(three.layer[0])


def test_draw_dot_source_nodes_and_edges():
    lines = draw.get_dot_source(draw_net_param(), "LR").splitlines()
    assert lines[:2] == ["digraph drawnet {", "rankdir=LR;"] and lines[-1] == "}"
    # layers: styled records coloured by type, the in-place ReLU in the neuron style
    assert f'{CONV1} [shape=record, fillcolor="#FF5050", style=filled];' in lines
    assert r'"relu1\n(ReLU)" [shape=record, fillcolor="#90EE90", style=filled];' in lines
    assert f'{POOL1} [shape=record, fillcolor="#FF9900", style=filled];' in lines
    assert r'"data\n(Data)" [shape=record, fillcolor="#6495ED", style=filled];' in lines
    # blobs read by a layer are octagons; those only written (loss, up-1) plain nodes
    assert 'pool1 [shape=octagon, fillcolor="#E0E0E0", style=filled];' in lines
    assert 'conv1 [shape=octagon, fillcolor="#E0E0E0", style=filled];' in lines
    assert "loss;" in lines and '"up-1";' in lines
    # edges: into a layer unlabelled, out of it labelled by get_edge_label
    assert r'"data\n(Data)" -> data [label="Batch 64"];' in lines
    assert f'data -> {CONV1} [label=""];' in lines
    assert f'{CONV1} -> conv1 [label=8];' in lines
    assert r'conv1 -> "relu1\n(ReLU)" [label=""];' in lines
    assert r'"relu1\n(ReLU)" -> conv1 [label=""];' in lines
    assert r'"up\n(Deconvolution)\nkernel size: 4\nstride: 1\npad: 0" -> "up-1" [label=3];' \
        in lines
    assert r'label -> "loss\n(SoftmaxWithLoss)" [label=""];' in lines
    edges = [l for l in lines if " -> " in l]
    assert len(edges) == 2 + 2 + 2 + 2 + 2 + 2 + 2 + 3     # per layer: bottoms + tops
    # every node once, in the order pycaffe's dict first met its key
    nodes = [l for l in lines[2:-1] if " -> " not in l]
    assert len(nodes) == len(set(nodes)) == 8 + 7          # 8 layers, 7 blobs
    assert nodes.index(r'"data\n(Data)" [shape=record, fillcolor="#6495ED", style=filled];') \
        < nodes.index('data [shape=octagon, fillcolor="#E0E0E0", style=filled];') \
        < nodes.index(r'"input\n(Input)" [shape=record, fillcolor="#6495ED", style=filled];')
    # unlabelled edges, and an unnamed net
    unlabelled = draw.get_dot_source(draw_net_param(), "LR", label_edges=False)
    assert "label=8" not in unlabelled and "Batch 64" not in unlabelled
    assert draw.get_dot_source(draw_net_param(DRAW_NET.replace('name: "drawnet"', ""))
                               ).startswith("digraph Net {\n")


def test_draw_phase_filtering_and_rankdir():
    net = draw_net_param()
    train = draw.get_dot_source(net, "TB", phase=caffe.TRAIN)
    test = draw.get_dot_source(net, "TB", phase=caffe.TEST)
    every = draw.get_dot_source(net, "TB")
    assert "rankdir=TB;" in train
    assert '"data (Data)"' in train and '"input (Input)"' not in train
    assert '"loss (SoftmaxWithLoss)"' in train
    assert '"input (Input)"' in test and '"data (Data)"' not in test
    assert '"loss (SoftmaxWithLoss)"' not in test and "loss;" not in test
    assert all(name in every for name in ('"data (Data)"', '"input (Input)"', '"loss (Softmax'))
    both = draw_net_param('layer { name: "x" type: "ReLU" include { phase: TRAIN } '
                          'exclude { phase: TEST } }')
    with pytest.raises(ValueError, match="layer x has both include and exclude"):
        draw.get_dot_source(both, "LR", phase=caffe.TEST)
    assert '"x\\n(ReLU)"' in draw.get_dot_source(both, "LR")      # no phase: no check
    with pytest.raises(ValueError, match="rankdir"):
        draw.get_dot_source(net, "sideways")
    with pytest.raises(ValueError, match="phase"):
        draw.get_dot_source(net, "LR", phase="TRAIN")
    with pytest.raises(TypeError, match="NetParameter"):
        draw.get_dot_source(DRAW_NET, "LR")


def test_draw_net_to_file_text_formats(tmp_path):
    net = draw_net_param()
    source = draw.get_dot_source(net, "BT", phase=caffe.TEST, display_lrm=True)
    for ext in ("dot", "gv", "raw"):
        target = tmp_path / f"net.{ext}"
        draw.draw_net_to_file(net, str(target), "BT", caffe.TEST, True)
        assert target.read_text() == source
    assert draw.draw_net(net, "BT", "raw", caffe.TEST, True) == source.encode()
    with pytest.raises(ValueError, match="no extension"):
        draw.draw_net_to_file(net, str(tmp_path / "net"))


def fake_dot(folder: Path, body: str) -> None:
    """A ``dot`` program (Python, so that it needs nothing else on PATH)."""
    folder.mkdir()
    script = folder / "dot"
    script.write_text(f"#!{sys.executable}\nimport sys\n" + body)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)


def test_draw_images_need_graphviz(tmp_path, monkeypatch):
    net = draw_net_param()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    target = tmp_path / "net.png"
    with pytest.raises(draw.GraphvizNotFoundError, match="Graphviz's `dot` program"):
        draw.draw_net_to_file(net, str(target))
    assert not target.exists()
    # with a `dot` on PATH: it is run as dot -T<ext> on the DOT text
    fake_dot(tmp_path / "bin", "sys.stdout.buffer.write(sys.argv[1].encode() + b'\\n'"
                                " + sys.stdin.buffer.read())\n")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    draw.draw_net_to_file(net, str(target), "LR")
    assert target.read_bytes() == b"-Tpng\n" + draw.get_dot_source(net, "LR").encode()
    assert draw.draw_net(net, "TB", ext="svg").startswith(b"-Tsvg\ndigraph drawnet {\nrankdir=TB;")
    fake_dot(tmp_path / "bad", "sys.stderr.write('Format: nope not recognized')\nsys.exit(1)\n")
    monkeypatch.setenv("PATH", str(tmp_path / "bad"))
    with pytest.raises(RuntimeError, match="nope not recognized"):
        draw.draw_net(net, "LR", ext="nope")


def test_get_pydot_graph_needs_pydot_and_builds_pycaffes_graph(monkeypatch):
    net = draw_net_param()
    monkeypatch.setitem(sys.modules, "pydotplus", None)
    monkeypatch.setitem(sys.modules, "pydot", None)
    with pytest.raises(ImportError, match="pip install pydot"):
        draw.get_pydot_graph(net, "LR")

    calls = []

    class Node:
        def __init__(self, name, **attrs):
            self.name, self.attrs = name, attrs

    class Edge:
        def __init__(self, src, dst, **attrs):
            self.src, self.dst, self.attrs = src, dst, attrs

    class Dot:
        def __init__(self, name, **attrs):
            calls.append(("Dot", name, attrs))

        def add_node(self, node):
            calls.append(("node", node.name, node.attrs))

        def add_edge(self, edge):
            calls.append(("edge", edge.src.name, edge.dst.name, edge.attrs["label"]))

    monkeypatch.setitem(sys.modules, "pydot", types.SimpleNamespace(Dot=Dot, Node=Node, Edge=Edge))
    draw.get_pydot_graph(net, "LR", phase=caffe.TEST)
    assert calls[0] == ("Dot", "drawnet", {"graph_type": "digraph", "rankdir": "LR"})
    assert ("node", CONV1, {"shape": "record", "fillcolor": "#FF5050", "style": "filled"}) in calls
    assert ("node", "loss", {}) not in calls and ("node", "ip", {}) in calls
    assert ("edge", CONV1, "conv1", "8") in calls and ("edge", "data", CONV1, '""') in calls
    # the same graph as the DOT text
    lines = draw.get_dot_source(net, "LR", phase=caffe.TEST).splitlines()
    assert sum(c[0] == "node" for c in calls) == sum(" -> " not in l for l in lines[2:-1])
    assert sum(c[0] == "edge" for c in calls) == sum(" -> " in l for l in lines)


def test_draw_net_script(tmp_path, capsys):
    prototxt = tmp_path / "net.prototxt"
    prototxt.write_text(DRAW_NET)
    out = tmp_path / "net.dot"
    assert draw.main([str(prototxt), str(out), "--rankdir", "TB", "--phase", "TEST",
                      "--display_lrm"]) == 0
    assert f"Drawing net to {out}" in capsys.readouterr().out
    assert out.read_text() == draw.get_dot_source(draw_net_param(), "TB", phase=caffe.TEST,
                                                  display_lrm=True)
    with pytest.raises(SystemExit):
        draw.main([str(prototxt), str(out), "--phase", "VAL"])
    assert "Unknown phase: VAL" in capsys.readouterr().err
    prototxt.write_text("layer { name: ")
    with pytest.raises(SystemExit):
        draw.main([str(prototxt), str(out)])
    assert str(prototxt) in capsys.readouterr().err


# ------------------------------------------------------------------------------ import caffe
def test_the_shim_maps_classifier_detector_draw(tmp_path):
    from reproduce.commands.pycaffe import shim_path

    code = ("import caffe, caffe.classifier, caffe.detector, caffe.draw\n"
            "from caffe.classifier import Classifier\n"
            "import reproduce.pycaffe as port\n"
            "assert caffe.Classifier is Classifier is port.classifier.Classifier\n"
            "assert caffe.Detector is caffe.detector.Detector is port.Detector\n"
            "assert caffe.draw is port.draw and issubclass(caffe.Classifier, caffe.Net)\n"
            "print(caffe.draw.get_edge_label.__module__)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(shim_path()), str(PROJECT_ROOT)]))
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120, cwd=str(tmp_path))
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["reproduce.pycaffe.draw"]

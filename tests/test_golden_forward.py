"""Forward passes against the real Caffe: every blob of every golden net, at two input sizes.

``Net(deploy.prototxt, weights.caffemodel)`` runs TEST-phase forward on ``blob/data`` of
``forward_<H>x<W>.npz``; every blob Caffe saved (its ``_split_`` blobs excepted) must agree
within 1e-5 of the blob's largest magnitude, and the loaded parameters must equal Caffe's
``param/<layer>/<i>`` exactly. The V1 VGG16 net is upgraded on load, its legacy-shaped
InnerProduct blobs reshaped as Caffe does, and checked the same way through ``prob``.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import VOC_NETS
from golden_compare import assert_all_close, npz_group
from reproduce.net import Net
from reproduce.net.layers import convolution

FORWARD_TOLERANCE = 1e-5
SIZES = ("64x80", "37x53")


def caffe_params(npz) -> dict[str, list[np.ndarray]]:
    params: dict[str, dict[int, np.ndarray]] = {}
    for key, value in npz_group(npz, "param/").items():
        layer, index = key.rsplit("/", 1)
        params.setdefault(layer, {})[int(index)] = value
    return {layer: [blobs[i] for i in sorted(blobs)] for layer, blobs in params.items()}


def run_forward(net: Net, data: np.ndarray) -> dict[str, np.ndarray]:
    with torch.no_grad():
        net.forward(data=data)
    return {name: blob.numpy() for name, blob in net.blobs.items()}


def assert_params_equal(net: Net, expected: dict[str, list[np.ndarray]]) -> None:
    assert set(net.params) == set(expected)
    for layer, blobs in expected.items():
        ours = net.params[layer]
        assert len(ours) == len(blobs), layer
        for i, (mine, theirs) in enumerate(zip(ours, blobs)):
            assert tuple(mine.shape) == theirs.shape, (layer, i)
            assert np.array_equal(mine.detach().numpy(), theirs), (layer, i)


@pytest.mark.golden
@pytest.mark.parametrize("layout", ["default", "nchw", "channels_last", "no_constant_band",
                                    "all_gemm", "every_band"])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", VOC_NETS)
def test_forward_blobs_match_caffe(golden, name, size, layout, monkeypatch):
    if layout == "all_gemm":  # every one-group convolution through im2col + GEMM
        monkeypatch.setattr(convolution, "GEMM_MAX_OUTPUT_PIXELS", 10**9)
        monkeypatch.setattr(convolution, "GEMM_MIN_REDUCTION", 1)
        monkeypatch.setattr(convolution, "conv_band", lambda *args: None)
    if layout == "every_band":  # the band's sub-windows wherever it has one, paying or not
        monkeypatch.setattr(convolution, "BANDED_COST_MODEL", False)
        monkeypatch.setattr(convolution, "BANDED_MAX_EXPLICIT_FRACTION", 1.0)
    folder = golden / name
    net = Net(folder / "deploy.prototxt", folder / "weights.caffemodel")
    if layout == "channels_last":
        net.use_channels_last()
    if layout in ("nchw", "no_constant_band", "all_gemm"):
        net.use_channels_last(False)
    if layout == "no_constant_band":
        net.use_constant_band(False)
    reference = np.load(folder / f"forward_{size}.npz")
    expected = npz_group(reference, "blob/")
    got = run_forward(net, expected["data"])
    assert_all_close(got, expected, FORWARD_TOLERANCE, f"{name} {size}")
    assert set(got) == set(expected)  # no blob missing, none invented
    assert net.outputs == ["score"]


@pytest.mark.golden
@pytest.mark.parametrize("layout", ["default", "nchw"])
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", VOC_NETS)
def test_released_forward_scores_match_caffe(golden, name, size, layout):
    """With blobs freed (``keep_blobs = False``) the last upsampling computes only the
    window its crop keeps (``reproduce.net.crop_fusion``): the score still Caffe's."""
    folder = golden / name
    net = Net(folder / "deploy.prototxt", folder / "weights.caffemodel")
    net.keep_blobs = False
    if layout == "nchw":
        net.use_channels_last(False)
    fused = [net._plan[i].tops[0] for i in net._crop_fusions]
    assert fused == [{"voc-fcn32s": "upscore", "voc-fcn-alexnet": "upscore",
                      "voc-fcn16s": "upscore16"}.get(name, "upscore8")]
    reference = np.load(folder / f"forward_{size}.npz")
    expected = npz_group(reference, "blob/")
    with torch.no_grad():
        score = net.forward(data=expected["data"])["score"]
    assert set(net.blobs) == {"score"}
    assert_all_close({"score": score.numpy()}, {"score": expected["score"]}, FORWARD_TOLERANCE,
                     f"{name} {size} released")


@pytest.mark.golden
@pytest.mark.parametrize("weights", ["weights.caffemodel", "weights.caffemodel.h5"])
@pytest.mark.parametrize("name", VOC_NETS)
def test_loaded_params_equal_caffes(golden, name, weights):
    folder = golden / name
    net = Net(folder / "deploy.prototxt", folder / weights)
    assert_params_equal(net, caffe_params(np.load(folder / "forward_64x80.npz")))


@pytest.mark.golden
def test_v1_vgg16_forward_matches_caffe(golden):
    folder = golden / "vgg16-v1"
    net = Net(folder / "deploy.prototxt", folder / "weights.caffemodel")
    reference = np.load(folder / "forward_224x224.npz")
    assert_params_equal(net, caffe_params(reference))
    expected = npz_group(reference, "blob/")
    got = run_forward(net, expected["data"])
    assert_all_close(got, expected, FORWARD_TOLERANCE, "vgg16-v1 224x224")
    assert net.inputs == ["data"] and net.outputs == ["prob"]
    assert got["prob"].sum() == pytest.approx(1.0, rel=1e-5)


@pytest.mark.golden
@pytest.mark.parametrize("name", VOC_NETS)
def test_keep_blobs_false_frees_intermediates_and_keeps_outputs(golden, name):
    folder = golden / name
    net = Net(folder / "deploy.prototxt", folder / "weights.caffemodel")
    reference = np.load(folder / "forward_64x80.npz")
    net.keep_blobs = False
    with torch.no_grad():
        out = net.forward(data=reference["blob/data"])
    assert set(net.blobs) == {"score"}
    assert_all_close({"score": out["score"].numpy()}, {"score": reference["blob/score"]}, FORWARD_TOLERANCE, name)

"""Fork layers that OpenCV 4.x's Caffe importer reads — DeepLab/PSPNet's Interp, SSD's Normalize,
Permute, PriorBox and DetectionOutput — against OpenCV's dnn on the same prototxt and weights.

The weights are random (non-zero, asserted to make the outputs vary) and written with the
project's caffemodel writer; the prototxt with its prototxt writer, which keeps the forks' fields
at the forks' numbers (``reproduce.caffe.proto_tables``).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from reproduce.caffe import decode, emit, encode, parse
from reproduce.caffe.schema import MESSAGES, project_extensions
from reproduce.caffe.weights import write_caffemodel
from reproduce.export import ExportError
from reproduce.net import Net

cv2 = pytest.importorskip("cv2", reason="opencv-python-headless<5 is a test dependency (make install)")


def _random_weights(net: Net, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {layer: [(rng.standard_normal(b.shape) * np.sqrt(2.0 / max(1, np.prod(b.shape[1:])))
                     ).astype(np.float32) for b in blobs]
            for layer, blobs in net.weights_dict().items()}


def _both(tmp_path, text: str, inputs: dict, outputs: list[str], seed: int = 0):
    """(ours, OpenCV's) outputs of the net ``text`` on ``inputs`` with the same random weights."""
    param = parse(text)
    net = Net(param)
    weights = _random_weights(net, seed)
    net.copy_from(weights)
    prototxt, caffemodel = tmp_path / "net.prototxt", tmp_path / "net.caffemodel"
    prototxt.write_text(emit(param))
    write_caffemodel(caffemodel, weights, param)
    cv_net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
    for name, value in inputs.items():
        cv_net.setInput(value, name)
    theirs = dict(zip(outputs, cv_net.forward(outputs)))
    with torch.no_grad():
        net.forward(**{k: torch.from_numpy(v) for k, v in inputs.items()})
    ours = {name: net.blobs[name].numpy() for name in outputs}
    return ours, theirs


def _input(name: str, shape) -> str:
    dims = " ".join(f"dim: {d}" for d in shape)
    return f'layer {{ name: "{name}" type: "Input" top: "{name}" input_param {{ shape {{ {dims} }} }} }}\n'


def _image(shape, seed=1, scale=1.0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


# ----------------------------------------------------------------------------- schema


def test_fork_fields_keep_the_forks_numbers_and_round_trip():
    layer = MESSAGES["LayerParameter"]
    numbers = {f.name: f.number for f in layer.fields.values() if f.fork}
    assert numbers == {"interp_param": 143, "permute_param": 202, "prior_box_param": 203,
                       "detection_output_param": 204, "norm_param": 206}
    text = ('layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 } } }\n'
            'layer { name: "up" type: "Interp" bottom: "x" top: "y" interp_param { zoom_factor: 8 pad_beg: -1 } }\n'
            'layer { name: "p" type: "PriorBox" bottom: "y" bottom: "x" top: "z" '
            'prior_box_param { min_size: 30 aspect_ratio: 2 variance: 0.1 variance: 0.2 } }\n')
    net = parse(text)
    assert project_extensions(net) == []          # the writers keep fork fields
    again = decode(encode(net), "NetParameter")   # 143 is input_param, except on an Interp
    assert again == net
    assert again.layer[1].interp_param.zoom_factor == 8 and again.layer[0].input_param.shape[0].dim == [1]
    assert parse(emit(net)) == net


# ----------------------------------------------------------------------------- Interp


@pytest.mark.parametrize("interp, pads", [   # OpenCV's Interp reads zoom_factor and height/width
    ("zoom_factor: 3", ""), ("height: 17 width: 9", ""), ("height: 1 width: 1", ""),
    ("zoom_factor: 4", "pad_beg: -1 pad_end: -2"), ("height: 5 width: 30", "pad_beg: -2")])
def test_interp_matches_opencv(tmp_path, interp, pads):
    """Negative pads crop first; OpenCV ignores them, so it gets the cropped input instead."""
    layer = 'layer {{ name: "up" type: "Interp" bottom: "data" top: "up" interp_param {{ {} }} }}\n'
    x = _image((2, 3, 11, 14))
    beg = -int(pads.split("pad_beg:")[1].split()[0]) if "pad_beg" in pads else 0
    end = -int(pads.split("pad_end:")[1].split()[0]) if "pad_end" in pads else 0
    cropped = np.ascontiguousarray(x[..., beg:11 - end, beg:14 - end])
    _, theirs = _both(tmp_path, _input("data", cropped.shape) + layer.format(interp),
                      {"data": cropped}, ["up"])
    net = Net(parse(_input("data", x.shape) + layer.format(f"{interp} {pads}")))
    ours = net.forward(data=torch.from_numpy(x))["up"].numpy()
    assert ours.shape == theirs["up"].shape
    np.testing.assert_allclose(ours, theirs["up"], rtol=0, atol=1e-5)


def test_interp_shrink_factor_samples_the_grid():
    """OpenCV's Interp has no shrink_factor: where (H_eff - 1) is a multiple of it the fork's
    output is every shrink-th pixel; with a zoom as well, the output size is the zoomed shrunk
    size, interpolated from the whole input (as height/width, which OpenCV checks)."""
    x = torch.from_numpy(_image((2, 3, 13, 9)))
    shrink = Net(parse(_input("data", (2, 3, 13, 9)) + 'layer { name: "s" type: "Interp" bottom: "data" '
                       'top: "s" interp_param { shrink_factor: 4 pad_end: 0 } }'))
    assert torch.equal(shrink.forward(data=x)["s"], x[..., ::4, ::4])
    both = Net(parse(_input("data", (2, 3, 13, 9)) + 'layer { name: "s" type: "Interp" bottom: "data" '
                     'top: "s" interp_param { shrink_factor: 4 zoom_factor: 2 } }'))
    sized = Net(parse(_input("data", (2, 3, 13, 9)) + 'layer { name: "s" type: "Interp" bottom: "data" '
                      'top: "s" interp_param { height: 7 width: 5 } }'))   # (4 + 3) x (3 + 2)
    assert torch.equal(both.forward(data=x)["s"], sized.forward(data=x)["s"])


def test_interp_keeps_the_corners_and_refuses_positive_pads():
    net = Net(parse(_input("data", (1, 1, 3, 4)) + 'layer { name: "up" type: "Interp" bottom: "data" '
                    'top: "up" interp_param { zoom_factor: 5 } }'))
    x = torch.arange(12, dtype=torch.float32).reshape(1, 1, 3, 4)
    y = net.forward(data=x)["up"]
    assert tuple(y.shape) == (1, 1, 11, 16)
    assert torch.equal(y[..., ::5, ::5], x)
    with pytest.raises(ValueError, match="non-pos padding"):
        Net(parse(_input("data", (1, 1, 3, 4)) + 'layer { name: "up" type: "Interp" bottom: "data" '
                  'top: "up" interp_param { zoom_factor: 2 pad_beg: 1 } }'))


# ----------------------------------------------------------------------------- Normalize, Permute


@pytest.mark.parametrize("across, shared", [(True, True), (False, False), (False, True)])
def test_normalize_matches_opencv(tmp_path, across, shared):
    """(OpenCV 4.x refuses across_spatial with a per-channel scale; see the next test.)"""
    text = _input("data", (2, 5, 6, 7)) + (
        'layer { name: "norm" type: "Normalize" bottom: "data" top: "norm" norm_param { '
        f'across_spatial: {str(across).lower()} channel_shared: {str(shared).lower()} '
        'scale_filler { type: "constant" value: 20 } eps: 1e-6 } }\n')
    ours, theirs = _both(tmp_path, text, {"data": _image((2, 5, 6, 7), scale=3)}, ["norm"], seed=4)
    assert ours["norm"].std() > 0.01
    np.testing.assert_allclose(ours["norm"], theirs["norm"], rtol=1e-5, atol=1e-6)


def test_normalize_across_spatial_with_channel_scales():
    net = Net(parse(_input("data", (2, 5, 6, 7)) + 'layer { name: "n" type: "Normalize" bottom: "data" '
                    'top: "n" norm_param { across_spatial: true channel_shared: false eps: 1e-6 } }'))
    scale = torch.arange(1, 6, dtype=torch.float32)
    net.copy_from({"n": [scale.numpy()]})
    x = torch.from_numpy(_image((2, 5, 6, 7)))
    norm = torch.sqrt((x * x).sum((1, 2, 3), keepdim=True) + 1e-6)
    torch.testing.assert_close(net.forward(data=x)["n"], x / norm * scale[:, None, None], rtol=1e-6, atol=1e-7)


def test_permute_fills_in_the_axes_left_out():   # (OpenCV 4.x wants every axis listed)
    net = Net(parse(_input("data", (2, 3, 4, 5)) + 'layer { name: "p" type: "Permute" bottom: "data" '
                    'top: "p" permute_param { order: 0 order: 3 } }'))
    x = torch.from_numpy(_image((2, 3, 4, 5)))
    assert torch.equal(net.forward(data=x)["p"], x.permute(0, 3, 1, 2))


@pytest.mark.parametrize("order", ["order: 0 order: 2 order: 3 order: 1",
                                   "order: 1 order: 0 order: 2 order: 3"])
def test_permute_matches_opencv(tmp_path, order):
    text = _input("data", (2, 3, 4, 5)) + (
        f'layer {{ name: "perm" type: "Permute" bottom: "data" top: "perm" permute_param {{ {order} }} }}\n')
    x = _image((2, 3, 4, 5))
    ours, theirs = _both(tmp_path, text, {"data": x}, ["perm"])
    np.testing.assert_array_equal(ours["perm"], theirs["perm"].reshape(ours["perm"].shape))


# ----------------------------------------------------------------------------- PriorBox


@pytest.mark.parametrize("prior", [
    "min_size: 30 max_size: 60 aspect_ratio: 2 flip: true clip: false variance: 0.1 variance: 0.1 "
    "variance: 0.2 variance: 0.2",
    "min_size: 21 aspect_ratio: 2 aspect_ratio: 3 flip: true clip: true variance: 0.1",
    "min_size: 10 min_size: 40 max_size: 30 max_size: 70 aspect_ratio: 0.5 flip: false clip: false "
    "step: 8 offset: 0.25 variance: 0.2",
    "min_size: 16 aspect_ratio: 2 flip: true clip: true step_h: 9 step_w: 6 variance: 0.1"])
def test_prior_box_matches_opencv(tmp_path, prior):
    """(OpenCV 4.x requires a variance, where the fork defaults to 0.1, and ignores img_size.)"""
    text = _input("feat", (1, 4, 5, 7)) + _input("data", (1, 3, 40, 56)) + (
        f'layer {{ name: "pb" type: "PriorBox" bottom: "feat" bottom: "data" top: "pb" '
        f'prior_box_param {{ {prior} }} }}\n')
    inputs = {"feat": _image((1, 4, 5, 7)), "data": _image((1, 3, 40, 56))}
    ours, theirs = _both(tmp_path, text, inputs, ["pb"])
    assert ours["pb"].shape == theirs["pb"].shape
    np.testing.assert_allclose(ours["pb"], theirs["pb"], rtol=0, atol=1e-6)


def test_prior_box_takes_min_size_as_an_integer_as_the_fork():
    """The fork's ``int min_size_ = min_sizes_[s]`` truncates 21.7 to 21 (OpenCV keeps 21.7)."""
    def boxes(size):
        return Net(parse(_input("feat", (1, 4, 5, 7)) + _input("data", (1, 3, 40, 56)) + (
            'layer { name: "pb" type: "PriorBox" bottom: "feat" bottom: "data" top: "pb" '
            f'prior_box_param {{ min_size: {size} aspect_ratio: 2 }} }}'))).forward(
                feat=torch.zeros(1, 4, 5, 7), data=torch.zeros(1, 3, 40, 56))["pb"]
    assert torch.equal(boxes(21.7), boxes(21)) and not torch.equal(boxes(21), boxes(22))
    assert torch.equal(boxes(21)[0, 1], torch.full((5 * 7 * 3 * 4,), 0.1))   # default variance


def test_prior_box_img_size_stands_for_the_image():
    def boxes(extra, image):
        return Net(parse(_input("feat", (1, 4, 5, 7)) + _input("data", (1, 3) + image) + (
            'layer { name: "pb" type: "PriorBox" bottom: "feat" bottom: "data" top: "pb" '
            f'prior_box_param {{ min_size: 30 aspect_ratio: 2 {extra} }} }}'))).forward(
                feat=torch.zeros(1, 4, 5, 7), data=torch.zeros((1, 3) + image))["pb"]
    assert torch.equal(boxes("img_size: 100", (40, 56)), boxes("", (100, 100)))
    assert torch.equal(boxes("img_h: 60 img_w: 70", (40, 56)), boxes("", (60, 70)))


# ----------------------------------------------------------------------------- nets


def _conv(name, bottom, out, kernel=3, stride=1, pad=1, dilation=1):
    return (f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{name}" '
            f'convolution_param {{ num_output: {out} kernel_size: {kernel} stride: {stride} pad: {pad} '
            f'dilation: {dilation} }} }}\n')


def _relu(name):
    return f'layer {{ name: "{name}_relu" type: "ReLU" bottom: "{name}" top: "{name}" }}\n'


CLASSES = 4


def ssd_net(share_location: bool = True, code_type: str = "CENTER_SIZE") -> str:
    """An SSD-shaped deploy net: two heads (one after Normalize), Permute/Flatten/Concat,
    PriorBox, soft-maxed confidences and DetectionOutput."""
    text = 'name: "ssd-shaped"\n' + _input("data", (1, 3, 48, 64))
    text += _conv("conv1", "data", 8) + _relu("conv1") + _conv("conv2", "conv1", 12, stride=2) + _relu("conv2")
    text += _conv("conv3", "conv2", 12, stride=2) + _relu("conv3")
    text += ('layer { name: "conv2_norm" type: "Normalize" bottom: "conv2" top: "conv2_norm" '
             'norm_param { across_spatial: false channel_shared: false scale_filler { type: "constant" value: 20 } } }\n')
    heads = [("conv2_norm", "min_size: 10 max_size: 24 aspect_ratio: 2 flip: true", 4),
             ("conv3", "min_size: 24 max_size: 40 aspect_ratio: 2 aspect_ratio: 3 flip: true", 6)]
    for source, prior, count in heads:
        for kind, width in (("loc", 4 if share_location else 4 * CLASSES), ("conf", CLASSES)):
            name = f"{source}_mbox_{kind}"
            text += _conv(name, source, count * width)
            text += (f'layer {{ name: "{name}_perm" type: "Permute" bottom: "{name}" top: "{name}_perm" '
                     'permute_param { order: 0 order: 2 order: 3 order: 1 } }\n')
            text += (f'layer {{ name: "{name}_flat" type: "Flatten" bottom: "{name}_perm" '
                     f'top: "{name}_flat" flatten_param {{ axis: 1 }} }}\n')
        text += (f'layer {{ name: "{source}_mbox_priorbox" type: "PriorBox" bottom: "{source}" bottom: "data" '
                 f'top: "{source}_mbox_priorbox" prior_box_param {{ {prior} clip: false variance: 0.1 '
                 'variance: 0.1 variance: 0.2 variance: 0.2 offset: 0.5 } }\n')
    for kind, suffix, axis in (("loc", "_flat", 1), ("conf", "_flat", 1), ("priorbox", "", 2)):
        bottoms = " ".join(f'bottom: "{s}_mbox_{kind}{suffix}"' for s, _, _ in heads)
        text += (f'layer {{ name: "mbox_{kind}" type: "Concat" {bottoms} top: "mbox_{kind}" '
                 f'concat_param {{ axis: {axis} }} }}\n')
    text += ('layer { name: "mbox_conf_reshape" type: "Reshape" bottom: "mbox_conf" top: "mbox_conf_reshape" '
             f'reshape_param {{ shape {{ dim: 0 dim: -1 dim: {CLASSES} }} }} }}\n'
             'layer { name: "mbox_conf_softmax" type: "Softmax" bottom: "mbox_conf_reshape" '
             'top: "mbox_conf_softmax" softmax_param { axis: 2 } }\n'
             'layer { name: "mbox_conf_flatten" type: "Flatten" bottom: "mbox_conf_softmax" '
             'top: "mbox_conf_flatten" flatten_param { axis: 1 } }\n'
             'layer { name: "detection_out" type: "DetectionOutput" bottom: "mbox_loc" '
             'bottom: "mbox_conf_flatten" bottom: "mbox_priorbox" top: "detection_out" '
             f'detection_output_param {{ num_classes: {CLASSES} share_location: {str(share_location).lower()} '
             'background_label_id: 0 nms_param { nms_threshold: 0.45 top_k: 40 } '
             f'code_type: {code_type} keep_top_k: 25 '
             'confidence_threshold: 0.2 } }\n')
    return text


@pytest.mark.parametrize("share, code", [(True, "CENTER_SIZE"), (False, "CENTER_SIZE"), (True, "CORNER")])
def test_ssd_shaped_net_matches_opencv(tmp_path, share, code):
    blobs = ["conv2_norm", "mbox_loc", "mbox_conf_flatten", "mbox_priorbox", "detection_out"]
    ours, theirs = _both(tmp_path, ssd_net(share, code), {"data": _image((1, 3, 48, 64), scale=2)},
                         blobs, seed=7)
    for name in blobs[:-1]:   # within 1e-5 of the blob's scale (the convolutions round apart)
        assert ours[name].std() > 1e-3, name
        scale = np.abs(theirs[name]).max()
        assert np.abs(ours[name] - theirs[name].reshape(ours[name].shape)).max() <= 1e-5 * scale, name
    mine, cv = ours["detection_out"][0, 0], theirs["detection_out"][0, 0]
    assert 5 <= len(mine) <= 25 and len(set(mine[:, 1])) > 1   # several classes survive NMS
    assert mine.shape == cv.shape
    # the fork writes the kept detections by image, label, then score (its std::map of labels);
    # OpenCV, once keep_top_k cut them, by score: the same rows, in the fork's order
    cv = cv[np.lexsort((-cv[:, 2], cv[:, 1], cv[:, 0]))]
    assert not np.array_equal(cv, theirs["detection_out"][0, 0])   # keep_top_k did cut
    np.testing.assert_allclose(mine, cv, rtol=1e-5, atol=1e-5)


def deeplab_net() -> str:
    """A DeepLab-v2-shaped deploy net: dilated convolutions, an ASPP head summed by Eltwise
    and the final Interp by zoom_factor 8 (and a second Interp to a fixed size)."""
    text = 'name: "deeplab-v2-shaped"\n' + _input("data", (1, 3, 41, 49))
    text += _conv("conv1", "data", 8) + _relu("conv1")
    text += ('layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" '
             'pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 } }\n')
    text += _conv("conv2", "pool1", 12, pad=2, dilation=2) + _relu("conv2")
    text += ('layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2" '
             'pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 } }\n')
    text += ('layer { name: "pool3" type: "Pooling" bottom: "pool2" top: "pool3" '
             'pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 } }\n')
    branches = []
    for rate in (1, 2, 3):
        name = f"fc8_c{rate}"
        text += _conv(name, "pool3", 5, pad=rate, dilation=rate)
        branches.append(name)
    bottoms = " ".join(f'bottom: "{b}"' for b in branches)
    text += (f'layer {{ name: "fc8" type: "Eltwise" {bottoms} top: "fc8" eltwise_param {{ operation: SUM }} }}\n'
             'layer { name: "fc8_interp" type: "Interp" bottom: "fc8" top: "fc8_interp" '
             'interp_param { zoom_factor: 8 } }\n'
             'layer { name: "fc8_fixed" type: "Interp" bottom: "fc8" top: "fc8_fixed" '
             'interp_param { height: 41 width: 49 } }\n')
    return text


def test_deeplab_shaped_net_matches_opencv(tmp_path):
    ours, theirs = _both(tmp_path, deeplab_net(), {"data": _image((1, 3, 41, 49), scale=50)},
                         ["fc8", "fc8_interp", "fc8_fixed"], seed=9)
    assert ours["fc8_interp"].shape == (1, 5, 41, 49)   # (6 - 1) * 8 + 1 by 7 → 49
    for name in ours:   # within 1e-5 of the blob's scale (the convolutions round apart)
        assert ours[name].std() > 1e-3
        assert np.abs(ours[name] - theirs[name]).max() <= 1e-5 * np.abs(theirs[name]).max(), name


# ----------------------------------------------------------------------------- export


def test_deploy_fork_layers_export_with_dynamic_sizes_and_detection_output_is_refused(tmp_path):
    """Interp, Normalize, Permute and PriorBox export (torch.export and ONNX), agreeing with our
    forward at other input sizes than the net was built for; DetectionOutput is refused."""
    pytest.importorskip("onnxruntime", reason="the export extra (make install) runs ONNX")
    from test_export import assert_runtimes_agree, export_both, randomize

    from reproduce.export import DeployGraph

    text = ('name: "forks"\n' + _input("data", (1, 3, 24, 32)) + _conv("conv1", "data", 6, stride=2)
            + 'layer { name: "norm" type: "Normalize" bottom: "conv1" top: "norm" '
              'norm_param { across_spatial: false channel_shared: false } }\n'
            + 'layer { name: "norm2" type: "Normalize" bottom: "conv1" top: "norm2" norm_param { eps: 1e-6 } }\n'
            + 'layer { name: "perm" type: "Permute" bottom: "norm" top: "perm" '
              'permute_param { order: 0 order: 2 order: 3 order: 1 } }\n'
            + 'layer { name: "pb" type: "PriorBox" bottom: "norm" bottom: "data" top: "pb" '
              'prior_box_param { min_size: 8 max_size: 20 aspect_ratio: 2 flip: true clip: true '
              'variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2 } }\n'
            + 'layer { name: "up" type: "Interp" bottom: "norm2" top: "up" interp_param { zoom_factor: 3 } }\n'
            + 'layer { name: "crop_up" type: "Interp" bottom: "norm2" top: "crop_up" '
              'interp_param { height: 13 width: 7 pad_beg: -1 } }\n')
    net = randomize(Net(parse(text)))
    program, onnx_path = export_both(net, tmp_path)
    rng = np.random.default_rng(5)
    for n, h, w in ((1, 24, 32), (2, 17, 40), (1, 30, 22)):
        expected = assert_runtimes_agree(net, program, onnx_path, {"data": rng.normal(0, 2, (n, 3, h, w))},
                                         f"forks {n}x{h}x{w}")
        assert all(expected[name].std() > 1e-3 for name in ("perm", "pb", "up", "crop_up"))
    with pytest.raises(ExportError, match="DetectionOutput's output has a data-dependent size"):
        DeployGraph(Net(parse(ssd_net())))


def test_interp_takes_the_second_bottoms_size():
    text = _input("data", (1, 2, 5, 6)) + _input("ref", (1, 1, 9, 4))
    sized = Net(parse(text + 'layer { name: "up" type: "Interp" bottom: "data" bottom: "ref" top: "up" }'))
    fixed = Net(parse(text + 'layer { name: "up" type: "Interp" bottom: "data" top: "up" '
                      'interp_param { height: 9 width: 4 } }'))
    x = torch.from_numpy(_image((1, 2, 5, 6)))
    got = sized.forward(data=x, ref=torch.zeros(1, 1, 9, 4))["up"]
    assert tuple(got.shape) == (1, 2, 9, 4)
    assert torch.equal(got, fixed.forward(data=x, ref=torch.zeros(1, 1, 9, 4))["up"])

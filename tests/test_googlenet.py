"""FCN-GoogLeNet (CVPR 2015 Sec. 4.1, Table 1), the adapted classifier the release never published.

* its layers are the model zoo's GoogLeNet (``../shared/fcn-upstream/ilsvrc``) field for field,
  up to ``inception_5b/output``; the auxiliary classifiers, the final average pooling and the
  classifier are gone, ``score_fr``/``upscore``/``score`` are new; the description of the
  whole classifier (``reproduce.models.ilsvrc``) equals the model zoo's ``train_val`` too;
* the module is the ``Net`` of the emitted prototxt (keys = Caffe layer names, same scores);
* OpenCV's independent Caffe importer runs the emitted deploy net with weights written by our
  caffemodel writer and computes what we compute — with the constant band, without it, and
  with every convolution through im2col + GEMM;
* from a GoogLeNet-shaped classifier caffemodel (tiny widths, generated here) ``convert
  --prototxt`` and the stage transplant what matches by name and drop the classifiers, and
  the stage trains on generated data.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import UPSTREAM, require_shared
from test_spec_models import assert_same_layers, plain_layer

from reproduce.caffe import emit, read, write_caffemodel
from reproduce.models import model, net_param, solver_param
from reproduce.models.ilsvrc import googlenet_classifier_net
from reproduce.net import Net

SHAPE = (1, 3, 64, 80)
DROPPED_PREFIXES = ("loss1/", "loss2/", "loss3/")


@pytest.fixture(scope="module")
def zoo():
    """The model zoo's bvlc_googlenet train_val net."""
    return read(require_shared(UPSTREAM / "ilsvrc") / "bvlc_googlenet_train_val.prototxt")


def _zoo_trunk(zoo) -> list:
    """The model zoo's layers up to inception_5b/output, without the auxiliary classifiers."""
    names = [layer.name for layer in zoo.layer]
    end = names.index("inception_5b/output")
    return [layer for layer in zoo.layer[:end + 1]
            if layer.type != "Data" and not layer.name.startswith(DROPPED_PREFIXES)]


# ----------------------------------------------------------------------------- the description


def test_shared_layers_equal_the_model_zoo_googlenet(zoo):
    ours = net_param("fcn-googlenet", "train")
    trunk = _zoo_trunk(zoo)
    assert len(trunk) == 10 + 9 * 14 + 2  # the stem, nine inception modules, pool3 and pool4
    by_name = {layer.name: layer for layer in ours.layer}
    for reference in trunk:
        mine = by_name[reference.name]
        expected = plain_layer(reference)
        if reference.name == "conv1/7x7_s2":   # the FCNs' pad 100 in place of pad 3
            assert reference.convolution_param.pad == [3] and mine.convolution_param.pad == [100]
            expected["convolution_param"]["pad"] = [100.0]
        assert plain_layer(mine) == expected, reference.name
    # the model zoo's order, and nothing of it beyond the trunk but its last dropout
    zoo_names = {layer.name for layer in zoo.layer}
    shared = [layer.name for layer in ours.layer if layer.name in zoo_names and layer.type != "Python"]
    assert shared == [layer.name for layer in trunk] + ["pool5/drop_7x7_s1"]
    # dropout where the classifier had it (Sec. 4.1): 0.4, now on inception_5b/output
    drop = by_name["pool5/drop_7x7_s1"]
    zoo_drop = next(layer for layer in zoo.layer if layer.name == "pool5/drop_7x7_s1")
    assert drop.dropout_param.dropout_ratio == zoo_drop.dropout_param.dropout_ratio
    assert drop.bottom == drop.top == ["inception_5b/output"]


def test_auxiliary_classifiers_average_pooling_and_classifier_are_dropped(zoo):
    ours = net_param("fcn-googlenet", "train")
    names = [layer.name for layer in ours.layer]
    dropped = [layer.name for layer in zoo.layer
               if layer.name.startswith(DROPPED_PREFIXES) or layer.name == "pool5/7x7_s1"]
    assert len(dropped) == 2 * 10 + 4 + 1  # loss1/loss2: 10 layers each; loss3: 4; the pooling
    assert not set(dropped) & set(names)
    assert not any(layer.type in ("InnerProduct", "Accuracy") for layer in ours.layer)
    new = [name for name in names if name not in {layer.name for layer in zoo.layer}]
    assert new == ["score_fr", "upscore", "score", "loss"]
    layers = {layer.name: layer for layer in ours.layer}
    score_fr = layers["score_fr"]
    assert score_fr.bottom == ["inception_5b/output"]
    assert score_fr.convolution_param.num_output == 21 and score_fr.convolution_param.kernel_size == [1]
    assert not score_fr.convolution_param.has("weight_filler")   # Caffe's constant 0: zero-initialised
    up = layers["upscore"]
    assert up.type == "Deconvolution" and [p.lr_mult for p in up.param] == [0]
    assert (up.convolution_param.kernel_size, up.convolution_param.stride) == ([63], [32])
    assert not up.convolution_param.bias_term
    # the crop by coordinate mapping: pad 100 − 2 (see reproduce.models.voc)
    assert (layers["score"].crop_param.axis, layers["score"].crop_param.offset) == (2, [98])
    loss = layers["loss"].loss_param
    assert (loss.normalize, loss.ignore_label) == (False, 255)


def test_param_groups_and_widths():
    from reproduce.models import param_groups, param_specs

    groups = param_groups("fcn-googlenet")
    assert len(groups) == 3 + 9 * 6 + 2   # the stem's three convolutions, six per module, score_fr, upscore
    assert {tuple(v) for k, v in groups.items() if k != "upscore"} == {((1.0, 1.0), (2.0, 0.0))}
    assert groups["upscore"] == [(0.0, 1.0)]
    tiny = net_param("fcn-googlenet", "deploy", widths="tiny", input_shape=SHAPE)
    assert param_specs(tiny) == Net(tiny).param_specs
    outputs = {layer.name: layer.convolution_param.num_output for layer in tiny.layer
               if layer.type == "Convolution"}
    assert (outputs["conv1/7x7_s2"], outputs["inception_5b/1x1"], outputs["inception_4a/5x5_reduce"],
            outputs["score_fr"]) == (4, 16, 2, 21)


def test_a_64_kernel_upsampling_could_not_be_cropped_into_place():
    from reproduce.net.coord_map import CoordMapError, fill_crop_offsets
    from reproduce.models import net_spec

    spec = net_spec("fcn-googlenet", "deploy", widths="tiny")
    net = spec.to_proto()
    up = next(layer for layer in net.layer if layer.name == "upscore")
    up.convolution_param.kernel_size = [64]
    with pytest.raises(CoordMapError, match=r"shift -197/2.*not an integer"):
        fill_crop_offsets(net)


def test_the_classifier_description_equals_the_model_zoo_net(zoo):
    ours = googlenet_classifier_net()
    mine = [layer for layer in ours.layer if layer.type not in ("Input", "Softmax")]
    theirs = [layer for layer in zoo.layer if layer.type not in ("Data", "SoftmaxWithLoss", "Accuracy")]
    assert_same_layers(mine, theirs, "bvlc_googlenet train_val")
    assert [layer.name for layer in ours.layer][-1] == "prob"
    with pytest.raises(ValueError, match="num_classes"):
        googlenet_classifier_net(num_classes=0)
    with pytest.raises(ValueError, match="input_shape"):
        googlenet_classifier_net(input_shape=(1, 4, 224, 224))


def test_the_release_style_solver_and_prototxt_ref():
    from pathlib import Path

    m = model("fcn-googlenet")
    assert (m.folder, m.released, m.base_net, m.init, m.make_target) == (
        "voc-fcn-googlenet", False, "googlenet", "transplant", "stage-googlenet")
    ours, fcn32s = solver_param("fcn-googlenet"), solver_param("fcn32s")
    assert emit(ours) == emit(fcn32s)   # FCN-32s's release solver, value for value
    ref = Path(__file__).resolve().parents[1] / "prototxt_ref" / "voc-fcn-googlenet"
    assert sorted(p.name for p in ref.glob("*.prototxt")) == [
        "deploy.prototxt", "solver.prototxt", "train.prototxt", "val.prototxt"]
    assert read(ref / "val.prototxt") == net_param("fcn-googlenet", "val")


# ----------------------------------------------------------------------------- the module


def _random_weights(net: Net, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {layer: [(rng.standard_normal(b.shape) * np.sqrt(2.0 / max(1, np.prod(b.shape[1:])))
                     ).astype(np.float32) for b in blobs]
            for layer, blobs in net.weights_dict().items()}


def test_module_is_the_net_of_the_emitted_prototxt(tmp_path):
    from reproduce.models import FCN

    import reproduce

    module = FCN.from_model("fcn-googlenet", widths="tiny")
    assert type(module) is reproduce.FCNGoogLeNet
    assert isinstance(module, torch.nn.Module) and module.num_classes == 21
    keys = set(module.state_dict())
    assert {"conv1/7x7_s2.weight", "inception_4c/5x5_reduce.bias", "score_fr.weight",
            "upscore.weight"} <= keys
    assert not any(key.startswith(DROPPED_PREFIXES) for key in keys)
    prototxt = tmp_path / "deploy.prototxt"
    prototxt.write_text(emit(net_param("fcn-googlenet", "deploy", widths="tiny")))
    net = Net(prototxt)
    weights = _random_weights(net)
    net.copy_from(weights)
    module.copy_from(weights)
    image = torch.from_numpy(np.random.default_rng(1).standard_normal(SHAPE).astype(np.float32) * 50)
    with torch.no_grad():
        mine, theirs = module(image), net.forward(data=image)["score"]
    assert tuple(mine.shape) == (1, 21, 64, 80)
    assert torch.equal(mine, theirs)


# ----------------------------------------------------------------------------- OpenCV, and the fast paths


@pytest.mark.parametrize("widths", ["tiny", "full"])
def test_opencv_agrees_on_the_same_weights_on_every_convolution_path(tmp_path, monkeypatch, widths):
    cv2 = pytest.importorskip("cv2", reason="opencv-python-headless<5 is a test dependency (make install)")
    import reproduce.net.layers.convolution as convolution

    param = net_param("fcn-googlenet", "deploy", widths=widths, input_shape=SHAPE)
    ours = Net(param)
    weights = _random_weights(ours, seed=2)
    ours.copy_from(weights)
    prototxt, caffemodel = tmp_path / "deploy.prototxt", tmp_path / "w.caffemodel"
    prototxt.write_text(emit(param))
    write_caffemodel(caffemodel, weights, param)
    image = np.random.default_rng(3).standard_normal(SHAPE).astype(np.float32) * 50
    cv_net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
    cv_net.setInput(image)
    theirs = cv_net.forward("score")
    assert theirs.shape == (1, 21, 64, 80)
    band_calls, gemm_calls = [], []
    band, gemm = convolution.banded_conv2d, convolution.conv2d_as_gemm
    monkeypatch.setattr(convolution, "banded_conv2d", lambda *a, **k: band_calls.append(1) or band(*a, **k))
    monkeypatch.setattr(convolution, "conv2d_as_gemm", lambda *a, **k: gemm_calls.append(1) or gemm(*a, **k))

    def scores(**layout) -> np.ndarray:
        ours.use_constant_band(layout.get("band", True))
        ours.use_channels_last(layout.get("channels_last"))
        with torch.no_grad():
            return ours.forward(data=image)["score"].numpy().copy()

    paths = {"default": scores(), "nchw, no constant band": scores(band=False, channels_last=False),
             "channels last": scores(channels_last=True)}
    assert band_calls, "the constant band is taken in FCN-GoogLeNet (pad 100)"
    monkeypatch.setattr(convolution, "GEMM_MAX_OUTPUT_PIXELS", 10**9)  # every convolution as GEMM
    monkeypatch.setattr(convolution, "GEMM_MIN_REDUCTION", 1)
    paths["im2col + GEMM, no band"] = scores(band=False, channels_last=False)
    assert gemm_calls, "the GEMM path was taken"
    scale = np.abs(theirs).max()
    assert scale > 0
    for path, mine in paths.items():
        assert np.abs(theirs - mine).max() <= 1e-4 * scale, f"{widths} {path}: OpenCV disagrees"
        assert np.abs(paths["default"] - mine).max() <= 1e-5 * scale, f"{widths} {path} vs default"


def test_constant_band_keeps_blobs_and_gradients(monkeypatch):
    generator = torch.Generator().manual_seed(4)
    net = Net(net_param("fcn-googlenet", "deploy", widths="tiny", input_shape=SHAPE), phase="test",
              generator=generator)
    net.copy_from(_random_weights(net, seed=5))
    data = torch.randn(*SHAPE, generator=generator) * 50
    direction = torch.randn(1, 21, 64, 80, generator=generator)
    results = {}
    for banded in (False, True):
        net.use_constant_band(banded)
        net.use_channels_last(False)
        net.zero_grad(set_to_none=True)
        score = net.forward(data=data)["score"]
        (score * direction).sum().backward()
        results[banded] = ({k: v.detach().clone() for k, v in net.blobs.items()},
                           {k: p.grad.clone() for k, p in net.named_parameters() if p.grad is not None})
    (blobs_dense, grads_dense), (blobs_band, grads_band) = results[False], results[True]
    assert set(grads_dense) == set(grads_band) and "conv1/7x7_s2.weight" in grads_dense
    for name, blob in blobs_dense.items():
        scale = max(float(blob.abs().max()), 1e-6)
        assert float((blobs_band[name] - blob).abs().max()) <= 1e-5 * scale, name
    for name, grad in grads_dense.items():
        scale = max(float(grad.abs().max()), 1e-6)
        assert float((grads_band[name] - grad).abs().max()) <= 1e-4 * scale, name


# ----------------------------------------------------------------------------- transplant and stage


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A GoogLeNet-shaped ILSVRC classifier at tiny widths, written as a current-format caffemodel."""
    folder = tmp_path_factory.mktemp("googlenet-classifier")
    param = googlenet_classifier_net(widths="tiny")
    net = Net(param, generator=torch.Generator().manual_seed(6))
    weights = {layer: [b + np.float32(0.01) for b in blobs] for layer, blobs in net.weights_dict().items()}
    path = folder / "bvlc_googlenet_tiny.caffemodel"
    write_caffemodel(path, weights, param)
    return path, weights


def test_convert_transplants_the_classifier_by_name_and_drops_the_classifiers(classifier, tmp_path, capsys):
    from reproduce.cli import main
    from reproduce.weights.convert import load_weights
    from reproduce.weights.surgery import upsample_filt

    path, source = classifier
    prototxt = tmp_path / "deploy.prototxt"
    prototxt.write_text(emit(net_param("fcn-googlenet", "deploy", widths="tiny")))
    out = tmp_path / "fcn-googlenet.caffemodel"
    assert main(["convert", str(path), "-o", str(out), "--prototxt", str(prototxt)]) == 0
    log = capsys.readouterr().out.splitlines()
    dropped = sorted(line.split()[1] for line in log if line.startswith("dropping "))
    assert dropped == sorted(name for name in source if name.startswith(DROPPED_PREFIXES))
    assert len(dropped) == 2 * 3 + 1   # loss1/loss2: conv, fc, classifier; loss3/classifier
    copied = {line.split()[1] for line in log if line.startswith("copying ")}
    assert copied == {name for name in source if not name.startswith(DROPPED_PREFIXES)}
    assert not any(line.startswith("coercing ") for line in log)
    assert "interp upscore (bilinear)" in log
    result = load_weights(out)
    for name in copied:
        for got, want in zip(result[name], source[name]):
            np.testing.assert_array_equal(got, want, err_msg=name)
    assert not any(np.any(b) for b in result["score_fr"])          # zero-initialised scores
    up = result["upscore"][0]
    np.testing.assert_array_equal(up[range(21), range(21)], np.broadcast_to(upsample_filt(63), (21, 63, 63)))
    assert set(result) == copied | {"score_fr", "upscore"}


def test_stage_trains_fcn_googlenet_from_the_classifier(classifier, tmp_path_factory):
    from reproduce.data import make_synthetic_dataset
    from reproduce.training.stages import run_stage, StageOptions
    from reproduce.weights.convert import load_weights

    path, source = classifier
    data = make_synthetic_dataset(tmp_path_factory.mktemp("googlenet-data"), 3, 2, seed=5)
    runs = tmp_path_factory.mktemp("googlenet-runs")
    lines = []
    result = run_stage(StageOptions(model="fcn-googlenet", init=path, sbd_dir=data.sbdd_dir,
                                    voc_dir=data.voc_dir, runs=runs, widths="tiny", device="cpu",
                                    max_iter=3, base_lr=1e-9, test_interval=3, snapshot=3, display=1,
                                    progress=False, log=lines.append))
    run = runs / "fcn-googlenet"
    init_log = (run / "init.log").read_text().splitlines()
    assert "dropping loss3/classifier" in init_log and "dropping loss1/fc" in init_log
    assert any(line.startswith("copying inception_5b/5x5 0 ") for line in init_log)
    assert "interp upscore (bilinear)" in init_log
    done = json.loads((run / "done.json").read_text())
    assert done["iterations"] == 3 and done["last_test"]["iter"] == 3
    assert np.isfinite(done["last_test"]["loss"])
    final = load_weights(result.final)
    assert np.any(final["score_fr"][0])                                  # learned from zero
    assert not np.array_equal(final["inception_5b/1x1"][0], source["inception_5b/1x1"][0])
    np.testing.assert_array_equal(final["upscore"][0][range(21), range(21)],
                                  np.broadcast_to(final["upscore"][0][0, 0], (21, 63, 63)))  # fixed
    assert "train.prototxt" in {p.name for p in run.iterdir()}
    # verify scores the user's run (widths detected from conv1/7x7_s2), beside the paper's figure
    from reproduce.evaluation.verify import verify

    report = verify(voc_dir=data.voc_dir, runs_dir=runs, weights_dir=runs / "no-weights",
                    stages=("fcn-googlenet",), sources=("trained",), progress=False)
    (row,) = report.rows
    assert row.status == "MEASURED" and row.result["mean_iu"] is not None
    assert "paper: CVPR 2015 Table 1 FCN-GoogLeNet 42.5 mean IU" in row.reason


def test_a_classifier_sharing_no_layer_with_the_net_is_one_clear_error(classifier, tmp_path):
    from reproduce.data import make_synthetic_dataset
    from reproduce.solver import SGDSolver
    from reproduce.training.stages import StageError, StageOptions, initialize, write_prototxts

    path, _ = classifier   # GoogLeNet's layers, handed to FCN-AlexNet
    data = make_synthetic_dataset(tmp_path / "data", 1, 1, seed=7)
    opts = StageOptions(model="fcn-alexnet", init=path, sbd_dir=data.sbdd_dir, voc_dir=data.voc_dir,
                        runs=tmp_path / "runs", widths="tiny", device="cpu", progress=False)
    solver = SGDSolver(write_prototxts(opts)["solver.prototxt"], device="cpu")
    with pytest.raises(StageError, match=r"cannot initialize fcn-alexnet from .*bvlc_googlenet_tiny"
                                         r".*none of its layers \(conv1/7x7_s2, .*ILSVRC classifier of this net"):
        initialize(solver, opts, log=lambda line: None)

"""The paper's regime and ablations (``reproduce.training.ablations``; CVPR 2015 Sec. 3.4, 4.3).

At demo scale: the loss layer's sampling and class weights against their definitions, the
augmentation of the data sources, and each option through a ``tiny`` stage on generated data
— what it writes, what it changes in training, that it is recorded, and that a sampled,
weighted, augmented run resumes exactly.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from reproduce.caffe import read_net, read_solver
from reproduce.caffe.text import parse as parse_net
from reproduce.data.augment import Augmentation, translate
from reproduce.net import Net
from reproduce.training import ablations
from reproduce.training.stagelog import read_records
from reproduce.training.stages import StageError, StageOptions, run_stage, write_prototxts
from reproduce.weights.convert import load_weights

LOSS_NET = """
name: "loss"
layer { name: "input" type: "Input" top: "score" top: "label"
        input_param { shape { dim: 1 dim: 5 dim: 60 dim: 80 } shape { dim: 1 dim: 1 dim: 60 dim: 80 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss"
        loss_param { ignore_label: 255 normalize: false } }
"""


def loss_net(seed=0):
    generator = torch.Generator().manual_seed(seed)
    return Net(parse_net(LOSS_NET), phase="TRAIN", generator=generator), generator


def loss_inputs(seed=1):
    rng = np.random.default_rng(seed)
    score = torch.tensor(rng.normal(size=(1, 5, 60, 80)), dtype=torch.float32, requires_grad=True)
    label = rng.integers(0, 5, size=(1, 1, 60, 80)).astype(np.float32)
    label[0, 0, :5] = 255
    return score, torch.tensor(label)


def forward_backward(net, score, label):
    score = score.detach().clone().requires_grad_(True)
    loss = net(score=score, label=label)["loss"]
    loss.backward()
    return float(loss.detach()), score.grad.clone()


# --------------------------------------------------------------------------- the loss layer


def test_sampling_one_is_caffes_loss_bit_for_bit_and_draws_nothing():
    score, label = loss_inputs()
    plain, _ = loss_net()
    sampled, generator = loss_net()
    ablations.configure_loss(sampled, sampling=1.0)
    state = generator.get_state()
    assert forward_backward(plain, score, label)[0] == forward_backward(sampled, score, label)[0]
    assert torch.equal(forward_backward(plain, score, label)[1], forward_backward(sampled, score, label)[1])
    assert torch.equal(generator.get_state(), state)


def test_sampling_half_keeps_about_half_the_unnormalised_loss():
    score, label = loss_inputs()
    whole = forward_backward(loss_net()[0], score, label)[0]
    net, _ = loss_net()
    ablations.configure_loss(net, sampling=0.5)
    half, grad = forward_backward(net, score, label)
    assert 0.45 < half / whole < 0.55
    # a dropped term has no gradient at all: about half the positions are zero in every class
    dropped = (grad.abs().sum(dim=1) == 0).float().mean().item()
    assert 0.45 < dropped < 0.6


def test_sampling_draws_from_the_nets_generator():
    score, label = loss_inputs()
    losses = []
    for seed in (7, 7, 8):
        net, _ = loss_net(seed)
        ablations.configure_loss(net, sampling=0.5)
        losses.append(forward_backward(net, score, label)[0])
    assert losses[0] == losses[1] != losses[2]


def test_class_weights_weight_each_term_and_its_gradient():
    score, label = loss_inputs()
    weights = [0.5, 2.0, 1.0, 0.0, 3.0]
    net, _ = loss_net()
    ablations.configure_loss(net, class_weights=weights)
    loss, grad = forward_backward(net, score, label)
    # the definition, in float64 autograd: Σ w[y] · −log softmax(score)[y] over non-ignored pixels
    s = score.detach().double().requires_grad_(True)
    y = label.long().reshape(-1)
    logp = torch.log_softmax(s, dim=1).permute(0, 2, 3, 1).reshape(-1, 5)
    keep = y != 255
    w = torch.tensor(weights, dtype=torch.float64)
    expected = -(w[y[keep]] * logp[keep].gather(1, y[keep, None]).squeeze(1)).sum()
    expected.backward()
    assert loss == pytest.approx(float(expected.detach()), rel=1e-5)
    torch.testing.assert_close(grad.double(), s.grad, rtol=1e-5, atol=1e-6)
    assert not grad[:, :, :5].any()            # ignored rows: no gradient
    class3 = (label[0, 0] == 3)
    assert not grad[0, :, class3].any()        # weight 0: no gradient


def test_bad_loss_options_are_one_clear_error(tmp_path):
    net, _ = loss_net()
    with pytest.raises(ValueError, match=r"layer 'loss' .*loss sampling probability must be in \(0, 1\]"):
        ablations.configure_loss(net, sampling=0.0)
    with pytest.raises(ValueError, match="class weights must be finite and non-negative"):
        ablations.configure_loss(net, class_weights=[1, -1, 1, 1, 1])
    bad = tmp_path / "w.txt"
    bad.write_text("1 2 x 4 5")
    with pytest.raises(ablations.AblationError, match=rf"{bad}: entry 3 \('x'\) is not a number"):
        ablations.read_class_weights(bad, 5)
    bad.write_text("[1, 2, 3]")
    with pytest.raises(ablations.AblationError, match="3 weights for a net of 5 classes"):
        ablations.read_class_weights(bad, 5)


def test_median_frequency_weights_follow_their_definition():
    labels = [np.array([[0, 0, 0, 1]]), np.array([[0, 2, 2, 255]])]
    result = ablations.median_frequency_weights(lambda i: labels[i], 2, 4, progress=False)
    # freq: class 0: 4 px / 7 px of its images; class 1: 1/4; class 2: 2/3; class 3 absent
    freq = [4 / 7, 1 / 4, 2 / 3]
    median = float(np.median(freq))
    assert result["weights"] == pytest.approx([median / f for f in freq] + [0.0])
    assert result["pixels"] == [4, 1, 2, 0]


# --------------------------------------------------------------------------- augmentation


def test_translate_moves_and_fills():
    a = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    moved = translate(a, 1, -2, fill=-1)
    assert moved.tolist() == [[[-1, -1, -1, -1], [2, 3, -1, -1], [6, 7, -1, -1]]]
    assert (translate(a, 3, 0, 0) == 0).all()


def test_augmentation_moves_image_and_label_alike_and_fills_void():
    aug = Augmentation(mirror=True, jitter=2, seed=5, tops=("data", "label"))
    image = np.random.default_rng(0).normal(size=(3, 6, 7)).astype(np.float32)
    label = np.arange(42, dtype=np.uint8).reshape(1, 6, 7)
    out_image, out_label = aug.apply((image, label), (True, 1, -2))
    assert out_label.dtype == np.uint8 and out_label.shape == label.shape
    assert (out_label[:, 0] == 255).all() and (out_label[:, :, -2:] == 255).all()
    assert (out_image[:, 0] == 0).all()
    np.testing.assert_array_equal(out_label[0, 1:, :5], label[0, :5, ::-1][:, 2:])
    np.testing.assert_array_equal(out_image[:, 1:, :5], image[:, :5, ::-1][:, :, 2:])
    draws = [aug.draw() for _ in range(50)]
    assert {d[0] for d in draws} == {True, False}
    assert {d[1] for d in draws} == {-2, -1, 0, 1, 2}


def test_augmentation_is_refused_on_a_test_split_and_checks_its_values():
    from reproduce.data import ParamStrError

    with pytest.raises(ParamStrError, match="only a training split is augmented"):
        Augmentation.from_params({"split": "seg11valid", "mirror": True}, "data", ("data", "label"))
    with pytest.raises(ParamStrError, match="'jitter' must be a number of pixels"):
        Augmentation.from_params({"split": "train", "jitter": 2.5}, "data", ("data", "label"))
    assert Augmentation.from_params({"split": "train"}, "data", ("data", "label")) is None


# --------------------------------------------------------------------------- stages


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from reproduce.data import make_synthetic_dataset

    return make_synthetic_dataset(tmp_path_factory.mktemp("ablation-data"), 4, 2, seed=3)


@pytest.fixture(scope="module")
def vgg_v1(golden) -> Path:
    return golden / "vgg16-v1" / "weights.caffemodel"


def options(data, runs: Path, model="fcn32s", init=None, **kw) -> StageOptions:
    defaults = dict(model=model, init=init, sbd_dir=data.sbdd_dir, voc_dir=data.voc_dir, runs=runs,
                    widths="tiny", device="cpu", max_iter=4, base_lr=1e-9, test_interval=2, snapshot=2,
                    display=1, progress=False, log=lambda line: None)
    defaults.update(kw)
    return StageOptions(**defaults)


def test_paper_recipe_writes_the_solver_and_nets_the_paper_describes(data, tmp_path):
    f32 = np.float32   # SolverParameter's float fields
    for model, lr, train_set, iters in (("fcn32s", 1e-4, "voc2011", 9730), ("fcn-alexnet", 1e-3, "sbd", 74358),
                                        ("fcn16s", 1e-6, "sbd", 74358), ("fcn8s", 1e-8, "sbd", 74358)):
        paths = write_prototxts(options(data, tmp_path / model, model=model, recipe="paper", max_iter=None,
                                        base_lr=None, train_set=train_set))
        solver = read_solver(paths["solver.prototxt"])
        assert (solver.base_lr, solver.momentum, solver.iter_size, solver.lr_policy, solver.weight_decay,
                solver.max_iter) == (f32(lr), f32(0.9), 20, "fixed", f32(5e-4), iters), model
        if model in ("fcn16s", "fcn8s"):
            continue
        train = read_net(paths["train.prototxt"])
        loss = next(l for l in train.layer if l.type == "SoftmaxWithLoss")
        assert loss.loss_param.normalize is True
        params = {l.name: [(p.lr_mult, p.decay_mult) for p in l.param] for l in train.layer}
        assert params["fc6"] == params["score_fr"] == [(1.0, 1.0), (2.0, 0.0)]
        assert params["upscore"] == [(0.0, 1.0)]   # the bilinear upsampling stays fixed
    fcn8s = read_net(write_prototxts(options(data, tmp_path / "8s", model="fcn8s", recipe="paper"))["train.prototxt"])
    deconv = {l.name: [(p.lr_mult, p.decay_mult) for p in l.param] for l in fcn8s.layer if l.type == "Deconvolution"}
    # Sec. 4.3: the intermediate upsampling learns, the final one stays bilinear
    assert deconv == {"upscore2": [(1.0, 1.0)], "upscore_pool4": [(1.0, 1.0)], "upscore8": [(0.0, 1.0)]}
    release = read_solver(write_prototxts(options(data, tmp_path / "r", max_iter=None,
                                                  base_lr=None))["solver.prototxt"])
    assert (release.base_lr, release.momentum, release.iter_size) == (np.float32(1e-10), np.float32(0.99), 1)


def test_learn_upsampling_learns_the_deconvolution(data, vgg_v1, tmp_path):
    result = run_stage(options(data, tmp_path, init=vgg_v1, learn_upsampling=True, max_iter=1,
                               base_lr=1e-4, snapshot=1, test_interval=1))
    train = read_net(result.run_dir / "train.prototxt")
    upscore = next(l for l in train.layer if l.name == "upscore")
    assert [(p.lr_mult, p.decay_mult) for p in upscore.param] == [(1.0, 1.0)]
    from reproduce.weights.surgery import upsample_filt

    kernel = load_weights(result.final)["upscore"][0]   # after one step from its bilinear init
    assert not np.array_equal(kernel[0, 0], upsample_filt(kernel.shape[-1]))
    assert json.loads((result.run_dir / "config.json").read_text())["learn_upsampling"] is True


def test_a_sampled_weighted_augmented_run_resumes_exactly_and_is_recorded(data, vgg_v1, tmp_path):
    kw = dict(init=vgg_v1, loss_sampling=0.5, class_weights="median-frequency", mirror=True,
              jitter=8, base_lr=1e-6)
    straight = run_stage(options(data, tmp_path / "straight", **kw))
    run_stage(options(data, tmp_path / "resumed", max_iter=2, **kw))
    resumed = run_stage(options(data, tmp_path / "resumed", **kw))
    assert resumed.resumed_from == 2
    a, b = load_weights(straight.final), load_weights(resumed.final)
    for layer in a:
        for x, y in zip(a[layer], b[layer]):
            np.testing.assert_array_equal(x, y, err_msg=layer)
    run_dir = straight.run_dir
    config = json.loads((run_dir / "config.json").read_text())
    assert {k: config[k] for k in ("loss_sampling", "mirror", "jitter", "class_weights")} == {
        "loss_sampling": 0.5, "mirror": True, "jitter": 8, "class_weights": "median-frequency"}
    solver = read_solver(run_dir / "solver.prototxt")
    assert solver.iter_size == 2                         # the batch grows by 1/p (Sec. 4.3)
    param_str = next(l for l in read_net(run_dir / "train.prototxt").layer if l.type == "Python").python_param.param_str
    assert "'mirror': True" in param_str and "'jitter': 8" in param_str
    val = next(l for l in read_net(run_dir / "val.prototxt").layer if l.type == "Python").python_param.param_str
    assert "mirror" not in val and "jitter" not in val
    weights = json.loads((run_dir / "class_weights.json").read_text())
    assert len(weights["weights"]) == 21 and weights["images"] == 4
    runs = [r for r in read_records(run_dir / "log.jsonl") if r["kind"] == "run"]
    assert runs and runs[0]["options"]["loss_sampling"] == 0.5 and runs[0]["iter_size"] == 2
    resumed_runs = [r for r in read_records(resumed.run_dir / "log.jsonl") if r["kind"] == "run"]
    assert [r["iter"] for r in resumed_runs] == [0, 2]
    # the sampled loss differs from the unsampled one on the same data and weights
    whole = run_stage(options(data, tmp_path / "whole", init=vgg_v1, mirror=True, jitter=8,
                              class_weights="median-frequency", base_lr=1e-6, max_iter=1,
                              snapshot=1, test_interval=1))
    first = lambda d: next(r for r in read_records(d / "log.jsonl") if r["kind"] == "train")["loss"]
    assert first(whole.run_dir) != first(run_dir)
    with pytest.raises(StageError, match=r"other settings \(loss_sampling: 0.5 → None\)"):
        run_stage(options(data, tmp_path / "resumed", **{**kw, "loss_sampling": 1.0}, max_iter=6))


@pytest.mark.parametrize("flags, message", [
    (["--loss-sampling", "0"], r"--loss-sampling must be a probability in \(0, 1\]"),
    (["--jitter", "-1"], "--jitter must be a number of pixels"),
    (["--class-weights", "nowhere.txt"], "--class-weights nowhere.txt: no such file"),
])
def test_bad_ablation_flags_are_one_line(flags, message, data, tmp_path, capsys):
    from reproduce.cli import main

    code = main(["stage", "fcn32s", "--init", str(tmp_path / "x.caffemodel"), "--sbd-dir", str(data.sbdd_dir),
                 "--voc-dir", str(data.voc_dir), "--runs", str(tmp_path), "--quiet", *flags])
    assert code != 0
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and __import__("re").search(message, err), err


def test_class_weights_are_refused_for_a_net_of_two_heads(tmp_path):
    opts = StageOptions(model="siftflow-fcn32s", runs=tmp_path, class_weights="median-frequency",
                        progress=False, log=lambda line: None)
    with pytest.raises(StageError, match="siftflow-fcn32s has 2 heads"):
        run_stage(opts)


def test_voc2011_train_set_trains_on_the_voc_segmentation_train_split(data, vgg_v1, tmp_path):
    import shutil

    voc = tmp_path / "VOC2011"
    shutil.copytree(data.voc_dir, voc)
    (voc / "ImageSets" / "Segmentation" / "train.txt").unlink()
    with pytest.raises(StageError, match=r"PASCAL VOC training data not found: .*train.txt does not exist"):
        run_stage(options(data, tmp_path / "runs", init=vgg_v1, voc_dir=voc, train_set="voc2011"))
    (voc / "ImageSets" / "Segmentation" / "train.txt").write_text("".join(i + "\n" for i in data.train_ids))
    result = run_stage(options(data, tmp_path / "runs", init=vgg_v1, voc_dir=voc, train_set="voc2011",
                               max_iter=1, snapshot=1, test_interval=1))
    layer = next(l for l in read_net(result.run_dir / "train.prototxt").layer if l.type == "Python")
    assert layer.python_param.layer == "VOCSegDataLayer"
    params = __import__("ast").literal_eval(layer.python_param.param_str)
    assert params["split"] == "train" and params["voc_dir"] == str(voc.resolve()) and params["seed"] == 1337
    assert json.loads((result.run_dir / "config.json").read_text())["train_set"] == "voc2011"
    with pytest.raises(StageError, match="only the PASCAL VOC nets choose their training set"):
        run_stage(StageOptions(model="siftflow-fcn32s", runs=tmp_path, train_set="voc2011",
                               progress=False, log=lambda line: None))


def test_iteration0_fcn_loss_is_about_half_with_sampling_half(data, vgg_v1, tmp_path):
    """On the tiny FCN-32s at its init (zero scores: every term is log 21), the same image."""
    from reproduce.data import make_data_source
    from reproduce.solver import SGDSolver
    from reproduce.training.stages import initialize

    opts = options(data, tmp_path, init=vgg_v1)
    solver = SGDSolver(write_prototxts(opts)["solver.prototxt"], device="cpu")
    initialize(solver, opts, log=lambda line: None)
    image, label = make_data_source("voc_layers", "VOCSegDataLayer",
                                    {"voc_dir": str(data.voc_dir), "split": "seg11valid", "seed": 1,
                                     "mean": (104.0, 117.0, 123.0)}).next()
    losses = {}
    for p in (1.0, 0.5):
        ablations.configure_loss(solver.net, sampling=p)
        losses[p] = float(solver.net(data=torch.from_numpy(image), label=torch.from_numpy(label))["loss"].detach())
    assert losses[1.0] == pytest.approx(float((label != 255).sum()) * np.log(21), rel=1e-4)
    assert 0.4 < losses[0.5] / losses[1.0] < 0.6


def test_train_command_takes_loss_sampling_and_class_weights(data, tmp_path, capsys):
    from reproduce.cli import main

    solver = write_prototxts(options(data, tmp_path / "run"))["solver.prototxt"]
    first = {}
    for name, flags in (("whole", []), ("half", ["--loss-sampling", "0.5"])):
        log = tmp_path / f"{name}.jsonl"
        assert main(["train", "--solver", str(solver), "--max-iter", "1", "--quiet",
                     "--log-jsonl", str(log), *flags]) == 0
        first[name] = next(r for r in read_records(log) if r.get("event") == "iteration")["loss"]
    assert 0.4 < first["half"] / first["whole"] < 0.6
    weights = tmp_path / "w.txt"
    weights.write_text("1 2 3")
    code = main(["train", "--solver", str(solver), "--max-iter", "1", "--quiet", "--class-weights", str(weights)])
    assert code != 0 and "3 weights for a net of 21 classes" in capsys.readouterr().err


def test_a_class_weights_file_is_kept_with_the_run_and_a_changed_one_refused(data, vgg_v1, tmp_path):
    weights = tmp_path / "weights.txt"
    weights.write_text(" ".join(["1"] * 20 + ["0.5"]))
    kw = dict(init=vgg_v1, class_weights=str(weights), base_lr=1e-6)
    result = run_stage(options(data, tmp_path / "runs", max_iter=2, **kw))
    kept = json.loads((result.run_dir / "class_weights.json").read_text())
    assert kept["method"] == "file" and kept["weights"] == [1.0] * 20 + [0.5]
    weights.write_text(" ".join(["2"] * 21))
    with pytest.raises(StageError, match=r"class weights file .* changed since this run started"):
        run_stage(options(data, tmp_path / "runs", **kw))

"""The staged pipeline (``reproduce.training.stages``): init surgery, prototxts, resume, records, errors.

The nets are the ``tiny``-width FCNs on a few generated images, so every stage runs in
seconds. Init is checked against the real Caffe: the FCN-32s init from the golden V1 VGG16
must equal what Caffe's surgery (transplant + interp) produced, parameter for parameter.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from reproduce.cli import main
from reproduce.weights.convert import load_weights, save_weights
from reproduce.training.stages import (STAGES, StageError, StageOptions, boundaries, initialize, point_data_layer,
                              run_stage, stage_solver, write_prototxts)
from reproduce.training.stagelog import StageLog, read_records
from reproduce.weights.surgery import upsample_filt

N_TRAIN, N_VAL = 4, 2


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from reproduce.data import make_synthetic_dataset

    return make_synthetic_dataset(tmp_path_factory.mktemp("stage-data"), N_TRAIN, N_VAL, seed=3)


@pytest.fixture(scope="module")
def vgg_v1(golden) -> Path:
    return golden / "vgg16-v1" / "weights.caffemodel"


def options(data, runs: Path, model="fcn32s", init=None, **kw) -> StageOptions:
    lines = kw.pop("lines", [])
    defaults = dict(model=model, init=init, sbd_dir=data.sbdd_dir, voc_dir=data.voc_dir, runs=runs,
                    widths="tiny", device="cpu", max_iter=4, base_lr=1e-9, test_interval=2, snapshot=2,
                    display=1, progress=False, log=lines.append)
    defaults.update(kw)
    return StageOptions(**defaults)


def built_solver(opts):
    from reproduce.solver import SGDSolver

    paths = write_prototxts(opts)
    return SGDSolver(paths["solver.prototxt"], device="cpu")


# --------------------------------------------------------------------------- init surgery


def test_fcn32s_init_equals_caffe_transplant_of_v1_vgg16(golden, data, vgg_v1, tmp_path):
    opts = options(data, tmp_path, init=vgg_v1)
    solver = built_solver(opts)
    lines = initialize(solver, opts, log=lambda line: None)
    expected_log = (golden / "vgg16-v1" / "transplant_log.txt").read_text().splitlines()
    assert lines == expected_log + ["interp upscore (bilinear)"]
    caffe = np.load(golden / "vgg16-v1" / "fcn32s-transplanted-params.npz")
    weights = solver.weights()
    compared = 0
    for key in caffe.files:
        _, layer, index = key.split("/")
        if layer == "score_fr":
            continue  # not transplanted: keeps the net's filler (zeros in both)
        np.testing.assert_array_equal(weights[layer][int(index)], caffe[key], err_msg=key)
        compared += 1
    assert compared == 31  # 13 conv + fc6 + fc7 (weight and bias each) + upscore (weight only)
    assert not np.any(weights["score_fr"][0]) and "fc8" not in weights


def test_fcn16s_init_copies_fcn32s_by_name_then_interp(golden, data, tmp_path):
    source_path = golden / "voc-fcn32s" / "weights.caffemodel"   # a tiny FCN-32s, as Caffe saved it
    source = load_weights(source_path)
    opts = options(data, tmp_path, model="fcn16s", init=source_path)
    solver = built_solver(opts)
    lines = initialize(solver, opts, log=lambda line: None)
    weights = solver.weights()
    for layer in ("conv1_1", "conv5_3", "fc6", "fc7", "score_fr"):
        for got, want in zip(weights[layer], source[layer]):
            np.testing.assert_array_equal(got, want, err_msg=layer)
    assert "ignoring source layer upscore" in lines           # 32s's x32 deconvolution has no place in 16s
    assert "keeping filler values of score_pool4 (not in the init weights)" in lines
    assert not np.any(weights["score_pool4"][0])              # the reference's zero-filled skip
    for layer in ("upscore2", "upscore16"):
        w = weights[layer][0]
        assert f"interp {layer} (bilinear)" in lines
        np.testing.assert_array_equal(w[range(21), range(21)], np.broadcast_to(upsample_filt(w.shape[-1]), (21,) + w.shape[2:]))
        off_diagonal = w.copy()
        off_diagonal[range(21), range(21)] = 0
        assert not off_diagonal.any()


def test_copy_from_refuses_a_shape_mismatch(golden, data, tmp_path):
    source = load_weights(golden / "voc-fcn32s" / "weights.caffemodel")
    source["fc7"] = [np.zeros((8, 32, 1, 1), np.float32), np.zeros(8, np.float32)]
    bad = save_weights(tmp_path / "bad32s.pth", source)
    opts = options(data, tmp_path, model="fcn16s", init=bad)
    with pytest.raises(StageError, match=r"cannot initialize fcn16s from .*bad32s\.pth.*fc7"):
        initialize(built_solver(opts), opts, log=lambda line: None)


def test_stage_table_matches_the_reference_scripts():
    assert {name: (s.init, s.previous or s.base_net) for name, s in STAGES.items()} == {
        "fcn32s": ("transplant", "vgg16"), "fcn16s": ("copy_from", "fcn32s"), "fcn8s": ("copy_from", "fcn16s"),
        "fcn8s-atonce": ("transplant", "vgg16"), "fcn-alexnet": ("transplant", "alexnet"),
        "fcn-googlenet": ("transplant", "googlenet"),
        "nyud-fcn32s-color": ("transplant", "vgg16"), "nyud-fcn32s-hha": ("transplant", "vgg16"),
        "nyud-fcn32s-color-d": ("transplant", "vgg16"), "nyud-fcn32s-color-hha": ("streams", None),
        "siftflow-fcn32s": ("transplant", "vgg16"), "siftflow-fcn16s": ("copy_from", "siftflow-fcn32s"),
        "siftflow-fcn8s": ("copy_from", "siftflow-fcn16s"),
        "pascalcontext-fcn32s": ("transplant", "vgg16"),
        "pascalcontext-fcn16s": ("copy_from", "pascalcontext-fcn32s"),
        "pascalcontext-fcn8s": ("copy_from", "pascalcontext-fcn16s")}
    assert dict(STAGES["nyud-fcn32s-color-hha"].previous_streams) == {
        "color": "nyud-fcn32s-color", "hha": "nyud-fcn32s-hha"}


def test_every_stage_has_its_make_target_running_it():
    import re

    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    for name, m in STAGES.items():
        match = re.search(rf"^{re.escape(m.make_target)}: .*## (.+)\n\t\$\(STAGE\) (\S+)(.*)$", makefile, re.M)
        assert match, f"no make target {m.make_target} for stage {name}"
        assert match.group(2) == name
        init = match.group(3)
        if m.init == "copy_from":
            assert f"$(RUNS)/{m.previous}/final.caffemodel" in init
        elif m.init == "transplant":
            assert {"vgg16": "$(VGG16)", "alexnet": "$(ALEXNET)", "googlenet": "$(GOOGLENET)"}[m.base_net] in init
        else:
            assert "--init" not in init


# --------------------------------------------------------------------------- prototxts


def test_written_prototxts_are_the_reference_ones_pointed_at_the_data(data, tmp_path):
    from reproduce.caffe import read_net, read_solver
    from reproduce.data import parse_param_str
    from reproduce.models import net_param

    opts = options(data, tmp_path, max_iter=7, base_lr=3e-9, display=5, seed=11)
    paths = write_prototxts(opts)
    train, val = read_net(paths["train.prototxt"]), read_net(paths["val.prototxt"])
    train_params = parse_param_str(train.layer[0].python_param.param_str)
    val_params = parse_param_str(val.layer[0].python_param.param_str)
    assert train_params == {"sbdd_dir": str(Path(data.sbdd_dir).resolve()), "seed": 1337, "split": "train",
                            "mean": (104.00699, 116.66877, 122.67892)}
    assert val_params["voc_dir"] == str(Path(data.voc_dir).resolve()) and val_params["split"] == "seg11valid"
    reference = net_param("fcn32s", "train", widths="tiny")
    assert [(l.name, l.type) for l in train.layer] == [(l.name, l.type) for l in reference.layer]
    solver = read_solver(paths["solver.prototxt"])
    assert (solver.base_lr, solver.max_iter, solver.momentum, solver.weight_decay, solver.iter_size) == \
        (pytest.approx(3e-9), 7, pytest.approx(0.99), pytest.approx(5e-4), 1)
    assert (solver.display, solver.random_seed, solver.train_net, list(solver.test_net)) == \
        (5, 11, "train.prototxt", ["val.prototxt"])
    assert stage_solver(options(data, tmp_path, model="fcn-alexnet", max_iter=None, base_lr=None)).iter_size == 20


def test_point_data_layer_offsets_the_seed_for_other_ranks(data):
    from reproduce.data import parse_param_str
    from reproduce.models import net_param

    net = point_data_layer(net_param("fcn8s", "train", widths="tiny"), data.sbdd_dir, seed_offset=2)
    assert parse_param_str(net.layer[0].python_param.param_str)["seed"] == 1339


def test_boundaries_put_tests_and_snapshots_where_solve_py_does():
    assert boundaries(0, 10, 4, 4) == [4, 8, 10]
    assert boundaries(4, 10, 4, 3) == [6, 8, 9, 10]
    assert boundaries(10, 10, 4, 4) == []
    assert boundaries(0, 100000, 4000, 4000)[:2] == [4000, 8000]


# --------------------------------------------------------------------------- running, resuming


def test_resume_continues_the_identical_trajectory(data, vgg_v1, tmp_path):
    straight = run_stage(options(data, tmp_path / "a", init=vgg_v1))
    assert straight.resumed_from is None
    first = run_stage(options(data, tmp_path / "b", init=vgg_v1, max_iter=2))
    assert first.iterations == 2
    resumed = run_stage(options(data, tmp_path / "b", init=vgg_v1))
    assert resumed.resumed_from == 2
    a, b = load_weights(straight.final), load_weights(resumed.final)
    assert all(np.array_equal(x, y) for layer in a for x, y in zip(a[layer], b[layer]))
    assert (tmp_path / "a/fcn32s/final.caffemodel").read_bytes() == (tmp_path / "b/fcn32s/final.caffemodel").read_bytes()
    # the records read as one run: every displayed iteration once, tests at 2 and 4
    for run in ("a", "b"):
        records = read_records(tmp_path / run / "fcn32s" / "log.jsonl")
        assert [r["iter"] for r in records if r["kind"] == "train"] == [0, 1, 2, 3]
        assert [r["iter"] for r in records if r["kind"] == "test"] == [2, 4]
    # every logged field of every train and test record is the same, wall-clock timings aside
    timing = {"it_per_s", "elapsed_s", "seconds", "time"}
    fields = lambda run: [{k: v for k, v in r.items() if k not in timing}
                          for r in read_records(tmp_path / run / "fcn32s/log.jsonl") if r["kind"] in ("train", "test")]
    assert fields("a") == fields("b")
    assert {"loss", "smoothed_loss", "lr"} <= set(fields("b")[0])
    done = json.loads((tmp_path / "b/fcn32s/done.json").read_text())
    assert done["iterations"] == 4 and done["resumed_from"] == 2 and done["last_test"]["iter"] == 4
    for name in ("train.prototxt", "val.prototxt", "solver.prototxt", "curve.png", "final.pth", "init.log",
                 "log.csv", "test.csv", "snapshot/train_iter_2.caffemodel", "snapshot/train_iter_4.solverstate.pt"):
        assert (tmp_path / "b/fcn32s" / name).is_file(), name


def test_a_finished_stage_says_so_and_exits_0(data, vgg_v1, tmp_path, capsys):
    args = ["stage", "fcn32s", "--init", str(vgg_v1), "--sbd-dir", str(data.sbdd_dir), "--voc-dir",
            str(data.voc_dir), "--runs", str(tmp_path), "--widths", "tiny", "--device", "cpu", "--max-iter", "2",
            "--test-interval", "2", "--snapshot", "2", "--base-lr", "1e-9", "--quiet"]
    assert main(args) == 0
    before = (tmp_path / "fcn32s" / "final.caffemodel").stat().st_mtime_ns
    capsys.readouterr()
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "already finished: 2 iterations" in out
    assert (tmp_path / "fcn32s" / "final.caffemodel").stat().st_mtime_ns == before


def test_a_second_stage_on_a_held_run_directory_is_refused_in_one_line(data, vgg_v1, tmp_path, capsys):
    from reproduce.training.lock import hold_run_dir

    args = ["stage", "fcn32s", "--init", str(vgg_v1), "--sbd-dir", str(data.sbdd_dir), "--voc-dir",
            str(data.voc_dir), "--runs", str(tmp_path), "--widths", "tiny", "--device", "cpu", "--max-iter", "2",
            "--test-interval", "2", "--snapshot", "2", "--base-lr", "1e-9", "--quiet"]
    with hold_run_dir(tmp_path / "fcn32s", what="stage fcn32s (the first)"):
        assert main(args) != 0
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "stage fcn32s (the first)" in err and "fcn32s" in err
        assert not (tmp_path / "fcn32s" / "config.json").exists()    # refused before touching anything
    assert main(args) == 0                                             # released: the stage runs
    assert (tmp_path / "fcn32s" / "final.caffemodel").is_file()


def test_resuming_with_other_settings_is_refused(data, vgg_v1, tmp_path):
    run_stage(options(data, tmp_path, init=vgg_v1, max_iter=2))
    with pytest.raises(StageError, match=r"other settings \(base_lr: 1e-09 → 2e-09\)"):
        run_stage(options(data, tmp_path, init=vgg_v1, max_iter=4, base_lr=2e-9))


def test_non_finite_loss_names_the_iteration_and_keeps_the_last_snapshot(data, vgg_v1, tmp_path):
    opts = options(data, tmp_path, init=vgg_v1, base_lr=10.0, max_iter=30, snapshot=1, test_interval=100)
    with pytest.raises(StageError) as info:
        run_stage(opts)
    message = str(info.value)
    assert "became" in message and "lower --base-lr" in message
    iteration = int(message.split("at iteration ")[1].split(";")[0])
    kept = tmp_path / "fcn32s" / "snapshot" / f"train_iter_{iteration}.solverstate.pt"
    assert f"the last good snapshot {kept} is kept" in message and kept.is_file()
    assert not (tmp_path / "fcn32s" / f"snapshot/train_iter_{iteration + 1}.caffemodel").exists()
    assert not (tmp_path / "fcn32s" / "done.json").exists() and not (tmp_path / "fcn32s" / "final.caffemodel").exists()


def test_log_truncate_keeps_what_the_resumed_snapshot_had(tmp_path):
    log = StageLog(tmp_path)
    for i in range(6):
        log.train(iter=i, loss=float(i), smoothed_loss=float(i), lr=0.1, it_per_s=1.0, elapsed_s=float(i))
        if i in (2, 4):
            log.test(iter=i, loss=1.0, overall_acc=0.5, mean_acc=0.5, mean_iu=0.25, fwavacc=0.4)
    with open(log.jsonl_path, "a") as f:
        f.write('{"kind": "train", "iter": 6, "lo')          # torn by a kill
    log.truncate(4)
    records = log.records()
    assert [(r["kind"], r["iter"]) for r in records] == [
        ("train", 0), ("train", 1), ("train", 2), ("test", 2), ("train", 3), ("test", 4)]
    assert (tmp_path / "log.csv").read_text().splitlines()[1:] == [
        f"{i},{float(i)!r},{float(i)!r},0.1,1.0,{float(i)!r}" for i in range(4)]
    assert len((tmp_path / "test.csv").read_text().splitlines()) == 3


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("case, expected", [
    ("no-sbd", r"SBD training data not found: {missing}/train\.txt does not exist .*`make demo`"),
    ("no-voc", r"PASCAL VOC validation data not found: {missing}/ImageSets/Segmentation/seg11valid\.txt"),
    ("no-32s", r"init weights {missing} not found: run `make stage-32s` first"),
    ("no-vgg", r"init weights {missing} not found: download VGG_ILSVRC_16_layers\.caffemodel from "
               r"http://www\.robots\.ox\.ac\.uk/.*weights/README\.md"),
])
def test_missing_inputs_give_one_line_naming_path_and_fix(case, expected, data, vgg_v1, tmp_path, capsys):
    import re

    missing = tmp_path / "missing"
    model, init, sbd, voc = "fcn32s", vgg_v1, data.sbdd_dir, data.voc_dir
    if case == "no-sbd":
        sbd = missing
    elif case == "no-voc":
        voc = missing
    elif case == "no-32s":
        model, init = "fcn16s", missing
    else:
        init = missing
    status = main(["stage", model, "--init", str(init), "--sbd-dir", str(sbd), "--voc-dir", str(voc),
                   "--runs", str(tmp_path / "runs"), "--widths", "tiny", "--device", "cpu", "--quiet"])
    err = capsys.readouterr().err
    assert status == 2
    assert len(err.strip().splitlines()) == 1, err
    assert re.search(expected.format(missing=re.escape(str(missing))), err), err
    assert not list((tmp_path / "runs" / model).glob("snapshot/*.caffemodel"))


@pytest.mark.parametrize("which", ["train", "val"])
def test_a_missing_image_is_reported_before_training(which, data, vgg_v1, tmp_path):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(Path(data.root), root)
    sbd, voc = root / "sbdd" / "dataset", root / "pascal" / "VOC2011"
    victim = (sbd / "img" / f"{data.train_ids[1]}.jpg") if which == "train" else (voc / "JPEGImages" / f"{data.val_ids[0]}.jpg")
    victim.unlink()
    opts = options(data, tmp_path / "runs", init=vgg_v1, sbd_dir=sbd, voc_dir=voc)
    with pytest.raises(StageError, match=("training data layer 'data'" if which == "train" else "validation data")
                       + f".*missing file {victim}"):
        run_stage(opts)
    assert not list((tmp_path / "runs" / "fcn32s").glob("snapshot/*.caffemodel"))


def test_fixed_fine_tunes_only_the_score_layers_and_is_part_of_the_config(data, vgg_v1, tmp_path):
    from reproduce.caffe import read_net

    opts = options(data, tmp_path / "init", init=vgg_v1, fixed=True)
    solver = built_solver(opts)
    initialize(solver, opts, log=lambda line: None)
    before = solver.weights()
    result = run_stage(options(data, tmp_path / "runs", init=vgg_v1, fixed=True, max_iter=2, base_lr=1e-6))
    after = load_weights(result.final)
    assert sorted(after) == sorted(before)
    for layer in after:
        moved = any(not np.array_equal(a, b) for a, b in zip(after[layer], before[layer]))
        assert moved == (layer == "score_fr"), layer   # only the score layer learns
    train = read_net(result.run_dir / "train.prototxt")
    frozen = {l.name: [p.lr_mult for p in l.param] for l in train.layer if l.type == "Convolution"}
    assert frozen["conv1_1"] == [0.0, 0.0] and frozen["fc7"] == [0.0, 0.0] and frozen["score_fr"] == [1.0, 2.0]
    assert json.loads((result.run_dir / "config.json").read_text())["fixed"] is True
    with pytest.raises(StageError, match=r"other settings \(fixed: True → None\)"):
        run_stage(options(data, tmp_path / "runs", init=vgg_v1, max_iter=4, base_lr=1e-6))

"""One stage of each dataset family of the release, end to end on generated data.

NYUDv2 (early fusion color + log depth from VGG16, and the late-fusion init from two
single-modality nets), SIFT Flow (two heads, both scored) and PASCAL-Context (59 classes +
background) — each at the golden fixtures' ``tiny`` widths for a few iterations, from the
tiny V1 VGG16 the real Caffe's surgery was checked on, in the data layouts the release's
data layers read (``reproduce.data.synthetic_layouts``).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from reproduce.data.synthetic_layouts import (make_synthetic_nyud, make_synthetic_pascalcontext,
                                              make_synthetic_siftflow)
from reproduce.training.stages import StageError, StageOptions, initialize, run_stage, write_prototxts


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("release-data")
    make_synthetic_nyud(root, 3, 2, seed=1)
    make_synthetic_siftflow(root, 3, 2, seed=2)
    make_synthetic_pascalcontext(root, 3, 2, seed=3)
    return root


@pytest.fixture(scope="module")
def vgg_v1(golden) -> Path:
    return golden / "vgg16-v1" / "weights.caffemodel"


def options(data_dir, runs, model, init=None, **kw) -> StageOptions:
    defaults = dict(model=model, init=init, data_dir=data_dir, runs=runs, widths="tiny", device="cpu",
                    max_iter=2, base_lr=1e-9, test_interval=2, snapshot=2, display=1, progress=False,
                    log=lambda line: None)
    defaults.update(kw)
    return StageOptions(**defaults)


def _tests(run_dir: Path) -> list[dict]:
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return [r for r in records if r.get("kind") == "test"]


def test_pascalcontext_stage_trains_and_scores_60_outputs(data_dir, vgg_v1, tmp_path):
    result = run_stage(options(data_dir, tmp_path, "pascalcontext-fcn32s", vgg_v1))
    assert result.iterations == 2 and result.final.is_file()
    (test,) = _tests(result.run_dir)
    assert test["iter"] == 2 and 0.0 <= test["overall_acc"] <= 1.0
    files = sorted(p.name for p in result.run_dir.glob("*.prototxt"))
    assert files == ["deploy.prototxt", "solver.prototxt", "train.prototxt", "val.prototxt"]
    from reproduce.caffe import read_net

    net = read_net(result.run_dir / "train.prototxt")
    params = net.layer[0].python_param.param_str
    assert str((data_dir / "pascal-context").resolve()) in params and str((data_dir / "pascal").resolve()) in params
    assert next(l for l in net.layer if l.name == "score_fr").convolution_param.num_output == 60


def test_siftflow_stage_scores_both_heads_by_the_papers_metrics(data_dir, vgg_v1, tmp_path):
    lines = []
    result = run_stage(options(data_dir, tmp_path, "siftflow-fcn32s", vgg_v1, log=lines.append))
    assert result.iterations == 2 and result.final.is_file()
    sem, geo = _tests(result.run_dir)
    assert (sem["head"], sem["metric"], geo["head"], geo["metric"]) == (
        "score_sem", "mean_iu_present", "score_geo", "overall_acc")
    assert 0.0 <= sem["mean_iu_present"] <= 1.0 and sem["mean_iu_present"] >= sem["mean_iu"]
    assert 0.0 <= geo["overall_acc"] <= 1.0 and "mean_iu_present" not in geo
    assert any("classes present" in line for line in lines)
    # the geometric head is scored against the geometric labels: recompute it independently
    from reproduce.data import make_data_source
    from reproduce.evaluation.evaluate import evaluate
    from reproduce.net import Net
    from reproduce.weights.convert import load_weights
    from reproduce.caffe import read_net

    val = read_net(result.run_dir / "test.prototxt")
    net = Net(val, weights=load_weights(result.final))
    layer = val.layer[0].python_param
    source = make_data_source(layer.module, layer.layer, layer.param_str, name=val.layer[0].name)
    again = evaluate(net, source, score_blob="score_geo", label_blob="geo", loss_blob="loss_geo", progress=False)
    assert again.overall_acc == pytest.approx(geo["overall_acc"]) and again.hist.shape == (3, 3)


def test_nyud_early_fusion_stage_feeds_color_and_depth_and_scores_40_classes(data_dir, vgg_v1, tmp_path):
    result = run_stage(options(data_dir, tmp_path, "nyud-fcn32s-color-d", vgg_v1))
    assert result.iterations == 2 and result.final.is_file()
    (test,) = _tests(result.run_dir)
    assert test["metric"] == "mean_iu" and 0.0 <= test["overall_acc"] <= 1.0
    from reproduce.caffe import read_net

    val = read_net(result.run_dir / "test.prototxt")
    assert list(val.layer[0].top) == ["color", "depth", "label"]


def test_nyud_late_fusion_transplants_each_stream(data_dir, tmp_path):
    from reproduce.models import net_param
    from reproduce.net import Net
    from reproduce.solver import SGDSolver
    from reproduce.weights.convert import save_weights

    runs = tmp_path / "runs"
    streams = {}
    for stream in ("color", "hha"):
        net = Net(net_param(f"nyud-fcn32s-{stream}", "deploy", widths="tiny"))
        weights = {name: [np.random.default_rng(len(stream)).normal(size=p.shape).astype(np.float32)
                          for p in params] for name, params in net.weights_dict().items()}
        streams[stream] = weights
        (runs / f"nyud-fcn32s-{stream}").mkdir(parents=True)
        save_weights(runs / f"nyud-fcn32s-{stream}" / "final.caffemodel", weights)
    opts = options(data_dir, runs, "nyud-fcn32s-color-hha")
    solver = SGDSolver(write_prototxts(opts)["solver.prototxt"], device="cpu")
    lines = initialize(solver, opts, log=lambda line: None)
    fused = solver.weights()
    for stream, weights in streams.items():
        for name in ("conv1_1", "fc7", "score_fr"):
            assert all(np.array_equal(a, b) for a, b in zip(fused[f"{name}{stream}"], weights[name]))
    assert "dropping upscore" in lines
    with pytest.raises(StageError, match="run `make stage-nyud-hha` first"):
        from reproduce.training.stages import check_inputs

        check_inputs(options(data_dir, tmp_path / "elsewhere", "nyud-fcn32s-color-hha",
                             stream_inits={"color": runs / "nyud-fcn32s-color" / "final.caffemodel"}))


def test_missing_dataset_names_the_file_and_the_fetch_command(tmp_path, vgg_v1):
    with pytest.raises(StageError, match=r"siftflow-fcn16s trainval data: .*sift-flow does not exist.*"
                                         r"`make data DATASETS=\"siftflow\""):
        run_stage(options(tmp_path / "nothing", tmp_path / "runs", "siftflow-fcn16s", vgg_v1))


def test_infer_refuses_non_rgb_nets_and_labels_by_the_first_head(tmp_path, capsys):
    from PIL import Image

    from reproduce.cli import main
    from reproduce.models import FCN
    from reproduce.weights.convert import save_weights

    Image.fromarray(np.full((20, 24, 3), 90, dtype=np.uint8)).save(tmp_path / "a.jpg")
    status = main(["infer", "--net", "nyud-fcn32s-color-hha", "--weights", str(tmp_path / "w.pth"),
                   str(tmp_path / "a.jpg"), "-o", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert status == 2 and "takes color, hha, not an RGB image" in err and len(err.strip().splitlines()) == 1
    net = FCN.from_model("siftflow-fcn32s", widths="tiny")
    weights = {name: [np.array(p) for p in params] for name, params in net.weights_dict().items()}
    weights["score_fr_sem"][1][:] = np.arange(33, dtype=np.float32)  # class 32 wins everywhere
    from reproduce.weights import surgery

    surgery.interp(weights, surgery.interp_layer_names(weights))
    save_weights(tmp_path / "sift.pth", weights)
    status = main(["infer", "--net", "siftflow-fcn32s", "--weights", str(tmp_path / "sift.pth"),
                   str(tmp_path / "a.jpg"), "-o", str(tmp_path / "out"), "--quiet", "--no-overlay"])
    assert status == 0
    with Image.open(tmp_path / "out" / "a.png") as label:
        assert np.unique(np.array(label)).tolist() == [32]


def test_verify_scores_each_head_of_a_trained_net_on_its_test_split(data_dir, vgg_v1, tmp_path):
    from reproduce.evaluation import verify as V

    runs = tmp_path / "runs"
    result = run_stage(options(data_dir, runs, "siftflow-fcn32s", vgg_v1))
    logged = {t["head"]: t for t in _tests(result.run_dir)}
    report = V.verify(voc_dir=tmp_path / "no-voc", runs_dir=runs, weights_dir=tmp_path / "weights",
                      data_dir=data_dir, stages=["siftflow-fcn32s", "pascalcontext-fcn32s"], progress=False)
    rows = {(r.stage, r.source, r.head): r for r in report.rows}
    sem, geo = rows["siftflow-fcn32s", "trained", "score_sem"], rows["siftflow-fcn32s", "trained", "score_geo"]
    assert (sem.status, sem.metric, geo.status, geo.metric) == ("MEASURED", "mean_iu_present", "MEASURED",
                                                                "overall_acc")
    # the same weights on the same split as the stage's own last seg_tests: the same numbers
    assert geo.result["overall_acc"] == pytest.approx(logged["score_geo"]["overall_acc"])
    assert sem.result["mean_iu_present"] == pytest.approx(logged["score_sem"]["mean_iu_present"])
    assert len(geo.result["hist"]) == 3 and len(sem.result["hist"]) == 33
    assert "none published for the heavy model" in sem.context
    official = rows["siftflow-fcn32s", "official", "score_sem"]
    assert official.status == "SKIPPED" and "weights --only siftflow-fcn32s" in official.command
    context = rows["pascalcontext-fcn32s", "trained", ""]
    assert context.status == "SKIPPED" and context.command.startswith("make stage-pascalcontext-32s DATA_DIR=")
    assert "CVPR 2015" in context.context and "Table 6" in context.context
    assert report.exit_status == 0
    table = V.format_table(report)
    assert "siftflow-fcn32s score_geo" in table and "MEASURED siftflow-fcn32s trained" in table


def test_verify_without_the_test_data_names_the_fetch_command(vgg_v1, tmp_path):
    from reproduce.evaluation import verify as V
    from reproduce.weights.convert import save_weights
    from reproduce.models import net_param
    from reproduce.net import Net

    run = tmp_path / "runs" / "nyud-fcn32s-color"
    run.mkdir(parents=True)
    save_weights(run / "final.caffemodel", Net(net_param("nyud-fcn32s-color", "deploy", widths="tiny")).weights_dict())
    report = V.verify(voc_dir=tmp_path / "no-voc", runs_dir=tmp_path / "runs", weights_dir=tmp_path,
                      data_dir=tmp_path / "empty", stages=["nyud-fcn32s-color"], sources=["trained"],
                      progress=False)
    (row,) = report.rows
    assert row.status == "SKIPPED" and row.reason.startswith("no test data:")
    assert row.command == f"python -m reproduce data fetch nyud --dir {tmp_path / 'empty'}"
    (unreleased,) = V.verify(voc_dir=tmp_path / "no-voc", runs_dir=tmp_path / "runs", weights_dir=tmp_path,
                             stages=["nyud-fcn32s-color-d"], sources=["official"], progress=False).rows
    assert unreleased.status == "SKIPPED"
    assert unreleased.command.startswith("none: the release never published nyud-fcn32s-color-d's weights; "
                                         "train it: make stage-nyud")

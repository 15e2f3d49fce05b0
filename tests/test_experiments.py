"""The paper's experiments (``reproduce.evaluation.experiments``): commands that run, rows that
``verify`` scores from their runs, and the Fig. 5 plot from their logs."""
from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

import pytest

from reproduce.evaluation import experiments as E
from reproduce.evaluation.verify import verify
from reproduce.models import MODELS
from reproduce.training.stages import StageOptions, run_stage


def stage_parser():
    from reproduce.commands import stage

    parser = argparse.ArgumentParser()
    stage.add_arguments(parser)
    return parser


def test_every_experiment_is_a_stage_command_that_parses():
    parser = stage_parser()
    keys = [e.key for e in E.EXPERIMENTS]
    assert len(set(keys)) == len(keys)
    for e in E.EXPERIMENTS:
        assert e.stage in MODELS, e.key
        command = e.command("runs", "weights").split("  (after")[0]
        words = shlex.split(command)
        assert words[:4] == ["python", "-m", "reproduce", "stage"]
        args = parser.parse_args(words[4:])
        assert args.model == e.stage and args.runs == Path("runs/paper") / e.key
        assert args.recipe == "paper"   # every experiment is in the paper's regime
        if e.init != "base":
            assert str(args.init) == str(E.experiment(e.init).run_dir("runs") / "final.caffemodel")
    assert {e.published for e in E.EXPERIMENTS if e.where == "Table 1"} >= {39.8, 56.0}
    assert [E.experiment(k).published for k in ("table2-fcn32s-fixed", "table2-fcn32s", "table2-fcn16s",
                                                 "table2-fcn8s")] == [45.4, 59.4, 62.4, 62.7]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from reproduce.data import make_synthetic_dataset

    return make_synthetic_dataset(tmp_path_factory.mktemp("paper-data"), 4, 2, seed=3)


def test_verify_scores_the_experiments_whose_runs_exist(data, golden, tmp_path):
    runs = tmp_path / "runs"
    for key in ("table2-fcn32s", "fig5-sampled-0.5"):
        e = E.experiment(key)
        opts = StageOptions(model=e.stage, init=golden / "vgg16-v1" / "weights.caffemodel",
                            sbd_dir=data.sbdd_dir, voc_dir=data.voc_dir, runs=e.runs(runs), widths="tiny",
                            device="cpu", max_iter=2, test_interval=2, snapshot=2, progress=False,
                            log=lambda line: None, recipe="paper",
                            loss_sampling=0.5 if "sampled" in key else 1.0)
        run_stage(opts)
    report = verify(voc_dir=data.voc_dir, runs_dir=runs, weights_dir=tmp_path / "weights", stages=(),
                    experiments=E.EXPERIMENTS, widths="tiny", progress=False)
    rows = {r.source: r for r in report.rows}
    assert set(rows) == {f"paper:{e.key}" for e in E.EXPERIMENTS}
    judged, measured = rows["paper:table2-fcn32s"], rows["paper:fig5-sampled-0.5"]
    # generated data are nothing like VOC: scored, and judged against Table 2's 59.4 (it fails)
    assert judged.result is not None and judged.status == "FAIL" and "CVPR 2015 Table 2" in judged.reason
    assert measured.result is not None and measured.status == "MEASURED"
    assert "Fig. 5" in measured.context
    skipped = rows["paper:table2-fcn16s"]
    assert skipped.status == "SKIPPED" and "runs/paper/table2-fcn32s/fcn32s/final.caffemodel" in skipped.command
    assert "paper/table2-fcn16s/fcn16s/final.pth absent" in skipped.reason
    # the table says which runs exist; Fig. 5 is drawn from the two logged ones
    table = E.format_table(runs)
    assert "| table2-fcn32s | CVPR 2015 Table 2 | FCN-32s | 59.4 mean IU | done |" in table
    assert "| table2-fcn8s |" in table and "absent |" in table
    png = E.fig5(runs, tmp_path / "fig5.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert E.fig5(tmp_path / "nothing", tmp_path / "none.png") is None


def test_paper_command_prints_every_experiment(tmp_path, capsys):
    from reproduce.cli import main

    assert main(["paper", "--runs", str(tmp_path), "--plot", str(tmp_path / "f.png")]) == 0
    out = capsys.readouterr().out
    for e in E.EXPERIMENTS:
        assert f"| {e.key} |" in out and f"  {e.key}: python -m reproduce stage {e.stage}" in out
    assert "Fig. 5: no run of" in out and not (tmp_path / "f.png").exists()


def test_the_readme_lists_every_experiment_and_option():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Reproducing the paper", 1)[1].split("\n## ", 1)[0]
    for e in E.EXPERIMENTS:
        assert e.key in section, e.key
        if e.published is not None:
            assert f"{e.published:.1f}" in section, e.key
    for flag in ("--recipe paper", "--train-set voc2011", "--fixed", "--loss-sampling", "--class-weights",
                 "--mirror", "--jitter", "--learn-upsampling"):
        assert flag in section, flag


@pytest.fixture(scope="module")
def tiny_inits(tmp_path_factory):
    """Per stage, a caffemodel of its own tiny deploy net with the fillers' weights: what the
    demo-scale runs start from (the surgery copies what matches by name)."""
    from reproduce.models import net_param
    from reproduce.net import Net
    from reproduce.weights.convert import save_weights

    folder = tmp_path_factory.mktemp("paper-inits")
    paths = {}
    for stage in sorted({e.stage for e in E.EXPERIMENTS}):
        deploy = net_param(stage, "deploy", widths="tiny")
        net = Net(deploy, phase="TEST")
        weights = {name: [p.detach().numpy() for p in blobs] for name, blobs in net.params.items()}
        paths[stage] = save_weights(folder / f"{stage}.caffemodel", weights, deploy)
    return paths


@pytest.mark.parametrize("key", [e.key for e in E.EXPERIMENTS])
def test_every_experiment_runs_at_demo_scale(key, data, tiny_inits, tmp_path):
    """The experiment's own flags, one iteration of a tiny net on generated data, recorded."""
    import ast

    from reproduce.caffe import read_solver
    from reproduce.cli import main
    from reproduce.training.stagelog import read_records

    e = E.experiment(key)
    runs = tmp_path / "runs"
    code = main(["stage", e.stage, *e.flags, "--init", str(tiny_inits[e.stage]),
                 "--sbd-dir", str(data.sbdd_dir), "--voc-dir", str(data.voc_dir), "--runs", str(runs),
                 "--widths", "tiny", "--device", "cpu", "--max-iter", "1", "--test-interval", "1",
                 "--snapshot", "1", "--quiet"])
    assert code == 0
    run_dir = runs / e.stage
    config = json.loads((run_dir / "config.json").read_text())
    assert config["recipe"] == "paper" and (run_dir / "final.caffemodel").is_file()
    expected = {"--fixed": "fixed", "--loss-sampling": "loss_sampling", "--class-weights": "class_weights",
                "--mirror": "mirror", "--jitter": "jitter", "--learn-upsampling": "learn_upsampling",
                "--train-set": "train_set"}
    for flag, key_ in expected.items():
        assert (key_ in config) == (flag in e.flags), (flag, config)
    run = next(r for r in read_records(run_dir / "log.jsonl") if r["kind"] == "run")
    assert run["options"] == {k: v for k, v in config.items() if k in (*expected.values(), "recipe")}
    assert read_solver(run_dir / "solver.prototxt").iter_size == round(20 / config.get("loss_sampling", 1.0))
    tests = [r for r in read_records(run_dir / "log.jsonl") if r["kind"] == "test"]
    assert tests and tests[-1]["iter"] == 1

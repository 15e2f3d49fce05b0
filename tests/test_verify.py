"""reproduce.evaluation.verify: which weights are found, how rows are judged, the table, the report, the exit status."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from reproduce.evaluation import verify as V
from reproduce.cli import main

from nonzero import randomize

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _env():
    return {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}


# -- nothing present ------------------------------------------------------------------------
def _check_all_skipped(stdout: str, runs: Path):
    lines = stdout.splitlines()
    rows = [line for line in lines if line.split()[-1:] == ["SKIPPED"]]
    from reproduce.evaluation.experiments import EXPERIMENTS

    # (6 VOC nets + 7 one-headed nets of the other datasets + 3 SIFT Flow nets × 2 heads) × 2 sources,
    # then one row per experiment of the paper
    expected = (6 + 7 + 3 * 2) * 2 + len(EXPERIMENTS)
    assert len(rows) == expected
    assert sum(line.split()[1].startswith("paper:") for line in rows) == len(EXPERIMENTS)
    assert "run: python -m reproduce stage fcn32s --recipe paper --fixed" in stdout
    assert any(line.startswith("fcn8s ") and "65.5 ±0.1" in line and "62.7" in line for line in rows)
    assert "run: make weights" in stdout
    assert "run: make stage-32s SBD_DIR=" in stdout and "VGG16=" in stdout
    assert "run: make stage-alexnet" in stdout and "ALEXNET=" in stdout
    assert "validation data: no VOC2011 at" in stdout
    assert "run: make stage-siftflow-32s DATA_DIR=data" in stdout
    assert any(line.startswith("siftflow-fcn8s score_geo ") for line in rows)
    # FCN-GoogLeNet (CVPR 2015 Table 1) was never released: train it
    assert ("SKIPPED fcn-googlenet official: no weights" in stdout
            and "run: none: the release never published fcn-googlenet's weights; train it: "
                "make stage-googlenet SBD_DIR=" in stdout and "GOOGLENET=" in stdout)
    assert f"{expected} SKIPPED → exit status 0" in stdout
    report = json.loads((runs / "verify.json").read_text())
    assert report["exit_status"] == 0 and report["summary"]["skipped"] == expected
    googlenet = [row for row in report["rows"] if row["stage"] == "fcn-googlenet"
                 and not row["source"].startswith("paper:")]
    assert [row["expectation"]["mean_iu"] for row in googlenet] == [None, None]   # nothing to judge by
    assert all("Table 1 FCN-GoogLeNet 42.5" in row["context"] for row in googlenet)
    assert {row["status"] for row in report["rows"]} == {"SKIPPED"}
    assert all(row["command"] for row in report["rows"])


def test_cli_with_nothing_present_prints_the_skipped_table(tmp_path):
    runs = tmp_path / "runs"
    proc = subprocess.run([sys.executable, "-m", "reproduce", "verify", "--voc-dir", str(tmp_path / "voc"),
                           "--runs", str(runs), "--weights-dir", str(tmp_path / "weights"), "--quiet"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, env=_env())
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    _check_all_skipped(proc.stdout, runs)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_verify_with_no_data(tmp_path):
    """The command `make verify` runs (read with `make -n`), run in an empty folder."""
    listing = subprocess.run(["make", "-n", "-o", ".venv/.installed", "-C", str(PROJECT_ROOT), "verify",
                              f"PY={sys.executable}", f"VOC_DIR={tmp_path / 'voc'}", f"RUNS={tmp_path / 'runs'}"],
                             capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0, listing.stderr
    command = [line for line in listing.stdout.splitlines() if "-m reproduce verify" in line]
    assert len(command) == 1, listing.stdout
    proc = subprocess.run(["bash", "-c", command[0]], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env=_env())
    assert proc.returncode == 0, proc.stderr
    _check_all_skipped(proc.stdout, tmp_path / "runs")


# -- finding weights ------------------------------------------------------------------------
def test_find_trained_prefers_final_then_the_latest_snapshot(tmp_path):
    run = tmp_path / "fcn16s"
    assert V.find_trained("fcn16s", tmp_path) == (None, "")
    (run / "snapshot").mkdir(parents=True)
    for n in (4000, 12000, 8000):
        (run / "snapshot" / f"train_iter_{n}.caffemodel").write_bytes(b"x")
    (run / "snapshot" / "train_iter_12000.solverstate.pt").write_bytes(b"x")
    (run / "snapshot" / "train_iter_99999.caffemodel.tmp").write_bytes(b"x")
    path, note = V.find_trained("fcn16s", tmp_path)
    assert path.name == "train_iter_12000.caffemodel" and "snapshot iter 12000" in note
    (run / "final.caffemodel").write_bytes(b"x")
    assert V.find_trained("fcn16s", tmp_path) == (run / "final.caffemodel", "final")
    (run / "final.pth").write_bytes(b"x")
    assert V.find_trained("fcn16s", tmp_path) == (run / "final.pth", "final")


def test_find_official_prefers_the_converted_file(tmp_path):
    assert V.find_official("fcn8s", tmp_path) is None
    (tmp_path / "fcn8s-heavy-pascal.caffemodel").write_bytes(b"x")
    assert V.find_official("fcn8s", tmp_path).name == "fcn8s-heavy-pascal.caffemodel"
    (tmp_path / "fcn8s-heavy-pascal.pth").write_bytes(b"x")
    assert V.find_official("fcn8s", tmp_path).name == "fcn8s-heavy-pascal.pth"


# -- judging --------------------------------------------------------------------------------
@pytest.mark.parametrize("source, measured, status", [
    ("official", 63.6, "PASS"), ("official", 63.69, "PASS"), ("official", 63.51, "PASS"),
    ("official", 63.75, "FAIL"), ("official", 63.4, "FAIL"),
    ("trained", 61.7, "PASS"), ("trained", 61.5, "FAIL"), ("trained", 65.5, "PASS"), ("trained", 65.7, "FAIL"),
    ("official", float("nan"), "FAIL"),
])
def test_tolerances(source, measured, status):
    exp = V.expectation("fcn32s", source, None, use_release=True)
    assert exp.mean_iu == 63.6 and exp.paper["mean_iu"] == 59.4
    assert exp.judge(measured)[0] == status


def test_no_published_number_means_measured_only():
    exp = V.expectation("fcn32s", "trained", None, use_release=False)
    assert exp.mean_iu is None and exp.paper is None and exp.judge(12.3) == ("MEASURED", None)


def test_published_json_is_validated(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"stages": {"fcn32s": {"mean_iu": 40, "tolerance_below": 5}}}))
    published = V.load_published(good)
    exp = V.expectation("fcn32s", "trained", published, use_release=False, published_origin="good.json")
    assert (exp.mean_iu, exp.below, exp.above, exp.origin) == (40.0, 5.0, V.TRAINED_ABOVE, "good.json")
    for text, match in (("{", "not valid JSON"), ('{"fcn32s": 3}', "expected"),
                        ('{"fcn32s": {"mean_iu": 3, "tolerance_below": -1}}', "non-negative")):
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        with pytest.raises(ValueError, match=match):
            V.load_published(bad)


# -- scoring what is present ----------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_tree(tmp_path_factory):
    """A synthetic VOC2011 (3 validation images) and tiny FCN-32s weights as a trained stage."""
    from reproduce.weights import surgery
    from reproduce.weights.convert import save_weights
    from reproduce.data import make_synthetic_dataset
    from reproduce.models import net_param
    from reproduce.net import Net

    root = tmp_path_factory.mktemp("demo")
    data = make_synthetic_dataset(root / "data", n_train=1, n_val=3, seed=1)
    net = randomize(Net(net_param("fcn32s", "deploy", widths="tiny")), seed=0, keep_fixed=True)
    weights = net.weights_dict()  # random (tests/nonzero.py): zeros would score one class
    surgery.interp(weights, [k for k in weights if "up" in k])
    save_weights(root / "runs" / "fcn32s" / "final.pth", weights)
    return root, data.voc_dir, weights


def test_demo_mode_measures_trained_stages(demo_tree, tmp_path, capsys):
    root, voc_dir, _ = demo_tree
    report_path = tmp_path / "report.json"
    status = main(["verify", "--demo", "--voc-dir", str(voc_dir), "--runs", str(root / "runs"),
                   "--weights-dir", str(tmp_path / "w"), "--report", str(report_path), "--quiet"])
    out = capsys.readouterr().out
    assert status == 0
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("fcn")}
    assert set(rows) == {"fcn32s", "fcn16s", "fcn8s"} and rows["fcn32s"].endswith("MEASURED")
    assert rows["fcn16s"].endswith("SKIPPED") and "official" not in out.split("split:")[0]
    report = json.loads(report_path.read_text())
    row = report["rows"][0]
    assert (row["stage"], row["source"], row["status"]) == ("fcn32s", "trained", "MEASURED")
    assert row["result"]["count"] == 3 and 0 <= row["result"]["mean_iu"] <= 1
    assert row["result"]["loss"] > 0  # the val net carries the loss
    assert len(row["result"]["per_class_iu"]) == 21
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # atomic write left nothing


def test_published_json_turns_measured_into_pass_or_fail(demo_tree, tmp_path, capsys):
    root, voc_dir, _ = demo_tree
    base = ["verify", "--demo", "--stages", "fcn32s", "--voc-dir", str(voc_dir), "--runs", str(root / "runs"),
            "--weights-dir", str(tmp_path / "w"), "--report", str(tmp_path / "r.json"), "--quiet"]
    assert main(base) == 0
    measured = json.loads((tmp_path / "r.json").read_text())["rows"][0]["result"]["mean_iu"] * 100
    capsys.readouterr()
    published = tmp_path / "published.json"
    published.write_text(json.dumps({"fcn32s": {"mean_iu": round(measured, 1)}}))
    assert main(base + ["--published-json", str(published)]) == 0
    assert capsys.readouterr().out.splitlines()[2].endswith("PASS")
    published.write_text(json.dumps({"fcn32s": {"mean_iu": measured + 2.5}}))
    assert main(base + ["--published-json", str(published)]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[2].endswith("FAIL") and "FAIL fcn32s trained: mean IU" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["exit_status"] == 1 and report["rows"][0]["delta"] == pytest.approx(-2.5, abs=1e-9)


def test_official_weights_are_judged_against_the_release(demo_tree, tmp_path):
    """Tiny random weights in the official slot score far below 63.6: FAIL, exit status 1."""
    from reproduce.weights.convert import save_weights

    root, voc_dir, weights = demo_tree
    save_weights(tmp_path / "w" / "fcn32s-heavy-pascal.pth", weights)
    report = V.verify(voc_dir=voc_dir, runs_dir=tmp_path / "no-runs", weights_dir=tmp_path / "w",
                      stages=["fcn32s"], progress=False)
    official, trained = report.rows
    assert (official.source, official.status) == ("official", "FAIL")
    assert official.delta == pytest.approx(official.result["mean_iu"] * 100 - 63.6)
    assert trained.status == "SKIPPED" and report.exit_status == 1
    table = V.format_table(report)
    assert "63.6 ±0.1" in table and "FAIL fcn32s official" in table


def test_limit_scores_a_prefix_without_judging(demo_tree, tmp_path):
    root, voc_dir, _ = demo_tree
    report = V.verify(voc_dir=voc_dir, runs_dir=root / "runs", weights_dir=tmp_path, stages=["fcn32s"],
                      sources=["trained"], limit=1, progress=False)
    row = report.rows[0]
    assert row.status == "MEASURED" and row.result["count"] == 1 and "partial: 1 of 3" in row.reason
    assert report.exit_status == 0


def test_unreadable_weights_are_an_error_row(demo_tree, tmp_path, capsys):
    root, voc_dir, _ = demo_tree
    runs = tmp_path / "runs"
    (runs / "fcn8s").mkdir(parents=True)
    (runs / "fcn8s" / "final.caffemodel").write_bytes(b"\x08\x96\x01 not a caffemodel")
    status = main(["verify", "--voc-dir", str(voc_dir), "--runs", str(runs), "--weights-dir", str(tmp_path),
                   "--stages", "fcn8s", "--quiet"])
    out = capsys.readouterr().out
    assert status == 1
    assert "ERROR fcn8s trained:" in out and "final.caffemodel" in out


def test_weights_present_but_data_absent_is_skipped_with_the_data_reason(demo_tree, tmp_path):
    root, _, _ = demo_tree
    report = V.verify(voc_dir=tmp_path / "no-voc", runs_dir=root / "runs", weights_dir=tmp_path,
                      stages=["fcn32s"], sources=["trained"], progress=False)
    row = report.rows[0]
    assert row.status == "SKIPPED" and row.weights and row.reason.startswith("no validation data: no VOC2011")
    assert report.exit_status == 0


def test_split_file_replaces_the_missing_split_list(demo_tree, tmp_path):
    root, voc_dir, _ = demo_tree
    dataset, problem = V.validation_set(voc_dir, "nosuchsplit")
    assert dataset is None and "nosuchsplit.txt" in problem and "--split-file" in problem
    split_file = tmp_path / "two.txt"
    ids = (voc_dir / "ImageSets" / "Segmentation" / "seg11valid.txt").read_text().split()
    split_file.write_text("\n".join(ids[:2]) + "\n")
    dataset, problem = V.validation_set(voc_dir, "nosuchsplit", split_file)
    assert problem == "" and list(dataset.ids) == ids[:2]
    split_file.write_text("missing_id\n")
    dataset, problem = V.validation_set(voc_dir, "x", split_file)
    assert dataset is None and "missing_id" in problem

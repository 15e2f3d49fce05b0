"""The demo pipeline end to end, shortened: what ``make demo`` runs, through the same CLI.

``demo prepare`` (a few generated images, a briefly pre-trained V1 classifier) → ``stage
fcn32s`` (transplanted from that V1 file) → ``stage fcn16s`` → ``stage fcn8s`` →
``verify --demo`` → ``demo report``. On the way, one FCN-32s run is SIGKILLed after its first
snapshot and re-run: it must resume and end bit-identical to the uninterrupted run.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reproduce.cli import main
from reproduce.training.stagelog import read_records

PROJECT = Path(__file__).resolve().parents[1]
ITERS_32S = 40


def stage_args(demo: Path, runs: Path, model: str, init: Path, iters: int) -> list[str]:
    return ["stage", model, "--init", str(init), "--sbd-dir", str(demo / "data/sbdd/dataset"),
            "--voc-dir", str(demo / "data/pascal/VOC2011"), "--runs", str(runs), "--widths", "tiny",
            "--device", "cpu", "--max-iter", str(iters), "--base-lr", "1e-8", "--test-interval", "20",
            "--snapshot", "4", "--display", "1", "--quiet"]


# Every FCN-32s run is a subprocess with the same environment: float sums in the convolution
# backward depend on the thread count, and bit-identical means the same machine settings.
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def run_cli(args: list[str]) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "reproduce", *args], cwd=PROJECT, env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def run_killed_after_first_snapshot(args: list[str], snapshot: Path, run_dir: Path) -> None:
    process = subprocess.Popen([sys.executable, "-m", "reproduce", *args], cwd=PROJECT, env=ENV,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not snapshot.exists():
            if process.poll() is not None:
                pytest.fail(f"the stage ended before its first snapshot: {process.stderr.read()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("no snapshot after 90 s")
            time.sleep(0.01)
        assert process.poll() is None, "the stage finished before it could be killed"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (run_dir / "done.json").exists() and not (run_dir / "final.caffemodel").exists()


def test_demo_pipeline_with_kill_and_resume(tmp_path, capsys):
    demo = tmp_path / "demo"
    assert main(["demo", "prepare", "--out", str(demo), "--n-train", "6", "--n-val", "3", "--sides", "64", "96",
                 "--pretrain-iters", "12", "--quiet"]) == 0
    classifier = demo / "vgg16-tiny-v1.caffemodel"
    prepared = json.loads((demo / "prepare.json").read_text())
    assert prepared["settings"]["sides"] == [64, 96] and len(prepared["val_ids"]) == 3
    from reproduce.caffe.weights import read_caffemodel

    legacy = read_caffemodel(classifier)
    assert legacy.has("layers") and not legacy.has("layer")          # the V1 format, as VGG16's file
    fc6 = next(layer for layer in legacy.layers if layer.name == "fc6")
    assert (fc6.type, fc6.blobs[0].num, fc6.blobs[0].channels) == ("INNER_PRODUCT", 1, 1)

    # --- an FCN-32s run killed after its first snapshot, then re-run to the end
    killed = tmp_path / "killed"
    args = stage_args(demo, killed, "fcn32s", classifier, ITERS_32S)
    run_killed_after_first_snapshot(args, killed / "fcn32s/snapshot/train_iter_4.solverstate.pt",
                                     killed / "fcn32s")
    assert "resuming from" in run_cli(args).stdout

    # --- the uninterrupted chain: 32s → 16s → 8s
    runs = demo / "runs"
    run_cli(stage_args(demo, runs, "fcn32s", classifier, ITERS_32S))
    assert main(stage_args(demo, runs, "fcn16s", runs / "fcn32s/final.caffemodel", 4)) == 0
    assert main(stage_args(demo, runs, "fcn8s", runs / "fcn16s/final.caffemodel", 4)) == 0

    assert (killed / "fcn32s/final.caffemodel").read_bytes() == (runs / "fcn32s/final.caffemodel").read_bytes()
    resumed_log = read_records(killed / "fcn32s/log.jsonl")
    assert [r["iter"] for r in resumed_log if r["kind"] == "train"] == list(range(ITERS_32S))
    assert [r["iter"] for r in resumed_log if r["kind"] == "test"] == [20, 40]
    scored = lambda records: [r["loss"] for r in records if r["kind"] in ("train", "test")]
    assert scored(resumed_log) == scored(read_records(runs / "fcn32s/log.jsonl"))

    # --- verify --demo and the report
    capsys.readouterr()
    assert main(["verify", "--voc-dir", str(demo / "data/pascal/VOC2011"), "--runs", str(runs),
                 "--weights-dir", str(tmp_path / "no-weights"), "--demo", "--quiet", "--device", "cpu"]) == 0
    verified = json.loads((runs / "verify.json").read_text())
    rows = {row["stage"]: row for row in verified["rows"]}
    assert set(rows) == {"fcn32s", "fcn16s", "fcn8s"}
    assert all(row["status"] == "MEASURED" and 0 <= row["result"]["mean_iu"] <= 1 for row in rows.values())
    logged = read_records(runs / "fcn8s/log.jsonl")[-1]
    assert logged["kind"] == "test" and logged["mean_iu"] == pytest.approx(rows["fcn8s"]["result"]["mean_iu"])

    assert main(["demo", "report", "--out", str(demo), "--images", "2"]) == 0
    out = capsys.readouterr().out
    assert "What the numbers show:" in out and "What they do not show:" in out and "all background" in out
    for name in ("predictions.png", "curves.png", "report.md", "report.json"):
        assert (demo / "report" / name).stat().st_size > 0, name
    numbers = json.loads((demo / "report/report.json").read_text())
    assert [s["stage"] for s in numbers["stages"]] == ["fcn32s", "fcn16s", "fcn8s"]
    assert numbers["stages"][2]["mean_iu"] == rows["fcn8s"]["result"]["mean_iu"]


def test_v1_writer_reproduces_a_legacy_caffemodel_byte_for_byte(golden, tmp_path):
    """The demo's classifier is written like VGG_ILSVRC_16_layers.caffemodel: checked on Caffe's own V1 file."""
    from reproduce.caffe import text, upgrade_net
    from reproduce.caffe.weights import read_weights
    from reproduce.weights.legacy_v1 import downgrade_net, write_v1_caffemodel

    folder = golden / "vgg16-v1"
    raw = text.read(folder / "deploy.prototxt", "NetParameter")
    v1 = downgrade_net(upgrade_net(raw.copy())[0])
    assert v1 == raw                                            # layers, enum types, blobs_lr, input_dim
    write_v1_caffemodel(tmp_path / "v1.caffemodel", read_weights(folder / "weights.caffemodel"), v1)
    assert (tmp_path / "v1.caffemodel").read_bytes() == (folder / "weights.caffemodel").read_bytes()

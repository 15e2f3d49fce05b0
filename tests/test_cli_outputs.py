"""Outputs that explain themselves, and a trained stage that runs with one flag.

``forward`` names what it prints (shape, min, max) and ``--top K`` lists a classifier's best
classes; ``stage`` writes ``deploy.prototxt`` beside ``train``/``val`` (and a TensorBoard event
file when the optional package is there); ``forward``/``infer``/``export --run runs/<stage>``
run the deploy net with the run's final weights and widths; ``convert`` refuses weights for
layers the prototxt lacks in one line.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from reproduce.cli import main
from reproduce.weights.convert import load_weights, save_weights


def classifier_net(folder: Path) -> Path:
    """A 1×4 input, ``fc`` InnerProduct to 3 classes and ``prob`` Softmax."""
    path = folder / "cls.prototxt"
    path.write_text('name: "c"\n'
                    'layer { name: "input" type: "Input" top: "data" input_param { shape { dim: 1 dim: 4 } } }\n'
                    'layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc" '
                    'inner_product_param { num_output: 3 } }\n'
                    'layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }\n')
    return path


@pytest.fixture
def classifier(tmp_path):
    prototxt = classifier_net(tmp_path)
    weight = np.array([[1, 0, 0, 0], [0, 2, 0, 0], [0, 0, 0, 3]], np.float32)
    torch.save({"fc.weight": torch.from_numpy(weight), "fc.bias": torch.zeros(3)}, tmp_path / "w.pth")
    np.savez(tmp_path / "x.npz", data=np.array([[1.0, 0.5, 9.0, 2.0]], np.float32))   # scores 1, 1, 6
    return prototxt, tmp_path / "w.pth", tmp_path / "x.npz"


def test_forward_names_shape_min_and_max(classifier, capsys):
    prototxt, weights, x = classifier
    assert main(["forward", "--prototxt", str(prototxt), "--weights", str(weights), "--input", str(x)]) == 0
    lines = capsys.readouterr().out.splitlines()
    expected = np.exp([1, 1, 6]) / np.exp([1, 1, 6]).sum()
    fields = lines[0].split()
    assert fields[:3] == ["prob", "shape", "1×3"] and fields[3] == "min" and fields[5] == "max"
    assert float(fields[4]) == pytest.approx(expected.min(), rel=1e-5)
    assert float(fields[6]) == pytest.approx(expected.max(), rel=1e-5)


def test_forward_top_k_lists_the_best_classes_with_their_names(classifier, capsys, tmp_path):
    prototxt, weights, x = classifier
    (tmp_path / "labels.txt").write_text("n01 cat\nn02 dog\nn03 bird\n")
    assert main(["forward", "--prototxt", str(prototxt), "--weights", str(weights), "--input", str(x),
                 "--top", "2", "--labels", str(tmp_path / "labels.txt")]) == 0
    out = capsys.readouterr().out.splitlines()
    at = out.index("prob item 0: top 2 of 3 classes")
    first, second = out[at + 1].split(), out[at + 2].split()
    assert first[:3] == ["1.", "class", "2"] and first[-2:] == ["n03", "bird"]
    assert second[:3] == ["2.", "class", "0"] and second[-2:] == ["n01", "cat"]   # ties: the lower class first
    assert float(first[4]) == pytest.approx(np.exp(6) / (2 * np.e + np.exp(6)), rel=1e-5)


def test_forward_top_on_a_dense_output_is_one_line(tmp_path, capsys):
    path = tmp_path / "conv.prototxt"
    path.write_text('name: "n"\nlayer { name: "input" type: "Input" top: "data" '
                    'input_param { shape { dim: 1 dim: 1 dim: 4 dim: 4 } } }\n'
                    'layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" '
                    'convolution_param { num_output: 2 kernel_size: 3 } }\n')
    np.savez(tmp_path / "x.npz", data=np.ones((1, 1, 4, 4), np.float32))
    assert main(["forward", "--prototxt", str(path), "--input", str(tmp_path / "x.npz"), "--top", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--top: no output" in err[0] and "conv 1×2×2×2" in err[0]


def test_convert_refuses_weights_for_layers_the_prototxt_lacks_in_one_line(tmp_path, capsys):
    prototxt = classifier_net(tmp_path)
    state = {"fc.weight": torch.ones(3, 4), "fc.bias": torch.ones(3)}
    for i in range(7):
        state[f"extra{i}.weight"] = torch.ones(2, 2)
    torch.save(state, tmp_path / "w.pth")
    out = tmp_path / "w.caffemodel"
    assert main(["convert", str(tmp_path / "w.pth"), "--prototxt", str(prototxt), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "w.pth: weights for 7 layer(s) that" in err[0] and "cls.prototxt lacks" in err[0]
    assert "extra0, extra1, extra2, extra3, …" in err[0] and "extra4" not in err[0]
    assert not out.exists()


# ----------------------------------------------------------------------------- a tiny stage run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, golden):
    """A finished tiny fcn32s stage (2 iterations), its final.pth then given random weights."""
    from reproduce.data import make_synthetic_dataset
    from reproduce.training.stages import StageOptions, run_stage

    root = tmp_path_factory.mktemp("run")
    data = make_synthetic_dataset(root / "data", 2, 1, seed=5)
    opts = StageOptions(model="fcn32s", init=golden / "vgg16-v1" / "weights.caffemodel", sbd_dir=data.sbdd_dir,
                        voc_dir=data.voc_dir, runs=root / "runs", widths="tiny", device="cpu", max_iter=2,
                        base_lr=1e-9, test_interval=2, snapshot=2, display=1, progress=False,
                        log=lambda line: None)
    result = run_stage(opts)
    rng = np.random.default_rng(0)
    weights = {name: [rng.normal(0, 0.1, b.shape).astype(np.float32) for b in blobs]
               for name, blobs in load_weights(result.final).items()}
    weights["upscore"] = load_weights(result.final)["upscore"]      # the bilinear kernel, as trained
    save_weights(result.run_dir / "final.pth", weights)
    return result.run_dir


def reference_score(run_dir: Path, data: np.ndarray) -> np.ndarray:
    from reproduce.models import net_param
    from reproduce.net import Net

    net = Net(net_param("fcn32s", "deploy", widths="tiny"), phase="test")
    net.copy_from(load_weights(run_dir / "final.pth"))
    with torch.no_grad():
        return net.forward(data=data)["score"].numpy()


def test_a_stage_run_folder_holds_its_deploy_net(run_dir):
    from reproduce.caffe import read_net
    from reproduce.models import net_param

    for name in ("train.prototxt", "val.prototxt", "solver.prototxt", "deploy.prototxt"):
        assert (run_dir / name).is_file(), name
    deploy = read_net(run_dir / "deploy.prototxt")
    reference = net_param("fcn32s", "deploy", widths="tiny")
    assert [(l.name, l.type) for l in deploy.layer] == [(l.name, l.type) for l in reference.layer]
    assert deploy.layer[-1].name == "score" and "Python" not in {l.type for l in deploy.layer}


def test_a_stage_writes_a_tensorboard_event_file(run_dir):
    pytest.importorskip("tensorboard", reason="the optional tensorboard extra is not installed")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = list(run_dir.glob("events.out.tfevents.*"))
    assert len(files) == 1, files
    events = EventAccumulator(str(run_dir))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/smoothed_loss", "train/lr", "test/mean_iu"} <= tags
    assert [e.step for e in events.Scalars("train/loss")] == [0, 1]
    assert [e.step for e in events.Scalars("test/mean_iu")] == [2]
    import json

    test_rows = [json.loads(l) for l in (run_dir / "log.jsonl").read_text().splitlines()]
    mean_iu = [r["mean_iu"] for r in test_rows if r["kind"] == "test"]
    assert events.Scalars("test/mean_iu")[0].value == pytest.approx(mean_iu[0])


def test_forward_run_uses_the_deploy_net_and_final_weights(run_dir, tmp_path, capsys):
    data = np.random.default_rng(1).normal(0, 50, (1, 3, 40, 56)).astype(np.float32)
    np.savez(tmp_path / "x.npz", data=data)
    assert main(["forward", "--run", str(run_dir), "--input", str(tmp_path / "x.npz"), "-o",
                 str(tmp_path / "y.npz"), "--device", "cpu"]) == 0
    assert capsys.readouterr().out.splitlines()[0].split()[:3] == ["score", "shape", "1×21×40×56"]
    score = np.load(tmp_path / "y.npz")["score"]
    assert score.std() > 0
    np.testing.assert_allclose(score, reference_score(run_dir, data), rtol=1e-5, atol=1e-6)


def test_infer_run_segments_with_the_runs_weights(run_dir, tmp_path, capsys):
    from PIL import Image

    image = (np.random.default_rng(2).random((40, 56, 3)) * 255).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "a.png")
    assert main(["infer", "--run", str(run_dir), str(tmp_path / "a.png"), "-o", str(tmp_path / "out"),
                 "--quiet", "--no-overlay"]) == 0
    label = np.array(Image.open(tmp_path / "out" / "a.png"))
    from reproduce.evaluation.infer import INFER_MEAN_BGR

    data = (image[:, :, ::-1].astype(np.float32) - np.array(INFER_MEAN_BGR, np.float32)).transpose(2, 0, 1)[None]
    np.testing.assert_array_equal(label, reference_score(run_dir, data)[0].argmax(0))


def test_export_run_writes_the_runs_net(run_dir, tmp_path, capsys):
    out = tmp_path / "net.pt2"
    assert main(["export", "--run", str(run_dir), "-o", str(out), "--device", "cpu"]) == 0
    program = torch.export.load(str(out)).module()
    data = np.random.default_rng(3).normal(0, 50, (1, 3, 48, 40)).astype(np.float32)
    with torch.no_grad():
        score = program(data=torch.from_numpy(data))["score"].numpy()
    np.testing.assert_allclose(score, reference_score(run_dir, data), rtol=1e-4, atol=1e-5)


def test_run_folder_errors_name_the_fix(run_dir, tmp_path, capsys):
    unfinished = tmp_path / "fcn32s"
    (unfinished / "snapshot").mkdir(parents=True)
    (unfinished / "config.json").write_text('{"model": "fcn32s", "widths": "tiny"}')
    (unfinished / "snapshot" / "train_iter_4.caffemodel").write_bytes(b"")
    np.savez(tmp_path / "x.npz", data=np.zeros((1, 3, 8, 8), np.float32))
    assert main(["forward", "--run", str(unfinished), "--input", str(tmp_path / "x.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has not finished" in err[0] and "train_iter_4.caffemodel" in err[0]
    assert main(["infer", "--run", str(tmp_path / "nope"), str(tmp_path / "x.npz"), "-o", str(tmp_path)]) == 2
    assert "no such run folder" in capsys.readouterr().err


def test_a_long_step_shows_that_it_is_alive_and_its_time(capsys):
    import time

    from reproduce.commands.common import phase

    with phase("tracing", after=0.0):
        time.sleep(0.3)
    with phase("quick", after=5.0):
        pass
    with phase("quiet", quiet=True, after=0.0):
        time.sleep(0.1)
    err = capsys.readouterr().err
    assert "tracing …" in err and "tracing … done in 0." in err
    assert "quick" not in err and "quiet" not in err


def test_without_tensorboard_a_stage_log_writes_no_event_file_and_does_not_fail(tmp_path, monkeypatch):
    import sys

    from reproduce.training import tensorboard
    from reproduce.training.stagelog import StageLog

    monkeypatch.setitem(sys.modules, "tensorboard", None)      # as if not installed
    tensorboard.available.cache_clear()
    try:
        log = StageLog(tmp_path)
        log.train(iter=0, loss=1.0, smoothed_loss=1.0, lr=0.1, it_per_s=1.0, elapsed_s=0.5)
        log.test(iter=1, loss=1.0, overall_acc=0.5, mean_acc=0.5, mean_iu=0.25, fwavacc=0.3)
        log.close()
    finally:
        tensorboard.available.cache_clear()
    assert not list(tmp_path.glob("events.out.tfevents.*"))
    assert (tmp_path / "log.csv").is_file() and (tmp_path / "test.csv").is_file()

"""A user's own dataset (``--dataset DIR``): the three layouts through data check → fcn32s → fcn16s →
fcn8s → verify → infer, every bad input named in one line, and ``--init`` from a trained FCN."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reproduce.cli import main
from reproduce.data.folder import default_split, describe_folder, read_classes
from reproduce.data.folder_check import check_folder
from reproduce.data.synthetic_folder import FOLDER_CLASSES, make_folder_dataset

K = 5
NAMES = [name for name, _ in FOLDER_CLASSES]


@pytest.fixture(scope="module")
def vgg_v1(golden) -> Path:
    return golden / "vgg16-v1" / "weights.caffemodel"


def stage(model: str, dataset: Path, runs: Path, init: Path, iters: int, *extra: str) -> None:
    """A stage at the release's learning rate, ``iters`` iterations of the tiny net."""
    assert main(["stage", model, "--dataset", str(dataset), "--init", str(init), "--runs", str(runs),
                 "--widths", "tiny", "--device", "cpu", "--max-iter", str(iters),
                 "--display", "1", "--quiet", *extra]) == 0


def test_release_datasets_are_described_with_their_nets_class_counts():
    from reproduce.data.description import RELEASE_DATASETS, release_description
    from reproduce.models import MODELS

    for m in MODELS.values():
        for index, head in enumerate(m.heads):
            description = release_description(m.dataset, index)
            assert description.num_classes == head.num_classes, (m.name, head.score)
            assert description.metric == head.metric, (m.name, head.score)
            assert len(description.palette()) == 768
    assert RELEASE_DATASETS["voc"].classes[15] == "person" and RELEASE_DATASETS["voc"].judged


@pytest.mark.parametrize("layout", ["folder", "voc-style", "colour"])
def test_own_dataset_end_to_end(layout, vgg_v1, tmp_path, capsys, monkeypatch):
    dataset = make_folder_dataset(tmp_path / "data", layout, n=10, n_val=1,
                                  seed={"folder": 0, "voc-style": 1, "colour": 2}[layout])
    runs = tmp_path / "runs"
    assert main(["data", "check", "--dataset", str(dataset)]) == 0
    out = capsys.readouterr().out
    assert f"{K} classes" in out and "no problems found" in out and "median-frequency weight" in out
    if layout != "folder":
        assert all(name in out for name in NAMES)

    iters = 6 if layout == "folder" else 1
    stage("fcn32s", dataset, runs, vgg_v1, iters, "--test-interval", "2" if layout == "folder" else "1")
    printed = capsys.readouterr().out
    assert "11.8 passes" not in printed   # --max-iter given: no default iterations printed
    if layout != "voc-style":   # no split lists: the seeded split is written to the runs folder
        assert (runs / "splits" / "val.txt").read_text().split() == default_split(
            [f"img{i:03d}" for i in range(10)])["val"]
    tests = [json.loads(line) for line in (runs / "fcn32s" / "log.jsonl").read_text().splitlines()]
    tests = [r for r in tests if r.get("kind") == "test"]
    if layout == "folder":   # the val loss decreases as the net learns (the scores start at zero)
        losses = [r["loss"] for r in tests]
        assert len(losses) == 3 and losses[0] > losses[1] > losses[2], losses
    from reproduce.weights.convert import load_weights

    weights = load_weights(runs / "fcn32s" / "final.caffemodel")
    assert weights["score_fr"][0].shape[0] == K and weights["upscore"][0].shape[:2] == (K, K)
    assert np.abs(weights["score_fr"][0]).max() > 0   # it trained

    if layout == "folder":   # the written nets run in pycaffe, their data layer a module on the path
        _pycaffe_forward(runs / "fcn32s" / "val.prototxt", runs / "fcn32s" / "final.caffemodel", monkeypatch)
    stage("fcn16s", dataset, runs, runs / "fcn32s" / "final.caffemodel", 1)
    stage("fcn8s", dataset, runs, runs / "fcn16s" / "final.caffemodel", 1)
    weights = load_weights(runs / "fcn8s" / "final.caffemodel")
    assert weights["score_pool3"][0].shape[0] == K and weights["upscore8"][0].shape[:2] == (K, K)
    capsys.readouterr()

    scored = ["fcn32s", "fcn16s", "fcn8s"] if layout == "folder" else ["fcn8s"]   # each a pass over val
    assert main(["verify", "--dataset", str(dataset), "--runs", str(runs), "--device", "cpu", "--quiet",
                 "--stages", *scored]) == 0
    report = capsys.readouterr().out
    for name in (NAMES if layout != "folder" else [f"class_{i}" for i in range(K)]):
        assert name in report
    assert "no PASS/FAIL" in report and "PASS " not in report and "FAIL " not in report
    for model in scored:
        assert (runs / model / "confusion_val.png").stat().st_size > 0
    rows = json.loads((runs / "verify_dataset.json").read_text())["rows"]
    assert [r["stage"] for r in rows] == scored
    assert all(len(r["hist"]) == K and r["status"] == "MEASURED" for r in rows)

    images = sorted((dataset / ("JPEGImages" if layout == "voc-style" else "images")).iterdir())[:1]
    out_dir = tmp_path / "out"
    assert main(["infer", "--net", "fcn8s", "--weights", str(runs / "fcn8s" / "final.caffemodel"),
                 "--dataset", str(dataset), *map(str, images), "-o", str(out_dir)]) == 0
    found = capsys.readouterr().out.split("(classes ", 1)[1].split(")")[0].split(", ")
    assert found and set(found) <= set(NAMES if layout != "folder" else [f"class_{i}" for i in range(K)])
    with Image.open(out_dir / f"{images[0].stem}.png") as label_map:
        assert label_map.mode == "P" and label_map.size == Image.open(images[0]).size
        palette = label_map.getpalette()[:3 * K]
    expected = [c for _, colour in FOLDER_CLASSES for c in colour] if layout == "colour" else None
    if expected is not None:
        assert palette == expected


def _pycaffe_forward(prototxt: Path, weights: Path, monkeypatch) -> None:
    """``caffe.Net(val.prototxt, weights, TEST).forward()`` the way Caffe would run it: the module
    ``folder_layers`` imported from the path, K-class scores the size of the image."""
    import sys

    import reproduce.data.caffe_layers as layers_dir   # noqa: F401 — a folder of modules
    import reproduce.pycaffe as caffe

    monkeypatch.setitem(sys.modules, "caffe", caffe)
    monkeypatch.syspath_prepend(str(Path(layers_dir.__path__[0])))
    monkeypatch.delitem(sys.modules, "folder_layers", raising=False)
    net = caffe.Net(str(prototxt), str(weights), caffe.TEST)
    net.forward()
    data, scores = net.blobs["data"].data, net.blobs["score"].data
    assert scores.shape == (1, K, *data.shape[2:]) and np.ptp(scores) > 0
    assert type(net.layers[0]).__module__ == "folder_layers"
    sys.modules.pop("folder_layers", None)


def test_init_from_a_21_class_fcn_keeps_the_trunk_and_remakes_the_scores(tmp_path):
    import torch

    from reproduce.models import net_param
    from reproduce.net import Net
    from reproduce.solver import SGDSolver
    from reproduce.training import own_data
    from reproduce.training.stages import StageOptions, initialize, write_prototxts
    from reproduce.weights.convert import save_weights

    dataset = make_folder_dataset(tmp_path / "data", "colour", n=6)
    deploy = net_param("fcn8s", "deploy", widths="tiny")
    generator = torch.Generator().manual_seed(0)
    source = {name: [(torch.randn(p.shape, generator=generator) * 0.1).numpy() for p in blobs]
              for name, blobs in Net(deploy, phase="TEST").params.items()}
    assert source["score_fr"][0].shape[0] == 21
    init = save_weights(tmp_path / "fcn8s-21.caffemodel", source, deploy)
    for model in ("fcn32s", "fcn8s"):
        lines = []
        opts = StageOptions(model=model, init=init, dataset=dataset, runs=tmp_path / "runs", widths="tiny",
                            device="cpu", progress=False, log=lines.append)
        own_data.resolve(opts, lines.append)
        solver = SGDSolver(write_prototxts(opts)["solver.prototxt"], device="cpu")
        initialize(solver, opts, lines.append)
        after = solver.weights()
        trunk = [name for name in after if not name.startswith(("score", "upscore"))]
        assert len(trunk) == 15
        for name in trunk:
            for got, want in zip(after[name], source[name]):
                assert np.array_equal(got, want), name
        scores = [name for name in after if name.startswith("score")]
        for name in scores:
            assert after[name][0].shape[0] == K and not np.any(after[name][0]), name
        for name in (n for n in after if n.startswith("upscore")):
            assert after[name][0].shape[:2] == (K, K) and after[name][0].max() > 0   # bilinear
        assert f"re-making score_fr for {K} classes (the init has 21): zero scores" in lines
        assert any(line.startswith("iterations: ") and "11.8 passes" in line for line in lines)


def _problems(root: Path, **kw) -> list[str]:
    report = check_folder(root, **kw)
    assert not report.ok
    return report.problems


def test_every_bad_input_is_one_line_naming_the_file(tmp_path, capsys):
    colour = make_folder_dataset(tmp_path / "colour", "colour", n=8)
    labels = colour / "labels"
    rgb = np.array(Image.open(labels / "img000.png"))
    rgb[3, 4] = (1, 2, 3)
    Image.fromarray(rgb).save(labels / "img000.png")                     # unknown colour
    (labels / "img001.png").unlink()                                     # missing mask
    (colour / "images" / "img003.jpg").write_bytes(b"not a jpeg")        # unreadable image
    Image.fromarray(np.zeros((5, 7, 3), np.uint8)).save(labels / "img004.png")   # size mismatch
    problems = _problems(colour)
    assert len(problems) == 4, problems
    assert any(str(labels / "img000.png") in p and "unknown colour (1, 2, 3) at x=4 y=3" in p for p in problems)
    assert any(str(labels / "img001.png") in p and "mask missing" in p for p in problems)
    assert any(str(colour / "images" / "img003.jpg") in p and "unreadable image" in p for p in problems)
    assert any(str(labels / "img004.png") in p and "5×7" in p for p in problems)

    voc = make_folder_dataset(tmp_path / "voc", "voc-style", n=8)
    label = np.array(Image.open(voc / "SegmentationClass" / "img005.png"))
    label[0, 0] = 9
    Image.fromarray(label, "L").save(voc / "SegmentationClass" / "img005.png")   # label ≥ K
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("ghost\n")      # id without files
    problems = _problems(voc)
    assert len(problems) == 2, problems
    assert any("img005.png: label 9 ≥ 5 classes" in p for p in problems)
    assert any("val.txt: id 'ghost' has no files" in p for p in problems)
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("")            # empty split
    assert any("val.txt: the val split is empty" in p for p in _problems(voc))

    # the command: the lines on stderr, exit status 1
    capsys.readouterr()
    assert main(["data", "check", "--dataset", str(colour)]) == 1
    assert capsys.readouterr().err.count("problem: ") == 4


def test_classes_txt_and_the_default_split(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("road 128 64 128\nsky 70 130 180\n")
    assert read_classes(path) == (("road", "sky"), ((128, 64, 128), (70, 130, 180)))
    path.write_text("road 128 64 128\nsky\n")
    with pytest.raises(ValueError, match="'sky' has no colour"):
        read_classes(path)
    path.write_text("traffic light\nsky\n")
    assert read_classes(path) == (("traffic light", "sky"), None)
    split = default_split([f"id{i}" for i in range(25)])
    assert len(split["val"]) == 2 and len(split["train"]) == 23
    assert split == default_split([f"id{i}" for i in reversed(range(25))])   # order-independent
    assert default_split(["only", "two"])["val"] and default_split(["a"] * 1)["val"] == []

    dataset = make_folder_dataset(tmp_path / "data", "folder", n=4)
    assert describe_folder(dataset).classes == tuple(f"class_{i}" for i in range(K))
    assert describe_folder(dataset, num_classes=7).num_classes == 7
    label = np.array(Image.open(dataset / "labels" / "img000.png"))
    label[:2] = 7
    Image.fromarray(label, "L").save(dataset / "labels" / "img000.png")
    assert describe_folder(dataset, ignore_label=7).num_classes == K   # the ignore label is no class
    from reproduce.data.folder import read_label

    mapped = read_label(dataset / "labels" / "img000.png", ignore_label=7)   # to the nets' 255
    assert (mapped[:2] == 255).all() and mapped[2:].max() < K


def test_stage_refuses_nets_of_other_datasets_and_names_the_problem(tmp_path, vgg_v1, capsys):
    dataset = make_folder_dataset(tmp_path / "data", "folder", n=4)
    common = ["--dataset", str(dataset), "--init", str(vgg_v1), "--runs", str(tmp_path / "runs"),
              "--widths", "tiny", "--device", "cpu", "--quiet"]
    assert main(["stage", "nyud-fcn32s-color", *common]) != 0
    assert "nyud-fcn32s-color is not one of the VOC nets" in capsys.readouterr().err
    (dataset / "labels" / "img002.png").unlink()
    assert main(["stage", "fcn32s", *common]) != 0
    err = capsys.readouterr().err
    assert "img002.png" in err and "data check --dataset" in err and len(err.strip().splitlines()) == 1


def test_release_class_names_are_the_release_files(upstream):
    """The other datasets' descriptions name their classes as the release's class files do."""
    import re

    from reproduce.data.description import (NYUD_CLASSES, PASCALCONTEXT_CLASSES, SIFTFLOW_CLASSES,
                                            SIFTFLOW_GEOMETRIC_CLASSES)

    data = upstream / "data"
    nyud = [line.strip() for line in (data / "nyud" / "classes.txt").read_text().splitlines()
            if line.strip() and not line.startswith("and 0 is void")]
    assert list(NYUD_CLASSES) == nyud
    numbered = [re.match(r"^(\d\d) (.+)$", line.strip()) for line in
                (data / "sift-flow" / "classes.txt").read_text().splitlines()]
    names = [m.group(2) for m in numbered if m]
    assert list(SIFTFLOW_CLASSES) + list(SIFTFLOW_GEOMETRIC_CLASSES) == names
    context = [line.split(":", 1)[1].strip() for line in
               (data / "pascal-context" / "classes-59.txt").read_text().splitlines() if ":" in line]
    assert list(PASCALCONTEXT_CLASSES) == context


def test_ignore_label_on_colour_masks_is_a_classes_txt_line(tmp_path, capsys):
    """``--ignore-label N`` on colour-coded masks: the colour of classes.txt's line N (from 0) is
    label N, so its pixels become 255 — the same in data check, the stage's data layer and verify."""
    from reproduce.data import make_data_source
    from reproduce.data.folder import DATA_LAYER, data_layer_params, read_label

    dataset = make_folder_dataset(tmp_path / "colour", "colour", n=6, n_val=1)
    path = dataset / "labels" / "img000.png"
    colours = tuple(c for _, c in FOLDER_CLASSES)
    plain = read_label(path, colours)
    assert (plain != 255).all() and set(np.unique(plain).tolist()) >= {0}
    ignored = read_label(path, colours, ignore_label=0)            # "background 0 0 0" is line 0
    assert np.array_equal(ignored == 255, plain == 0) and np.array_equal(ignored[plain != 0], plain[plain != 0])
    assert np.array_equal(read_label(path, colours, ignore_label=9), plain)   # no such line: nothing ignored

    report = check_folder(dataset, ignore_label=0)                # data check: background not counted
    assert report.ok and report.pixels["train"][0] == 0 and report.pixels["train"][1:].sum() > 0
    assert check_folder(dataset).pixels["train"][0] > 0
    assert main(["data", "check", "--dataset", str(dataset), "--ignore-label", "0"]) == 0
    out = capsys.readouterr().out
    assert "ignore label 0" in out and "never in the training labels: background" in out

    description = describe_folder(dataset, ignore_label=0, split_dir=tmp_path / "splits")
    assert description.num_classes == K                            # the line still counts in K
    source = make_data_source(*DATA_LAYER, data_layer_params(description, "val"))   # stage, verify
    sample_id = source.dataset.ids[0]
    _, label = source.dataset[0]
    expected = read_label(dataset / "labels" / f"{sample_id}.png", colours, ignore_label=0)
    assert np.array_equal(label[0], expected) and (label == 255).any()

"""One description per dataset: ``stage`` and ``data check`` ask the release datasets' descriptions
(``reproduce.data.description``, ``reproduce.data.stage_data``) as they ask a user's folder's."""
from __future__ import annotations

import dataclasses
from functools import partial
from pathlib import Path

import pytest

from reproduce.data import description as D
from reproduce.data.stage_data import DataUnavailable, ReleaseStageData
from reproduce.models import MODELS
from reproduce.models.build import data_directories
from reproduce.training.stages import StageError, StageOptions, check_inputs, stage_config


def test_every_stage_reads_its_release_dataset_through_its_description(tmp_path):
    for name, m in MODELS.items():
        opts = StageOptions(model=name, data_dir=tmp_path / "data", runs=tmp_path / "runs")
        data = opts.data
        assert isinstance(data, ReleaseStageData) and data.description is D.RELEASE_DATASETS[m.dataset]
        assert data.directories(opts) == data_directories(name, tmp_path / "data"), name
        assert data.test_iter(opts) is None   # the release solver's own test_iter


def test_the_vocs_folder_options_are_the_descriptions_overrides(tmp_path):
    opts = StageOptions(model="fcn32s", data_dir=tmp_path / "data", sbd_dir=tmp_path / "sbd")
    dirs = opts.data.directories(opts)
    assert dirs["sbdd_dir"] == (tmp_path / "sbd").resolve()
    assert dirs["voc_dir"] == (tmp_path / "data" / "pascal" / "VOC2011").resolve()
    config = stage_config(opts, 1)
    assert config["sbd_dir"] == str((tmp_path / "sbd").resolve()) and "data_dirs" not in config
    nyud = StageOptions(model="nyud-fcn32s-hha", data_dir=tmp_path / "data")
    assert stage_config(nyud, 1)["data_dirs"] == {"nyud_dir": str((tmp_path / "data" / "nyud").resolve())}


def test_the_stage_asks_the_description_not_the_dataset_name(tmp_path, monkeypatch):
    # missing data: the description's fetch names make the command that gets them
    opts = StageOptions(model="siftflow-fcn32s", data_dir=tmp_path / "data", init=tmp_path / "w.caffemodel")
    with pytest.raises(StageError, match='make data DATASETS="siftflow" DATA_DIR='):
        check_inputs(opts)
    # a description whose reader checks otherwise: the stage does what it says
    seen = []

    def check_dirs(dirs, options):
        seen.append(sorted(dirs))
        raise DataUnavailable("checked by the description")

    changed = dataclasses.replace(D.RELEASE_DATASETS["siftflow"],
                                  reader=partial(ReleaseStageData, check_dirs=check_dirs))
    monkeypatch.setitem(D.RELEASE_DATASETS, "siftflow", changed)
    with pytest.raises(StageError, match="^checked by the description$"):
        check_inputs(opts)
    assert seen == [["siftflow_dir"]]


def test_fetch_names_of_the_descriptions():
    from reproduce.data import fetch

    known = set(fetch.datasets())
    for description in D.RELEASE_DATASETS.values():
        assert description.fetch and set(description.fetch) <= known, description.name
    assert D.fetch_names(["voc", "nyud", "sbd"]) == ["sbd", "voc2011", "nyud"]
    assert D.fetch_names(["siftflow", "siftflow-geo"]) == ["siftflow"]
    # `data check` without names: every description's archives, which are every archive of the release
    assert D.fetch_names(D.RELEASE_DATASETS) == list(fetch.datasets())


def test_data_check_takes_a_description_name(tmp_path, capsys):
    from reproduce.cli import main

    assert main(["data", "check", "voc", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "sbd: get it with" in err and "voc2011: get it with" in err and "nyud" not in err


def test_a_folder_is_read_through_its_description(tmp_path):
    from reproduce.data.folder import FolderStageData
    from reproduce.data.synthetic_folder import make_folder_dataset

    dataset = make_folder_dataset(tmp_path / "data", "voc-style", n=6, n_val=2)
    opts = StageOptions(model="fcn32s", dataset=dataset, runs=tmp_path / "runs", log=lambda line: None)
    data = opts.data
    assert isinstance(data, FolderStageData)
    assert data.directories(opts) == {"dataset_dir": Path(dataset).resolve()}
    assert data.test_iter(opts) == 2   # the whole val split
    assert stage_config(opts, 1)["dataset"] == str(Path(dataset).resolve())
    data.check(opts)
    (dataset / "SegmentationClass" / "img001.png").unlink()
    with pytest.raises(DataUnavailable, match="img001.png"):
        data.check(opts)


def test_infer_subtracts_the_mean_its_dataset_description_gives():
    import argparse

    from reproduce.commands.infer import _preprocessing
    from reproduce.data.siftflow import SIFTFLOW_MEAN_BGR
    from reproduce.evaluation.infer import INFER_MEAN_BGR

    voc = _preprocessing(argparse.Namespace(prototxt=None, net="fcn8s"))
    assert voc == (INFER_MEAN_BGR, "score")   # the release's infer.py, not the data layer's digits
    assert D.RELEASE_DATASETS["voc"].mean_bgr != INFER_MEAN_BGR
    sift = _preprocessing(argparse.Namespace(prototxt=None, net="siftflow-fcn8s"))
    assert sift == (tuple(float(v) for v in SIFTFLOW_MEAN_BGR), "score_sem")


# -- verify asks the description ------------------------------------------------------------
class _AskedValidation:
    """A description's ``validation``: what verify asks, recorded, answered its own way."""

    def __init__(self, description, dataset=None, asked=None):
        self.description, self.dataset, self.asked = description, dataset, asked if asked is not None else []

    def validation_set(self, stage, where):
        self.asked.append(("validation_set", stage))
        return (self.dataset, "") if self.dataset is not None else (None, "not read here")

    def missing(self, stage, problem, where):
        return f"no data by the description: {problem}", f"get {stage}'s data the description's way"

    def stage_command(self, stage, where):
        return f"train {stage} the description's way in {where.runs_dir}"


def test_verify_asks_the_description_for_the_validation_set_and_the_commands(tmp_path, monkeypatch):
    from reproduce.evaluation import verify as V

    asked = []
    changed = dataclasses.replace(D.RELEASE_DATASETS["siftflow"],
                                  validation=partial(_AskedValidation, asked=asked))
    monkeypatch.setitem(D.RELEASE_DATASETS, "siftflow", changed)
    runs = tmp_path / "runs"
    (runs / "siftflow-fcn32s").mkdir(parents=True)
    (runs / "siftflow-fcn32s" / "final.pth").write_bytes(b"weights")
    report = V.verify(voc_dir=tmp_path / "no-voc", runs_dir=runs, weights_dir=tmp_path / "w",
                      data_dir=tmp_path / "data", stages=["siftflow-fcn32s", "siftflow-fcn8s"],
                      sources=["trained"], progress=False)
    present = [r for r in report.rows if r.stage == "siftflow-fcn32s"]
    assert [r.head for r in present] == ["score_sem", "score_geo"]   # the nets' heads, MEASURED rows
    assert all(r.status == "SKIPPED" and r.reason == "no data by the description: not read here"
               and r.command == "get siftflow-fcn32s's data the description's way" for r in present)
    absent = [r for r in report.rows if r.stage == "siftflow-fcn8s"]
    assert absent and all(r.command == f"train siftflow-fcn8s the description's way in {runs}" for r in absent)
    assert ("validation_set", "siftflow-fcn32s") in asked and ("validation_set", "siftflow-fcn8s") not in asked
    assert report.data_problem == ""   # nothing judged: no split to report up front
    assert V.stage_command("siftflow-fcn8s", "voc", runs, "w") == f"train siftflow-fcn8s the description's way in {runs}"


@pytest.fixture(scope="module")
def tiny_voc(tmp_path_factory):
    """A synthetic VOC2011 (3 validation images) and tiny random FCN-32s weights as a trained stage."""
    from nonzero import randomize

    from reproduce.data import make_synthetic_dataset
    from reproduce.data.validation import voc_validation_set
    from reproduce.models import net_param
    from reproduce.net import Net
    from reproduce.weights import surgery
    from reproduce.weights.convert import save_weights

    root = tmp_path_factory.mktemp("voc")
    data = make_synthetic_dataset(root / "data", n_train=1, n_val=3, seed=1)
    net = randomize(Net(net_param("fcn32s", "deploy", widths="tiny")), seed=0, keep_fixed=True)
    weights = net.weights_dict()
    surgery.interp(weights, [k for k in weights if "up" in k])
    save_weights(root / "runs" / "fcn32s" / "final.pth", weights)
    dataset, problem = voc_validation_set(data.voc_dir)
    assert problem == ""
    return root / "runs", dataset


@pytest.mark.parametrize("judged", [True, False])
def test_verify_scores_the_descriptions_validation_set_and_judges_as_it_says(tiny_voc, tmp_path, monkeypatch,
                                                                           judged):
    from reproduce.evaluation import verify as V

    runs, dataset = tiny_voc
    asked = []
    changed = dataclasses.replace(D.RELEASE_DATASETS["voc"], judged=judged,
                                  validation=partial(_AskedValidation, dataset=dataset, asked=asked))
    monkeypatch.setitem(D.RELEASE_DATASETS, "voc", changed)
    # --voc-dir names nothing: the description's validation set is what is scored
    report = V.verify(voc_dir=tmp_path / "no-voc", runs_dir=runs, weights_dir=tmp_path / "w",
                      stages=["fcn32s"], sources=["trained"], progress=False)
    (row,) = report.rows
    assert row.result["count"] == 3 and ("validation_set", "fcn32s") in asked
    if judged:   # judged against the release's 63.6 (tiny random weights score far below it)
        assert row.status == "FAIL" and row.expectation.mean_iu == 63.6 and report.exit_status == 1
    else:           # only measured, with the paper's figure as context
        assert row.status == "MEASURED" and row.expectation.mean_iu is None and report.exit_status == 0
        assert row.reason.startswith("mean_iu ") and "paper:" in row.reason


def test_verify_dataset_reads_the_folders_validation(tmp_path):
    from reproduce.data.folder import FolderValidation, describe_folder
    from reproduce.data.synthetic_folder import make_folder_dataset
    from reproduce.data.validation import VerifyPlaces

    dataset = make_folder_dataset(tmp_path / "data", "voc-style", n=6, n_val=2)
    description = describe_folder(dataset)
    validation = description.validation_data()
    assert isinstance(validation, FolderValidation) and not description.judged
    where = VerifyPlaces(runs_dir="myruns", dataset_dir="mydata")
    val, problem = validation.validation_set("fcn8s", where)
    assert problem == "" and len(val) == 2
    assert validation.stage_command("fcn8s", where) == "python -m reproduce stage fcn8s --dataset mydata --runs myruns --init …"
    label = next(p for p in (dataset / "SegmentationClass").iterdir() if p.stem in val.ids)
    label.unlink()
    val, problem = validation.validation_set("fcn8s", where)
    assert val is None and label.name in problem


# -- data check asks the description --------------------------------------------------------
def test_data_check_of_a_release_description_counts_the_archives_that_hold_it(tmp_path, capsys):
    from reproduce.data.data_check import check_dataset

    check = check_dataset(D.RELEASE_DATASETS["voc"], tmp_path)
    assert not check.ok and check.show() == 1
    out, err = capsys.readouterr()
    assert "sbd: missing:" in err and "voc2011: get it with" in err and "nyud" not in err + out
    assert [text for to_err, text in check.lines if to_err] == err.splitlines()
    changed = dataclasses.replace(D.RELEASE_DATASETS["nyud"], fetch=("siftflow",))
    assert {text.split(":")[0] for _, text in check_dataset(changed, tmp_path).lines} == {"siftflow"}


def test_data_check_of_a_folder_is_its_descriptions_check(tmp_path, capsys):
    from reproduce.cli import main
    from reproduce.data.data_check import check_dataset
    from reproduce.data.folder import describe_folder
    from reproduce.data.synthetic_folder import make_folder_dataset

    dataset = make_folder_dataset(tmp_path / "data", "folder", n=6, n_val=2)
    assert main(["data", "check", "--dataset", str(dataset)]) == 0
    printed = capsys.readouterr().out.splitlines()
    check = check_dataset(describe_folder(dataset), shown=dataset)
    assert check.ok and [text for _, text in check.lines] == printed
    assert printed[-1] == f"{dataset}: no problems found"
    # the description lays the folder out: a description with fewer classes finds labels beyond them
    fewer = dataclasses.replace(describe_folder(dataset), classes=("a", "b"), colours=())
    check = check_dataset(fewer)
    assert not check.ok and any(to_err and "≥ 2 classes" in text for to_err, text in check.lines)

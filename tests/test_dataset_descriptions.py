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

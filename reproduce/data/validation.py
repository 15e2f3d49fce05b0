"""How ``verify`` scores a dataset: the part of a ``DatasetDescription`` that ``verify`` asks.

``python -m reproduce verify`` knows no dataset by name. For each stage it asks the
description of the stage's dataset (``DatasetDescription.validation_data()``) for

* ``validation_set(stage, where)``: ``(dataset, "")`` — the split a trained net is scored on,
  read as its data layer reads it, in file order — or ``(None, why not)``;
* ``missing(stage, problem, where)``: the row's reason and the command that gets the data
  when that split is absent;
* ``stage_command(stage, where)``: the command that trains the stage when its weights are
  absent;

and the description itself says whether a row is judged (``judged``: PASS/FAIL against the
published numbers) or only MEASURED. ``where`` (``VerifyPlaces``) holds the folders of the run.

``ReleaseValidation``: a release dataset scored on its own test split, read by the data layer
of the stage's test net from ``--data-dir``. ``VOCValidation``: the VOC nets, scored on
VOC2011 ``seg11valid`` from ``--voc-dir`` (or the ids of ``--split-file``), one split for
every stage, named in the report when absent. ``reproduce.data.folder.FolderValidation``: a
user's folder (``verify --dataset DIR``). Imports no torch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

# the VOC nets' make targets: (target, the variable naming the ILSVRC classifier, its file)
VOC_MAKE_STAGE = {"fcn32s": ("stage-32s", "VGG16", "VGG_ILSVRC_16_layers.caffemodel"),
                  "fcn16s": ("stage-16s", None, None),
                  "fcn8s": ("stage-8s", None, None),
                  "fcn8s-atonce": ("stage-8s-atonce", "VGG16", "VGG_ILSVRC_16_layers.caffemodel"),
                  "fcn-alexnet": ("stage-alexnet", "ALEXNET", "bvlc_alexnet.caffemodel"),
                  "fcn-googlenet": ("stage-googlenet", "GOOGLENET", "bvlc_googlenet.caffemodel")}
_PREVIOUS = {"fcn16s": "fcn32s", "fcn8s": "fcn16s"}


@dataclass(frozen=True)
class VerifyPlaces:
    """The folders a ``verify`` run reads (its options): ``voc_dir``/``split``/``split_file``
    the VOC nets' validation split, ``data_dir`` the release's ``data/`` folder, ``runs_dir``
    the trained stages, ``weights_dir`` the converted release weights, ``dataset_dir`` a user's
    folder (``--dataset``) as the user gave it."""

    runs_dir: str = "runs"
    weights_dir: str = "weights"
    data_dir: str = "data"
    voc_dir: str = "data/pascal/VOC2011"
    split: str = "seg11valid"
    split_file: str | None = None
    dataset_dir: str | None = None   # a user's folder (``verify --dataset``), as given


def _runs_part(runs_dir) -> list[str]:
    return [f"RUNS={runs_dir}"] if os.path.normpath(str(runs_dir)) != "runs" else []


@dataclass
class ReleaseValidation:
    """A release dataset's nets scored on its own test split (see the module docstring)."""

    description: object = field(repr=False)
    _sets: dict = field(default_factory=dict, repr=False)

    def validation_set(self, stage: str, where: VerifyPlaces):
        """The test split of ``stage``'s dataset as its test net's data layer reads it (the
        release's ``data/`` folder re-rooted in ``where.data_dir``); read once per stage."""
        if stage not in self._sets:
            self._sets[stage] = self._read(stage, where)
        return self._sets[stage]

    def _read(self, stage: str, where: VerifyPlaces):
        from reproduce.data import DatasetError, make_data_source
        from reproduce.models import net_param
        from reproduce.models.build import data_directories, dataset_of

        from .stage_data import point_data_layer

        net = point_data_layer(net_param(stage, dataset_of(stage).splits[1]),
                               data_directories(stage, where.data_dir))
        layer = next(layer for layer in net.layer if layer.type == "Python")
        try:
            source = make_data_source(layer.python_param.module, layer.python_param.layer,
                                      layer.python_param.param_str, name=layer.name)
            if len(source.dataset) == 0:
                raise DatasetError("the split is empty")
            return source.dataset, ""
        except (DatasetError, ValueError, OSError) as err:
            return None, f"{' '.join(str(err).split())} (get it with: {self.fetch_command(where)})"

    def missing(self, stage: str, problem: str, where: VerifyPlaces) -> tuple[str, str]:
        return f"no test data: {problem}", self.fetch_command(where)

    def fetch_command(self, where: VerifyPlaces) -> str:
        """The ``data fetch`` command that gets the dataset into ``where.data_dir``."""
        d = self.description
        return f"python -m reproduce data fetch {' '.join(d.fetch) or d.name} --dir {where.data_dir}"

    def stage_command(self, stage: str, where: VerifyPlaces) -> str:
        from reproduce.models.build import model

        target = model(stage).make_target or f"stage-{stage}"
        return " ".join([f"make {target}", f"DATA_DIR={where.data_dir}", *_runs_part(where.runs_dir)])


@dataclass
class VOCValidation(ReleaseValidation):
    """The VOC nets: every stage scored on VOC2011 ``where.split`` (``seg11valid``) under
    ``where.voc_dir``, or the ids of ``where.split_file``; trained by ``make stage-…``."""

    def validation_set(self, stage: str | None, where: VerifyPlaces):
        key = (where.voc_dir, where.split, where.split_file)
        if key not in self._sets:
            self._sets[key] = voc_validation_set(where.voc_dir, where.split, where.split_file)
        return self._sets[key]

    def missing(self, stage: str, problem: str, where: VerifyPlaces) -> tuple[str, str]:
        return f"no validation data: {problem}", "get VOC2011 and pass VOC_DIR=… (or --voc-dir / --split-file)"

    def stage_command(self, stage: str, where: VerifyPlaces) -> str:
        target, var, base = VOC_MAKE_STAGE.get(stage, (f"stage-{stage}", None, None))
        parts = [f"make {target}", "SBD_DIR=data/sbdd/dataset", f"VOC_DIR={where.voc_dir}"]
        if var:
            parts.append(f"{var}={Path(where.weights_dir) / base}")
        command = " ".join(parts + _runs_part(where.runs_dir))
        if stage in _PREVIOUS:
            command += f"  (after {VOC_MAKE_STAGE[_PREVIOUS[stage]][0]})"
        return command


def voc_validation_set(voc_dir: str | os.PathLike, split: str = "seg11valid",
                       split_file: str | os.PathLike | None = None):
    """``(dataset, "")`` or ``(None, why not)`` for VOC ``split`` (or the ids in ``split_file``)."""
    from .errors import DatasetError
    from .voc import VOCSegmentation

    voc_dir = Path(voc_dir)
    if not voc_dir.is_dir():
        return None, (f"no VOC2011 at {voc_dir}: get the PASCAL VOC2011 trainval release and pass "
                      f"VOC_DIR=… (make) / --voc-dir (folder with JPEGImages, SegmentationClass)")
    split_path = Path(split_file) if split_file else voc_dir / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not split_path.is_file():
        return None, (f"no split list {split_path}: copy seg11valid.txt from fcn.berkeleyvision.org "
                      f"data/pascal/ there, or pass --split-file")

    class _WithSplitFile(VOCSegmentation):
        def split_path(self) -> Path:
            return split_path

    try:
        return _WithSplitFile(voc_dir, split_path.stem), ""
    except DatasetError as err:
        return None, " ".join(str(err).split())

"""How a stage reads a dataset: the part of a ``DatasetDescription`` that ``stage`` asks.

``python -m reproduce stage`` knows no dataset by name. It asks the description of the stage's
dataset (``DatasetDescription.stage_data()``: a release dataset's, or the user's folder's with
``--dataset``) for

* ``directories(opts)``: ``{data layer parameter: absolute folder}`` its data layers read;
* ``check(opts)``: that the data are there, else ``DataUnavailable``, one line naming what is
  missing and the command that gets it (or lists every problem);
* ``point(net, opts, role)``: the stage's net for ``role`` (``train``, or ``test`` for the
  seg_tests) with its data layer reading them;
* ``test_iter(opts)``: how many images a seg_test scores when the release's solver does not say
  (None: the solver's own);
* ``config(opts)``: what a resumed run must share about its data (``config.json``).

``ReleaseStageData``: a release dataset — the release prototxts' relative folders
(``../data/nyud``) re-rooted in ``--data-dir``, some replaced by options (the VOC nets'
``--sbd-dir``/``--voc-dir``), checked by building each split's data layer or by the dataset's
own check (VOC's, which names each of its two datasets and where to get it).
``reproduce.data.folder.FolderStageData``: a user's folder, read by
``folder_layers.FolderSegDataLayer``. Imports no torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

SBD_URL = "http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/benchmark.tgz"
VOC_URL = "http://host.robots.ox.ac.uk/pascal/VOC/voc2011/"


class DataUnavailable(Exception):
    """A stage's data that are not there (or not readable); the message is one line."""


@dataclass(frozen=True)
class ReleaseStageData:
    """A release dataset as its stages read it (see the module docstring).

    ``overrides``: ``(data layer parameter, StageOptions attribute)`` pairs, an option that
    replaces a re-rooted folder when given (VOC: ``sbdd_dir`` ← ``sbd_dir``, ``voc_dir`` ←
    ``voc_dir``), recorded in ``config.json`` under the option's name; ``check_dirs``: the
    dataset's own check of those folders (``check_dirs(dirs, opts)``), else each split's data
    layer is built and the ``make data`` command named.
    """

    description: object = field(repr=False)
    overrides: tuple[tuple[str, str], ...] = ()
    check_dirs: Callable | None = None

    def directories(self, opts) -> dict[str, Path]:
        from reproduce.models.build import data_directories

        dirs = data_directories(opts.model, opts.data_dir)
        for key, attribute in self.overrides:
            value = getattr(opts, attribute, None)
            if value is not None:
                dirs[key] = Path(value).resolve()
        return dirs

    def check(self, opts) -> None:
        if self.check_dirs is not None:
            self.check_dirs(self.directories(opts), opts)
            return
        from reproduce.data import DatasetError
        from reproduce.models import dataset_of

        dirs = self.directories(opts)
        for split in dataset_of(opts.model).splits:
            layer = dataset_of(opts.model).data_layer(opts.description, split)
            try:
                _data_source(layer, dirs)
            except (DatasetError, OSError) as err:
                problem = str(err).splitlines()[0]
                raise DataUnavailable(f"{opts.model} {split} data: {problem} — `make data DATASETS="
                                      f"\"{' '.join(self.description.fetch)}\" DATA_DIR={opts.data_dir}` "
                                      f"fetches it (or pass --data-dir)") from None

    def point(self, net, opts, role: str):
        return point_data_layer(net, self.directories(opts))

    def test_iter(self, opts) -> int | None:
        return None

    def config(self, opts) -> dict:
        dirs = self.directories(opts)
        given = {attribute: str(dirs.pop(key)) for key, attribute in self.overrides}
        return {**given, **({"data_dirs": {k: str(v) for k, v in sorted(dirs.items())}} if dirs else {})}


def _data_source(layer, dirs: dict[str, Path]):
    from reproduce.data import make_data_source, parse_param_str

    params = parse_param_str(layer.param_str, layer.layer)
    return make_data_source(layer.module, layer.layer, params,
                            root_override={k: v for k, v in dirs.items() if k in params})


def check_voc(dirs: dict[str, Path], opts) -> None:
    """The VOC nets' two datasets: SBD (or VOC2011 ``train`` with ``--train-set voc2011``) to
    train on, VOC2011 ``seg11valid`` to score on; each missing one named with where to get it."""
    train_set = getattr(opts, "train_set", "sbd")
    voc_train = dirs["voc_dir"] / "ImageSets" / "Segmentation" / "train.txt"
    if train_set == "voc2011" and not voc_train.is_file():
        raise DataUnavailable(f"PASCAL VOC training data not found: {voc_train} does not exist — "
                              f"`make data DATASETS=voc2011` downloads VOC2011 ({VOC_URL}); else pass "
                              f"--voc-dir (VOC_DIR=…)")
    sbd_split = dirs["sbdd_dir"] / "train.txt"
    if train_set == "sbd" and not sbd_split.is_file():
        raise DataUnavailable(f"SBD training data not found: {sbd_split} does not exist — `make data` "
                              f"downloads SBD ({SBD_URL}); else pass its dataset/ folder as --sbd-dir "
                              f"(SBD_DIR=…), or run `make demo` for generated data")
    voc_split = dirs["voc_dir"] / "ImageSets" / "Segmentation" / "seg11valid.txt"
    if not voc_split.is_file():
        raise DataUnavailable(f"PASCAL VOC validation data not found: {voc_split} does not exist — "
                              f"`make data` downloads VOC2011 ({VOC_URL}) and the reference "
                              f"seg11valid.txt; else pass --voc-dir (VOC_DIR=…)")


VOC_STAGE_DATA = dict(overrides=(("sbdd_dir", "sbd_dir"), ("voc_dir", "voc_dir")), check_dirs=check_voc)


def point_data_layer(net, directory, seed_offset: int = 0):
    """The net with its Python data layer reading ``directory`` (absolute) and seed + offset.

    ``directory`` replaces the layer's main folder parameter (``sbdd_dir``, ``voc_dir``,
    ``nyud_dir``…); a mapping ``{parameter: folder}`` replaces each parameter it names that
    the layer has (PASCAL-Context's ``voc_dir`` and ``context_dir``).
    """
    from collections.abc import Mapping

    from reproduce.data import DATA_LAYERS, parse_param_str

    net = net.copy()
    found = False
    for layer in net.layer:
        if layer.type != "Python" or layer.bottom:
            continue
        key = (layer.python_param.module, layer.python_param.layer)
        if key not in DATA_LAYERS:
            continue
        params = parse_param_str(layer.python_param.param_str, layer.name)
        if isinstance(directory, Mapping):
            params.update({k: str(Path(v).resolve()) for k, v in directory.items() if k in params})
        else:
            params[DATA_LAYERS[key][1]] = str(Path(directory).resolve())
        if seed_offset and params.get("seed") is not None:
            params["seed"] = int(params["seed"]) + seed_offset
        layer.python_param.param_str = repr(params)
        found = True
    if not found:
        raise DataUnavailable(f"net {net.name!r} has no reference Python data layer to point at {directory}")
    return net

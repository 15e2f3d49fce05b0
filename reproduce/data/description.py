"""One description per dataset: what ``stage``, ``verify``, ``infer`` and ``data check`` read.

A ``DatasetDescription`` says what a segmentation dataset is, apart from any net: its layout
(how the files lie), its (training, validation) splits, its classes (names and colours, the
palette of every picture), the ignore label, the BGR mean its data layer subtracts, the
metrics to report, whether ``verify`` judges a run on it against published numbers, and how
``stage``, ``verify`` and ``data check`` read it (``reproduce.data.stage_data``,
``reproduce.data.validation``, ``reproduce.data.data_check``). The release's datasets are
described here once (``RELEASE_DATASETS``: PASCAL VOC trained on SBD, NYUDv2, SIFT Flow's two
label sets, PASCAL-Context); a user's folder is one more (``reproduce.data.folder.
describe_folder``, ``--dataset DIR``). Imports no torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

from reproduce.evaluation.infer import INFER_MEAN_BGR

from .nyud import NYUD_MEAN_BGR
from .pascalcontext import CONTEXT_MEAN_BGR
from .siftflow import SIFTFLOW_MEAN_BGR
from .stage_data import VOC_STAGE_DATA, ReleaseStageData
from .validation import ReleaseValidation, VOCValidation
from .voc import VOC_CLASSES, VOC_MEAN_BGR

IGNORE_LABEL = 255
# score.py's four numbers (seg_tests), the loss besides
SCORE_METRICS = ("overall_acc", "mean_acc", "mean_iu", "fwavacc")


def voc_colours(n: int) -> tuple[tuple[int, int, int], ...]:
    """The first ``n`` colours of the PASCAL VOC colormap (``score.voc_palette``)."""
    from reproduce.evaluation.score import voc_palette

    flat = voc_palette()
    return tuple(tuple(flat[3 * i:3 * i + 3]) for i in range(min(n, 256)))


@dataclass(frozen=True)
class DatasetDescription:
    """A segmentation dataset (see the module docstring).

    ``layout``: ``sbd+voc`` (the VOC nets: SBD ``train``, VOC2011 ``seg11valid``), ``nyud``,
    ``siftflow``, ``pascalcontext``, or a user's ``folder`` / ``voc-style`` folder;
    ``splits``: (training, validation) split names; ``classes``/``colours``: one name and one
    RGB colour a class, in the order of the net's score channels; ``label_colours``: the masks
    are RGB pictures whose colours are the classes (else class-index PNGs); ``metric``: what the
    papers score it by (``mean_iu``, ``mean_iu_present``, ``overall_acc``); ``judged``:
    whether there are published numbers ``verify`` judges a run against, PASS/FAIL (VOC: the
    release's seg11valid mean IU), else its rows are MEASURED (the papers' NYUDv2, SIFT Flow and
    Context figures come from a different, non-heavy training and are shown as context only; a
    user's data has none);
    ``root``: the dataset's folder, where it is one; ``fetch``: the ``data fetch``/``data check``
    names of the release archives that hold it; ``reader``: how a stage reads it, a factory
    called with the description (``reproduce.data.stage_data``; ``stage_data()``);
    ``validation``: how ``verify`` scores it, a factory called with the description
    (``reproduce.data.validation``; ``validation_data()``);
    ``deploy_mean_bgr``: the mean the release's deployment script subtracts where it is not
    the data layer's (VOC's ``infer.py``, written with more digits); ``deploy_mean()``.
    """

    name: str
    title: str
    layout: str
    splits: tuple[str, str]
    classes: tuple[str, ...]
    colours: tuple[tuple[int, int, int], ...] = ()
    ignore_label: int = IGNORE_LABEL
    mean_bgr: tuple[float, float, float] = tuple(float(v) for v in VOC_MEAN_BGR)
    metrics: tuple[str, ...] = SCORE_METRICS
    metric: str = "mean_iu"
    judged: bool = True
    label_colours: bool = False
    root: Path | None = None
    split_files: dict = field(default_factory=dict, compare=False)
    fetch: tuple[str, ...] = ()
    reader: Callable | None = field(default=None, compare=False, repr=False)
    deploy_mean_bgr: tuple[float, float, float] | None = None
    validation: Callable | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if not self.colours:
            object.__setattr__(self, "colours", voc_colours(len(self.classes)))
        if len(self.colours) != len(self.classes):
            raise ValueError(f"dataset {self.name}: {len(self.classes)} classes but "
                             f"{len(self.colours)} colours")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def deploy_mean(self) -> tuple[float, float, float]:
        """The BGR mean ``infer`` subtracts from a picture for a net trained on this dataset."""
        return self.deploy_mean_bgr or self.mean_bgr

    def stage_data(self):
        """What ``stage`` asks about this dataset: its folders, its check, its data layers
        (``reproduce.data.stage_data``)."""
        if self.reader is None:
            raise ValueError(f"dataset {self.name}: no stage reads it")
        return self.reader(self)

    def validation_data(self):
        """What ``verify`` asks about this dataset: its validation set, the command that gets
        it, the command that trains a stage on it (``reproduce.data.validation``)."""
        if self.validation is None:
            raise ValueError(f"dataset {self.name}: verify scores no net on it")
        return self.validation(self)

    def palette(self) -> list[int]:
        """A flat 256-entry ``[r, g, b, …]`` palette: the classes' colours, then VOC's (the
        ignore label keeps VOC's 255 colour unless a class has it)."""
        from reproduce.evaluation.score import voc_palette

        flat = voc_palette()
        for index, colour in enumerate(self.colours[:256]):
            flat[3 * index:3 * index + 3] = list(colour)
        return flat


# The class names of the release's other datasets, in their label order (index 0 first), spelt
# as the release's data/*/classes*.txt spell them (tests/test_own_data.py holds them to those files).
NYUD_CLASSES = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror",
    "floor mat", "clothes", "ceiling", "books", "refridgerator", "television", "paper", "towel",
    "shower curtain", "box", "whiteboard", "person", "night stand", "toilet", "sink", "lamp",
    "bathtub", "bag", "otherstructure", "otherfurniture", "otherprop")
SIFTFLOW_CLASSES = (
    "awning", "balcony", "bird", "boat", "bridge", "building", "bus", "car", "cow", "crosswalk",
    "desert", "door", "fence", "field", "grass", "moon", "mountain", "person", "plant", "pole",
    "river", "road", "rock", "sand", "sea", "sidewalk", "sign", "sky", "staircase", "streetlight",
    "sun", "tree", "window")
SIFTFLOW_GEOMETRIC_CLASSES = ("sky", "horizontal", "vertical")
PASCALCONTEXT_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor", "bag", "bed", "bench", "book", "building", "cabinet", "ceiling", "clothes",
    "computer", "cup", "door", "fence", "floor", "flower", "food", "grass", "ground", "keyboard",
    "light", "mountain", "mouse", "curtain", "platform", "sign", "plate", "road", "rock", "shelves",
    "sidewalk", "sky", "snow", "bedcloth", "track", "tree", "truck", "wall", "water", "window",
    "wood")

_NYUD_MEAN = tuple(float(v) for v in NYUD_MEAN_BGR)
_SIFTFLOW_MEAN = tuple(float(v) for v in SIFTFLOW_MEAN_BGR)
_CONTEXT_MEAN = tuple(float(v) for v in CONTEXT_MEAN_BGR)

_RELEASE = dict(reader=ReleaseStageData, validation=ReleaseValidation, judged=False)
_VOC = dict(reader=partial(ReleaseStageData, **VOC_STAGE_DATA), validation=VOCValidation, judged=True)

RELEASE_DATASETS: dict[str, DatasetDescription] = {d.name: d for d in (
    DatasetDescription("voc", "PASCAL VOC (trained on SBD train, scored on VOC2011 seg11valid)",
                       "sbd+voc", ("train", "seg11valid"), tuple(VOC_CLASSES), fetch=("sbd", "voc2011"),
                       **_VOC, deploy_mean_bgr=INFER_MEAN_BGR),
    DatasetDescription("nyud", "NYUDv2 (Gupta et al.'s 40 classes)", "nyud", ("trainval", "test"),
                       NYUD_CLASSES, ignore_label=IGNORE_LABEL, mean_bgr=_NYUD_MEAN, fetch=("nyud",),
                       **_RELEASE),
    DatasetDescription("siftflow", "SIFT Flow (33 semantic classes)", "siftflow", ("trainval", "test"),
                       SIFTFLOW_CLASSES, mean_bgr=_SIFTFLOW_MEAN, metric="mean_iu_present",
                       fetch=("siftflow",), **_RELEASE),
    DatasetDescription("siftflow-geo", "SIFT Flow (3 geometric classes)", "siftflow", ("trainval", "test"),
                       SIFTFLOW_GEOMETRIC_CLASSES, mean_bgr=_SIFTFLOW_MEAN, metric="overall_acc",
                       fetch=("siftflow",), **_RELEASE),
    DatasetDescription("pascalcontext", "PASCAL-Context (59 classes and background)", "pascalcontext",
                       ("train", "val"), PASCALCONTEXT_CLASSES, mean_bgr=_CONTEXT_MEAN, fetch=("pascalcontext",),
                       **_RELEASE),
)}


def fetch_names(names) -> list[str]:
    """``data fetch``/``data check`` names, a dataset description's name standing for the
    archives that hold it (``voc`` → ``sbd``, ``voc2011``); other names are kept as given."""
    found = []
    for name in names:
        found.extend(RELEASE_DATASETS[name].fetch if name in RELEASE_DATASETS else (name,))
    return list(dict.fromkeys(found))


def release_description(model_dataset: str, head: int = 0) -> DatasetDescription:
    """The description of a release net's dataset (``FCNModel.dataset``); SIFT Flow's second
    head (``head=1``) is its geometric label set."""
    if model_dataset == "siftflow" and head == 1:
        return RELEASE_DATASETS["siftflow-geo"]
    return RELEASE_DATASETS[model_dataset]

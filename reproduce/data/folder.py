"""A user's own segmentation dataset (``--dataset DIR``), read the way the reference layers read VOC.

Two layouts are recognised:

* **folder**: ``DIR/images/<id>.{jpg,jpeg,png}``, ``DIR/labels/<id>.png`` (same stem), splits
  in ``DIR/splits/{train,val}.txt`` (one id a line);
* **voc-style**: ``DIR/JPEGImages/<id>.{jpg,jpeg,png}``, ``DIR/SegmentationClass/<id>.png``,
  ``DIR/ImageSets/Segmentation/{train,val}.txt`` (VOC2012 itself).

A label PNG of mode ``L`` or ``P`` holds class indices (a ``P`` image's palette is ignored: its
indices are the classes); an ``RGB``/``RGBA`` label is colour-coded and ``DIR/classes.txt``
maps its colours to classes (an unknown colour is an error naming the file and the colour).
``DIR/classes.txt``: one class a line, ``name`` or ``name R G B``; its line count is the number
of classes and its colours the palette of every picture. Without it the classes are
``class_0 … class_{K-1}``, K read off the labels (largest label + 1) unless given, with the
VOC palette. The ignore label (default 255) is mapped to 255, the ignore label of the nets'
loss and of score.py's histogram; in a colour-coded mask the colour of ``classes.txt``'s line
N (from 0) is label N, so ``--ignore-label N`` ignores that line's colour (its pixels become
255; the line still counts in K, as an ignored index does).

Without split lists, the split is deterministic: the ids sorted, shuffled by a generator
seeded with 1337, the first 10 % (at least one image) for validation — the same on every rerun
and every rank; ``write_default_splits`` writes it into the run folder.

``FolderSegmentation`` is the data layer's dataset (``folder_layers.FolderSegDataLayer`` in a
prototxt's ``python_param``, read by ``reproduce.data.registry``): the reference
preprocessing (RGB → BGR float32 minus the mean, C×H×W; the label 1×H×W uint8) and, through
``DataSource``, the reference sample order (shuffled with the layer's seed).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .base import SplitDataset
from .description import IGNORE_LABEL, DatasetDescription, voc_colours
from .errors import DatasetError
from .preprocess import check_same_size, read_split
from .stage_data import DataUnavailable

FOLDER, VOC_STYLE = "folder", "voc-style"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
SPLITS = ("train", "val")
SPLIT_SEED = 1337
VAL_FRACTION = 0.1
DATA_LAYER = ("folder_layers", "FolderSegDataLayer")

LAYOUTS = {
    FOLDER: ("  {root}/images/<id>.jpg|.jpeg|.png     RGB image\n"
             "  {root}/labels/<id>.png                class-index PNG (mode L or P) or colour-coded RGB\n"
             "  {root}/splits/train.txt, val.txt      optional: one id a line (else a seeded 10 % val split)\n"
             "  {root}/classes.txt                    optional for index masks: `name` or `name R G B` a line"),
    VOC_STYLE: ("  {root}/JPEGImages/<id>.jpg            RGB image\n"
                "  {root}/SegmentationClass/<id>.png     class-index PNG (mode L or P) or colour-coded RGB\n"
                "  {root}/ImageSets/Segmentation/train.txt, val.txt   one id a line\n"
                "  {root}/classes.txt                    optional for index masks: `name` or `name R G B` a line"),
}
_DIRS = {FOLDER: ("images", "labels", "splits"),
         VOC_STYLE: ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation")}


class FolderDatasetError(DatasetError):
    """A user's dataset folder that cannot be read as one of the layouts."""

    def __init__(self, root, problem: str, layout: str | None = None):
        text = "\n\n".join(f"{name}:\n{LAYOUTS[name].format(root=root)}"
                           for name in ([layout] if layout else LAYOUTS))
        super().__init__("your", root, problem, text)


def detect_layout(root: str | Path) -> str:
    root = Path(root)
    if not root.is_dir():
        raise FolderDatasetError(root, f"directory {root} does not exist")
    for layout, (images, labels, _) in _DIRS.items():
        if (root / images).is_dir() and (root / labels).is_dir():
            return layout
    raise FolderDatasetError(root, "neither images/ + labels/ nor JPEGImages/ + SegmentationClass/ found")


def read_classes(path: str | Path) -> tuple[tuple[str, ...], tuple[tuple[int, int, int], ...] | None]:
    """``classes.txt``: names, and colours when every line has them (``name R G B``)."""
    names, colours = [], []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split()
        if len(parts) >= 4 and all(p.lstrip("-").isdigit() for p in parts[-3:]):
            rgb = tuple(int(p) for p in parts[-3:])
            if any(not 0 <= c <= 255 for c in rgb):
                raise ValueError(f"{path} line {number}: colour {rgb} outside 0-255")
            names.append(" ".join(parts[:-3]))
            colours.append(rgb)
        else:
            names.append(line.strip())
            colours.append(None)
    if not names:
        raise ValueError(f"{path}: no classes (one a line: `name` or `name R G B`)")
    given = [c for c in colours if c is not None]
    if given and len(given) != len(colours):
        missing = next(i for i, c in enumerate(colours) if c is None)
        raise ValueError(f"{path}: class {names[missing]!r} has no colour but others do "
                         f"(give every class `name R G B`, or none)")
    if len(set(given)) != len(given):
        raise ValueError(f"{path}: two classes share a colour")
    return tuple(names), (tuple(colours) if given else None)


@dataclass(frozen=True)
class FolderFiles:
    """Where the files of a user's dataset lie, for its layout."""

    root: Path
    layout: str

    @property
    def image_dir(self) -> Path:
        return self.root / _DIRS[self.layout][0]

    @property
    def label_dir(self) -> Path:
        return self.root / _DIRS[self.layout][1]

    @property
    def split_dir(self) -> Path:
        return self.root / _DIRS[self.layout][2]

    def image_path(self, sample_id: str) -> Path:
        """The image of ``sample_id`` (the first suffix present; ``.jpg`` when none is)."""
        for suffix in IMAGE_SUFFIXES:
            path = self.image_dir / f"{sample_id}{suffix}"
            if path.is_file():
                return path
        return self.image_dir / f"{sample_id}.jpg"

    def label_path(self, sample_id: str) -> Path:
        return self.label_dir / f"{sample_id}.png"

    def image_ids(self) -> list[str]:
        return sorted({p.stem for p in self.image_dir.iterdir()
                       if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES})

    def given_split(self, split: str) -> Path | None:
        path = self.split_dir / f"{split}.txt"
        return path if path.is_file() else None


def default_split(ids: list[str], seed: int = SPLIT_SEED, fraction: float = VAL_FRACTION) -> dict[str, list[str]]:
    """The deterministic split: sorted ids, shuffled with ``seed``, ``fraction`` (at least one) to val."""
    ordered = sorted(ids)
    random.Random(seed).shuffle(ordered)
    n_val = max(1, int(round(len(ordered) * fraction))) if len(ordered) > 1 else 0
    return {"train": sorted(ordered[n_val:]), "val": sorted(ordered[:n_val])}


def describe_folder(root: str | Path, *, num_classes: int | None = None, ignore_label: int = IGNORE_LABEL,
                    split_dir: str | Path | None = None, mean_bgr=None,
                    log=None) -> DatasetDescription:
    """The ``DatasetDescription`` of a user's folder (see the module docstring).

    ``split_dir``: where the deterministic split is written when the folder has no split lists
    (the run folder's ``splits/``); without it the split is only computed (``data check``).
    ``num_classes`` overrides K read off the labels (not a ``classes.txt``'s line count).
    """
    root = Path(root).resolve()
    layout = detect_layout(root)
    files = FolderFiles(root, layout)
    classes_file = root / "classes.txt"
    colours = None
    if classes_file.is_file():
        try:
            names, colours = read_classes(classes_file)
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise FolderDatasetError(root, str(err), layout) from None
        if num_classes is not None and num_classes != len(names):
            raise FolderDatasetError(root, f"--num-classes {num_classes} but {classes_file} lists "
                                           f"{len(names)} classes", layout)
    else:
        if num_classes is None:
            num_classes = labels_class_count(files, ignore_label)
            if log:
                log(f"dataset {root}: no classes.txt, {num_classes} classes read off the labels "
                    f"(largest label + 1; --num-classes overrides)")
        if num_classes < 1:
            raise FolderDatasetError(root, "no labelled pixel in any label file", layout)
        names = tuple(f"class_{i}" for i in range(num_classes))
    split_files = _split_files(files, split_dir, log)
    from .voc import VOC_MEAN_BGR

    return DatasetDescription(
        name=root.name, title=f"your dataset {root} ({layout} layout)", layout=layout, splits=SPLITS,
        classes=names, colours=colours or voc_colours(len(names)), ignore_label=int(ignore_label),
        mean_bgr=tuple(float(v) for v in (mean_bgr or VOC_MEAN_BGR)), judged=False,
        label_colours=colours is not None, root=root, split_files=split_files, reader=FolderStageData,
        validation=FolderValidation)


def _split_files(files: FolderFiles, split_dir, log) -> dict[str, Path | list[str]]:
    """``{split: list file}`` (given lists, or the default split written to ``split_dir``), or
    ``{split: [ids]}`` when the default split is not written anywhere."""
    given = {split: files.given_split(split) for split in SPLITS}
    if all(given.values()):
        return given
    if any(given.values()):
        present = next(s for s in SPLITS if given[s])
        absent = next(s for s in SPLITS if not given[s])
        raise FolderDatasetError(files.root, f"{given[present]} exists but {files.split_dir / (absent + '.txt')} "
                                             f"does not (give both split lists, or neither)", files.layout)
    ids = files.image_ids()
    if not ids:
        raise FolderDatasetError(files.root, f"no image (.jpg, .jpeg, .png) in {files.image_dir}", files.layout)
    split = default_split(ids)
    if log:
        log(f"dataset {files.root}: no split lists, a deterministic split (seed {SPLIT_SEED}, "
            f"{int(VAL_FRACTION * 100)}% val): {len(split['train'])} train, {len(split['val'])} val"
            + (f", written to {Path(split_dir)}" if split_dir else ""))
    if split_dir is None:
        return split
    return write_default_splits(split, split_dir)


def write_default_splits(split: dict[str, list[str]], split_dir: str | Path) -> dict[str, Path]:
    from reproduce.caffe.files import atomic_output

    split_dir = Path(split_dir)
    split_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, ids in split.items():
        path = split_dir / f"{name}.txt"
        text = "".join(f"{i}\n" for i in ids)
        if not path.is_file() or path.read_text() != text:
            with atomic_output(path) as tmp:
                Path(tmp).write_text(text)
        paths[name] = path
    return paths


def split_ids(description: DatasetDescription, split: str) -> list[str]:
    source = description.split_files[split]
    return list(source) if isinstance(source, list) else read_split(source)


def labels_class_count(files: FolderFiles, ignore_label: int = IGNORE_LABEL) -> int:
    """K from index labels: the largest label other than the ignore label, plus one."""
    largest = -1
    for path in sorted(files.label_dir.glob("*.png")):
        try:
            with Image.open(path) as image:
                if image.mode not in ("L", "P"):
                    continue
                values = np.unique(np.asarray(image))
        except (OSError, ValueError):
            continue   # data check names it
        values = values[values != ignore_label]
        if values.size:
            largest = max(largest, int(values.max()))
    return largest + 1


def read_label(path: Path, colours=None, ignore_label: int = IGNORE_LABEL) -> np.ndarray:
    """A label file as an H×W uint8 class map, the ignore label as 255.

    ``L``/``P``: the indices; ``RGB``/``RGBA``: each colour looked up in ``colours`` (an
    unknown colour is a ``ValueError`` naming the file, the colour and a pixel having it), the
    colour of ``classes.txt``'s line N (counted from 0) being class N. Then ``ignore_label``
    means the same for both: class N = ``ignore_label`` becomes 255 (a colour-coded mask's
    ``void 0 0 0`` line N is ignored with ``--ignore-label N``; it stays a line of K).
    """
    with Image.open(path) as image:
        mode = image.mode
        if mode in ("L", "P"):
            label = np.array(image, dtype=np.uint8)
        elif mode in ("RGB", "RGBA"):
            if colours is None:
                raise ValueError(f"{path}: a colour-coded ({mode}) label, but classes.txt gives no "
                                 f"colours (`name R G B` a line)")
            label = colour_label(np.array(image.convert("RGB"), dtype=np.uint8), colours, path)
        else:
            raise ValueError(f"{path}: label mode {mode}; expected a class-index PNG (L or P) or RGB")
    if ignore_label != IGNORE_LABEL:
        label = np.where(label == ignore_label, IGNORE_LABEL, label).astype(np.uint8)
    return label


def colour_label(rgb: np.ndarray, colours, path) -> np.ndarray:
    """An H×W×3 colour-coded label as class indices; every unknown colour is named (a
    ``ValueError`` naming the file, each colour and a pixel having it)."""
    codes = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    table = {(r << 16) | (g << 8) | b: index for index, (r, g, b) in enumerate(colours)}
    unique, inverse = np.unique(codes, return_inverse=True)
    mapped = np.array([table.get(int(code), -1) for code in unique], dtype=np.int64)
    unknown = unique[mapped < 0]
    if unknown.size:
        where = []
        for code in unknown[:4]:
            y, x = (int(v[0]) for v in np.nonzero(codes == code))
            where.append(f"({code >> 16}, {(code >> 8) & 255}, {code & 255}) at x={x} y={y}")
        more = f" and {unknown.size - 4} more" if unknown.size > 4 else ""
        raise ValueError(f"{path}: unknown colour{'s' if unknown.size > 1 else ''} "
                         f"{', '.join(where)}{more}, not in classes.txt")
    return mapped[inverse.reshape(codes.shape)].astype(np.uint8)


class FolderSegmentation(SplitDataset):
    """A user's dataset, one split (``folder_layers.FolderSegDataLayer``'s dataset).

    ``split_file``: the split list (the folder's own, or the run's default split); ``classes``:
    ``classes.txt`` (for colour-coded labels and the class count), ``num_classes`` the count
    without one; labels ≥ K other than the ignore label are an error naming the file.
    """

    dataset_name = "your"

    def __init__(self, dataset_dir: str | Path, split: str, split_file: str | Path, mean,
                 num_classes: int, ignore_label: int = IGNORE_LABEL, check_files: bool = True):
        self.files = FolderFiles(Path(dataset_dir), detect_layout(dataset_dir))
        self.layout = LAYOUTS[self.files.layout]
        self.split_file = Path(split_file)
        self.mean = np.array(mean)   # as the reference: np.array(params['mean']), float64
        self.num_classes = int(num_classes)
        self.ignore_label = int(ignore_label)
        classes_file = self.files.root / "classes.txt"
        self.colours = read_classes(classes_file)[1] if classes_file.is_file() else None
        super().__init__(dataset_dir, split, check_files)

    def split_path(self) -> Path:
        return self.split_file

    def sample_paths(self, sample_id: str):
        return (self.files.image_path(sample_id), self.files.label_path(sample_id))

    def load(self, sample_id: str) -> tuple[np.ndarray, np.ndarray]:
        image_path, label_path = self.sample_paths(sample_id)
        image = self.caffe_image(image_path, self.mean)
        label = read_label(label_path, self.colours, self.ignore_label)
        check_same_size(image, image_path, label, label_path)
        bad = label[(label >= self.num_classes) & (label != IGNORE_LABEL)]
        if bad.size:
            raise ValueError(f"{label_path}: label {int(bad.max())} is not a class of the "
                             f"{self.num_classes} (0-{self.num_classes - 1}) nor the ignore label")
        return image, label[np.newaxis, ...]


def data_layer_params(description: DatasetDescription, split: str, seed: int = SPLIT_SEED) -> dict:
    """The ``param_str`` dict of the data layer reading ``split`` of a user's dataset."""
    source = description.split_files[split]
    if isinstance(source, list):
        raise ValueError(f"the {split} split of {description.root} is not written to a file yet")
    return {"dataset_dir": str(description.root), "split": split, "split_file": str(Path(source).resolve()),
            "seed": seed, "mean": tuple(description.mean_bgr), "num_classes": description.num_classes,
            "ignore_label": description.ignore_label}


@dataclass(frozen=True)
class FolderStageData:
    """A user's folder as a stage reads it: ``train`` to train on, ``val`` for the seg_tests
    (the whole split each time), the data layer ``folder_layers.FolderSegDataLayer``."""

    description: DatasetDescription = field(repr=False)

    _ROLES = {"train": "train", "test": "val"}

    def directories(self, opts) -> dict[str, Path]:
        return {"dataset_dir": Path(self.description.root)}

    def check(self, opts) -> None:
        """Both splits build (split lists, every file present)."""
        from reproduce.data import DatasetError, make_data_source

        for split in ("train", "val"):
            try:
                make_data_source(*DATA_LAYER, data_layer_params(self.description, split))
            except (DatasetError, OSError) as err:
                raise DataUnavailable(f"{split} data: {str(err).splitlines()[0]} — `python -m reproduce data "
                                      f"check --dataset {opts.dataset}` lists every problem") from None

    def point(self, net, opts, role: str):
        """``net`` with its reference data layer replaced by the folder's, its seed kept."""
        from reproduce.data import parse_param_str

        net = net.copy()
        for layer in net.layer:
            if layer.type == "Python" and not layer.bottom:
                seed = parse_param_str(layer.python_param.param_str, layer.name).get("seed")
                layer.python_param.module, layer.python_param.layer = DATA_LAYER
                layer.python_param.param_str = repr(data_layer_params(self.description, self._ROLES[role],
                                                                      seed=seed))
                return net
        raise DataUnavailable(f"net {net.name!r} has no data layer to read {opts.dataset}")

    def test_iter(self, opts) -> int | None:
        return len(split_ids(self.description, "val"))

    def config(self, opts) -> dict:
        return {"data_dirs": {"dataset_dir": str(self.description.root)},
                "dataset": str(self.description.root), "ignore_label": self.description.ignore_label}


@dataclass(frozen=True)
class FolderValidation:
    """A user's folder as ``verify --dataset`` scores it (``reproduce.data.validation``): every
    stage on the ``val`` split, read by ``folder_layers.FolderSegDataLayer`` in file order;
    no published numbers (the description's ``judged`` is False), so its rows are MEASURED."""

    description: DatasetDescription = field(repr=False)

    def read(self, split: str = "val"):
        """``split`` as its data layer reads it; a ``DatasetError`` (or ``OSError``) naming the
        problem when it cannot be read."""
        from reproduce.data import make_data_source

        return make_data_source(*DATA_LAYER, data_layer_params(self.description, split)).dataset

    def validation_set(self, stage: str | None, where):
        try:
            return self.read("val"), ""
        except (DatasetError, OSError, ValueError) as err:
            return None, " ".join(str(err).splitlines()[0].split())

    def missing(self, stage: str, problem: str, where) -> tuple[str, str]:
        return (f"no val data: {problem}",
                f"python -m reproduce data check --dataset {self._dataset_dir(where)}")

    def stage_command(self, stage: str, where) -> str:
        return (f"python -m reproduce stage {stage} --dataset {self._dataset_dir(where)} "
                f"--runs {where.runs_dir} --init …")

    def _dataset_dir(self, where):
        return getattr(where, "dataset_dir", None) or self.description.root

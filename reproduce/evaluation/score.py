"""Segmentation scoring, exactly as the reference ``score.py`` of fcn.berkeleyvision.org.

Mirrors ``fast_hist`` (a confusion histogram over the pixels whose label is in ``[0, n)``,
so the 255 void label drops out) and the metrics ``do_seg_tests`` prints: overall pixel
accuracy, mean class accuracy, mean IU and frequency-weighted IU. The reference's NaN
semantics are kept: a class absent from both ground truth and prediction has a NaN IU and
accuracy and is skipped by ``np.nanmean``; fwavacc sums over classes with ``freq > 0``.
Numpy's divide-by-zero warnings are silenced, the values are not changed.

One deliberate departure, off by default: ``metrics(hist, classes_present_only=True)`` takes
the mean IU over the classes that occur in the ground truth of the scored split only. With
score.py's rule a class missing from the ground truth but predicted somewhere has IU 0 (not
NaN) and drags the mean down; the release's ``siftflow-fcn*/solve.py`` says so ("metrics on
the semantic labels are off b.c. of missing classes; score manually from the histogram
instead") and its README warns its SIFT Flow semantic evaluation "is not quite right ... due
to an issue with missing classes". The papers' SIFT Flow semantic numbers (CVPR 2015 Table 5,
arXiv 1411.4038; PAMI 2016, arXiv 1605.06211) are over the classes present in the 200-image
test set. Pixel accuracy, mean (class) accuracy and fwavacc already count only classes with
ground-truth pixels, so the option changes the mean IU (and the per-class IU of such classes,
then NaN) and nothing else. ``pixel_accuracy`` is the "geom. acc." of SIFT Flow's geometric
head (Table 5, right): correct over all non-void pixels.

Also: ``SegScore``, an accumulator of histogram, loss sum and image count that can be
merged (or all-reduced through ``to_vector``/``from_vector``), the standard PASCAL VOC
palette, palette PNG output and reading class names from a ``classes.txt``-style file.
"""
from __future__ import annotations

import warnings
from datetime import datetime
from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = [
    "fast_hist", "metrics", "present_classes", "pixel_accuracy", "SegScore", "ConfusionAccumulator", "seg_test_lines",
    "voc_palette", "save_palette_png", "read_class_names", "format_per_class",
]


def fast_hist(label: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    """The ``n × n`` confusion histogram (rows: ground truth, columns: prediction).

    As the reference: only pixels with ``0 <= label < n`` count; the cell is
    ``n * label + pred`` counted by ``np.bincount(..., minlength=n**2)``.
    """
    label = np.asarray(label).ravel()
    pred = np.asarray(pred).ravel()
    if label.shape != pred.shape:
        raise ValueError(f"fast_hist: label has {label.size} pixels but prediction has {pred.size}")
    k = (label >= 0) & (label < n)
    pred_k = pred[k].astype(int)
    if pred_k.size and (pred_k.min() < 0 or pred_k.max() >= n):
        raise ValueError(f"fast_hist: predictions must lie in [0, {n}), got "
                         f"[{pred_k.min()}, {pred_k.max()}]")
    return np.bincount(n * label[k].astype(int) + pred_k, minlength=n ** 2).reshape(n, n)


def present_classes(hist: np.ndarray) -> np.ndarray:
    """Boolean mask of the classes with ground-truth pixels in ``hist`` (rows: ground truth)."""
    return np.asarray(hist, dtype=np.float64).sum(1) > 0


def pixel_accuracy(hist: np.ndarray) -> float:
    """Correct pixels over all counted (non-void) pixels: score.py's "overall accuracy",
    the papers' "pixel acc." and SIFT Flow's "geom. acc." (CVPR 2015 Table 5, right column:
    "The metric for geometry is pixel accuracy"). NaN for an empty histogram."""
    hist = np.asarray(hist, dtype=np.float64)
    total = hist.sum()
    return float(np.trace(hist) / total) if total else float("nan")


def metrics(hist: np.ndarray, classes_present_only: bool = False) -> dict:
    """The reference's metrics of a confusion histogram.

    Returns ``overall_acc``, ``mean_acc``, ``mean_iu``, ``fwavacc`` (floats, possibly NaN)
    and ``per_class_iu``, ``per_class_acc`` (float arrays with NaN for absent classes).

    ``classes_present_only`` (default off = score.py bit for bit): the IU of a class without
    ground-truth pixels is NaN even when it was predicted, so ``mean_iu`` is the mean over the
    classes present in the ground truth (the SIFT Flow semantic scoring of the papers, see the
    module docstring); the result then also has ``mean_iu_all`` (score.py's value) and
    ``n_present``. The other metrics are the same either way.
    """
    hist = np.asarray(hist, dtype=np.float64)
    diag = np.diag(hist)
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        # np.nanmean warns "Mean of empty slice" when every class is NaN; the value (NaN) stays.
        warnings.simplefilter("ignore", RuntimeWarning)
        overall_acc = diag.sum() / hist.sum()
        per_class_acc = diag / hist.sum(1)
        per_class_iu = diag / (hist.sum(1) + hist.sum(0) - diag)
        freq = hist.sum(1) / hist.sum()
        fwavacc = (freq[freq > 0] * per_class_iu[freq > 0]).sum()
        mean_acc = np.nanmean(per_class_acc)
        mean_iu = np.nanmean(per_class_iu)
    result = {
        "overall_acc": float(overall_acc),
        "mean_acc": float(mean_acc),
        "mean_iu": float(mean_iu),
        "fwavacc": float(fwavacc),
        "per_class_iu": per_class_iu,
        "per_class_acc": per_class_acc,
    }
    if classes_present_only:
        present = present_classes(hist)
        present_iu = np.where(present, per_class_iu, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)   # no class present: NaN, as above
            result["mean_iu"] = float(np.nanmean(present_iu))
        result["mean_iu_all"] = float(mean_iu)
        result["per_class_iu"] = present_iu
        result["n_present"] = int(present.sum())
    return result


class SegScore:
    """Accumulates the confusion histogram, the loss sum and the image count of a test pass.

    ``hist`` is float64 like the reference's ``np.zeros((n_cl, n_cl))``; the mean loss is
    ``loss_sum / count`` like ``compute_hist``'s ``loss / len(dataset)``. Accumulators of
    disjoint shards combine with ``merge`` (or by summing ``to_vector()`` across workers).
    """

    def __init__(self, n_classes: int):
        if n_classes < 1:
            raise ValueError(f"SegScore needs at least one class, got {n_classes}")
        self.n_classes = int(n_classes)
        self.hist = np.zeros((self.n_classes, self.n_classes), dtype=np.float64)
        self.loss_sum = 0.0
        self.count = 0

    def update(self, label: np.ndarray, pred: np.ndarray, loss: float | None = None) -> None:
        """Add one image: its label map, its argmax prediction and optionally its loss."""
        self.hist += fast_hist(label, pred, self.n_classes)
        if loss is not None:
            self.loss_sum += float(loss)
        self.count += 1

    def update_scores(self, label: np.ndarray, scores: np.ndarray, loss: float | None = None) -> None:
        """Add one image from its class scores (``C × H × W``), argmax over the class axis."""
        self.update(label, np.asarray(scores).argmax(0), loss)

    def merge(self, other: "SegScore") -> "SegScore":
        """Add another accumulator's counts into this one (in place); returns self."""
        if other.n_classes != self.n_classes:
            raise ValueError(f"cannot merge scores of {other.n_classes} classes into {self.n_classes}")
        self.hist += other.hist
        self.loss_sum += other.loss_sum
        self.count += other.count
        return self

    def to_vector(self) -> np.ndarray:
        """Flat float64 ``[hist..., loss_sum, count]`` — sum these across workers to all-reduce."""
        return np.concatenate([self.hist.ravel(), [self.loss_sum, float(self.count)]])

    @classmethod
    def from_vector(cls, vector: np.ndarray, n_classes: int) -> "SegScore":
        vector = np.asarray(vector, dtype=np.float64).ravel()
        if vector.size != n_classes ** 2 + 2:
            raise ValueError(f"score vector of {vector.size} values does not fit {n_classes} classes")
        score = cls(n_classes)
        score.hist = vector[:-2].reshape(n_classes, n_classes).copy()
        score.loss_sum = float(vector[-2])
        score.count = int(round(vector[-1]))
        return score

    @property
    def mean_loss(self) -> float:
        return self.loss_sum / self.count if self.count else float("nan")

    def metrics(self, classes_present_only: bool = False) -> dict:
        """``metrics(self.hist, classes_present_only)`` plus ``loss`` (the mean loss) and ``count``."""
        result = metrics(self.hist, classes_present_only)
        result["loss"] = self.mean_loss
        result["count"] = self.count
        return result


ConfusionAccumulator = SegScore


def seg_test_lines(iteration: int, result: dict, now: datetime | None = None) -> list[str]:
    """The report lines of the reference ``do_seg_tests`` for a ``SegScore.metrics()`` result."""
    stamp = f">>> {now or datetime.now()} Iteration {iteration}"
    return [
        f"{stamp} loss {result['loss']}",
        f"{stamp} overall accuracy {result['overall_acc']}",
        f"{stamp} mean accuracy {result['mean_acc']}",
        f"{stamp} mean IU {result['mean_iu']}",
        f"{stamp} fwavacc {result['fwavacc']}",
    ]


def voc_palette() -> list[int]:
    """The standard 256-entry PASCAL VOC colormap as a flat ``[r, g, b, r, g, b, …]`` list.

    Bit ``3i + c`` of the class index sets bit ``7 - i`` of colour channel ``c``
    (the VOC devkit's ``labelcolormap``); index 255 is (224, 224, 192).
    """
    palette = []
    for index in range(256):
        rgb = [0, 0, 0]
        value, bit = index, 7
        while value:
            for channel in range(3):
                rgb[channel] |= ((value >> channel) & 1) << bit
            value >>= 3
            bit -= 1
        palette.extend(rgb)
    return palette


def save_palette_png(path: str | Path, label_array: np.ndarray, palette: Sequence[int] | None = None) -> None:
    """Write a 2-D label map (values 0–255) as a palette PNG with the VOC colormap (or
    ``palette``, a flat 256-entry ``[r, g, b, …]`` list: a dataset's colours)."""
    from PIL import Image

    label_array = np.asarray(label_array)
    if label_array.ndim == 3 and label_array.shape[0] == 1:
        label_array = label_array[0]
    if label_array.ndim != 2:
        raise ValueError(f"{path}: a label map must be H × W, got shape {label_array.shape}")
    if label_array.size and (label_array.min() < 0 or label_array.max() > 255):
        raise ValueError(f"{path}: label values must lie in [0, 255]")
    height, width = label_array.shape
    image = Image.frombytes("P", (width, height), np.ascontiguousarray(label_array, np.uint8).tobytes())
    image.putpalette(list(palette) if palette is not None else voc_palette())
    save_image_atomic(image, path)


def save_image_atomic(image, path: str | Path, format: str = "PNG") -> None:
    """``image.save`` through a temporary file renamed into place: a reader never sees half a
    PNG, and a symlink planted at ``path`` is replaced, never written through."""
    from reproduce.caffe.files import atomic_output

    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        image.save(f, format=format)


def read_class_names(path: str | Path) -> list[str]:
    """Class names, one a line, from a ``classes.txt``-style file.

    The list ends at the first blank line (the reference's ``classes.txt`` carries a note
    about the 255 ignore label after one).
    """
    names = []
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise FileNotFoundError(f"cannot read class names from {path}: {error}") from None
    for line in text.splitlines():
        if not line.strip():
            if names:
                break
            continue
        names.append(line.strip())
    if not names:
        raise ValueError(f"{path}: no class names found")
    return names


def format_per_class(names: Sequence[str], values: np.ndarray) -> list[str]:
    """``name: value`` lines, one a class, for per-class IU or accuracy."""
    width = max(len(name) for name in names)
    return [f"{name:<{width}} {value:.4f}" for name, value in zip(names, values)]

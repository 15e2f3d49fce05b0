"""``python -m reproduce data check --dataset DIR``: every problem of a user's dataset at once.

One line a problem, each naming the file: an image that cannot be read, a missing mask, a mask
whose size is not its image's, a label ≥ K that is not the ignore label, an unknown colour of a
colour-coded mask, an id of a split list without files, an empty split. Then what the data are:
the images per split, the classes present, the pixel frequency of each class in the training
split with its median-frequency weight (what ``stage --class-weights median-frequency``
computes), the range of image sizes. ``ok`` is False when any problem was found.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .description import IGNORE_LABEL
from .errors import DatasetError
from .folder import FolderFiles, describe_folder, read_label, split_ids


@dataclass
class CheckReport:
    problems: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    pixels: dict[str, np.ndarray] = field(default_factory=dict)   # split → pixels per class

    @property
    def ok(self) -> bool:
        return not self.problems


def check_folder(root: str | Path, num_classes: int | None = None, ignore_label: int = IGNORE_LABEL,
                 progress: bool = False) -> CheckReport:
    """Describe the folder (``describe_folder``; a folder that cannot be described is its one
    problem), then ``check_description``."""
    try:
        description = describe_folder(root, num_classes=num_classes, ignore_label=ignore_label)
    except DatasetError as err:
        return CheckReport(problems=[str(err).splitlines()[0]])
    return check_description(description, progress)


def check_description(description, progress: bool = False) -> CheckReport:
    """Every file of a user's folder, as its ``DatasetDescription`` (``describe_folder``) lays it out."""
    report = CheckReport()
    ignore_label = description.ignore_label
    files = FolderFiles(description.root, description.layout)
    k = description.num_classes
    colours = description.colours if description.label_colours else None
    sizes = []
    present: dict[str, set] = {}
    for split in description.splits:
        ids = split_ids(description, split)
        source = description.split_files[split]
        listed = source if isinstance(source, Path) else f"the default {split} split"
        if not ids:
            report.problems.append(f"{listed}: the {split} split is empty")
        pixels = np.zeros(k, dtype=np.int64)
        present_in = np.zeros(k, dtype=np.int64)
        iterator = ids
        if progress:
            from tqdm import tqdm

            iterator = tqdm(ids, desc=f"checking {split}", unit="image", leave=False)
        for sample_id in iterator:
            image_path, label_path = files.image_path(sample_id), files.label_path(sample_id)
            if not image_path.is_file() and not label_path.is_file():
                report.problems.append(f"{listed}: id {sample_id!r} has no files (no {image_path.name} "
                                       f"in {files.image_dir}, no {label_path})")
                continue
            size = None
            if not image_path.is_file():
                report.problems.append(f"{image_path}: missing (id {sample_id!r} of {listed})")
            else:
                try:
                    with Image.open(image_path) as image:
                        image.load()
                        size = (image.height, image.width)
                        if image.mode not in ("RGB", "L", "P", "RGBA", "CMYK"):
                            report.problems.append(f"{image_path}: image mode {image.mode} (8-bit RGB expected)")
                    sizes.append(size)
                except (OSError, ValueError, Image.DecompressionBombError) as err:
                    report.problems.append(f"{image_path}: unreadable image ({type(err).__name__}: {err})")
            if not label_path.is_file():
                report.problems.append(f"{label_path}: mask missing (id {sample_id!r} of {listed})")
                continue
            try:
                label = read_label(label_path, colours, ignore_label)
            except ValueError as err:
                report.problems.append(str(err) if str(label_path) in str(err)
                                       else f"{label_path}: {err}")
                continue
            except OSError as err:
                report.problems.append(f"{label_path}: unreadable mask ({type(err).__name__}: {err})")
                continue
            if size is not None and label.shape != size:
                report.problems.append(f"{label_path}: mask is {label.shape[0]}×{label.shape[1]} (H×W) "
                                       f"but its image {image_path.name} is {size[0]}×{size[1]}")
            values = label[label != IGNORE_LABEL].astype(np.int64)
            bad = np.unique(values[values >= k])
            if bad.size:
                report.problems.append(f"{label_path}: label{'s' if bad.size > 1 else ''} "
                                       f"{', '.join(map(str, bad[:8].tolist()))} ≥ {k} classes and not the "
                                       f"ignore label {ignore_label}")
                values = values[values < k]
            counts = np.bincount(values, minlength=k)
            pixels += counts
            present_in[counts > 0] += values.size
        report.pixels[split] = pixels
        present[split] = set(np.nonzero(pixels)[0].tolist())
        report.lines.append(f"{split}: {len(ids)} images ({listed})")
        if split == description.splits[0]:
            train_pixels, train_present_in = pixels, present_in
    names = description.classes
    report.lines.insert(0, f"{description.title}: {k} classes ({', '.join(names)}), ignore label "
                           f"{ignore_label}" + (", colour-coded masks" if description.label_colours else ""))
    for split in description.splits:
        shown = [names[c] for c in sorted(present.get(split, ()))]
        report.lines.append(f"classes present in {split}: {len(shown)} of {k}: {', '.join(shown) or 'none'}")
    absent = [names[c] for c in range(k) if c not in present.get(description.splits[0], set())]
    if absent:
        report.lines.append(f"note: never in the training labels: {', '.join(absent)}")
    total = max(int(train_pixels.sum()), 1)
    from reproduce.training.ablations import median_frequency_from_counts

    weights = median_frequency_from_counts(train_pixels, train_present_in) if train_pixels.any() else None
    width = max(len(n) for n in names)
    report.lines.append(f"{'class':<{width}}  train pixels  fraction  median-frequency weight")
    for c, name in enumerate(names):
        weight = f"{weights['weights'][c]:.4f}" if weights else "-"
        report.lines.append(f"{name:<{width}}  {int(train_pixels[c]):>12}  {train_pixels[c] / total:8.4f}  {weight}")
    if sizes:
        heights, widths = [s[0] for s in sizes], [s[1] for s in sizes]
        report.lines.append(f"image sizes (H×W): {min(heights)}-{max(heights)} × {min(widths)}-{max(widths)} "
                            f"over {len(sizes)} images")
    return report

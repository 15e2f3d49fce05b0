"""A small, learnable, synthetic segmentation dataset in the VOC and SBD layouts.

For the demo and the tests: no download needed. Images use the 21-class VOC label space
with a handful of classes present; each class is one shape drawn in its own colour with
its own texture, on a smooth noisy grey background, at random sizes and positions, in
images of 48–96 px per side. The VOC copy has a 2-px 255 "void" band along every label
boundary (as VOC's annotations have); the SBD copy, like SBD, has none. Everything is
deterministic from the seed.

Written as the reference release lays its data out (``data/`` of fcn.berkeleyvision.org)::

    <root>/pascal/VOC2011/JPEGImages/<id>.jpg
    <root>/pascal/VOC2011/SegmentationClass/<id>.png        VOC palette PNG
    <root>/pascal/VOC2011/ImageSets/Segmentation/{train,val,seg11valid}.txt
    <root>/sbdd/dataset/img/<id>.jpg
    <root>/sbdd/dataset/cls/<id>.mat                        GTcls.Segmentation (uint8)
    <root>/sbdd/dataset/{train,val}.txt
    <root>/classes.txt
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from reproduce.evaluation.score import save_palette_png
from .voc import VOC_CLASSES, VOC_MEAN_BGR

# class index → (RGB colour, shape, texture); all colours saturated, the background grey.
SYNTHETIC_CLASSES = {
    1: ((220, 50, 40), "ellipse", "horizontal"),    # aeroplane
    7: ((40, 80, 230), "rectangle", "checker"),     # car
    8: ((240, 205, 30), "disc", "dots"),            # cat
    12: ((40, 190, 70), "triangle", "vertical"),    # dog
    15: ((200, 60, 220), "diamond", "diagonal"),    # person
}
JPEG_QUALITY = 95
MIN_SIDE, MAX_SIDE = 48, 96


@dataclass(frozen=True)
class SyntheticDataset:
    """Where ``make_synthetic_dataset`` wrote what."""

    root: Path
    voc_dir: Path
    sbdd_dir: Path
    classes_file: Path
    train_ids: tuple[str, ...]
    val_ids: tuple[str, ...]
    class_indices: tuple[int, ...]


def _shape_mask(kind: str, height: int, width: int, center, radii) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    (cy, cx), (ry, rx) = center, radii
    dy, dx = (y - cy) / ry, (x - cx) / rx
    if kind == "ellipse":
        return dy ** 2 + dx ** 2 <= 1
    if kind == "disc":
        radius = min(ry, rx)
        return (y - cy) ** 2 + (x - cx) ** 2 <= radius ** 2
    if kind == "rectangle":
        return (np.abs(dy) <= 1) & (np.abs(dx) <= 1)
    if kind == "diamond":
        return np.abs(dy) + np.abs(dx) <= 1
    if kind == "triangle":  # apex up: half-width grows linearly from apex to base
        return (np.abs(dy) <= 1) & (np.abs(dx) <= (dy + 1) / 2)
    raise ValueError(f"unknown shape {kind!r}")


def _texture(kind: str, height: int, width: int, period: int, phase: int) -> np.ndarray:
    """A 0/1 pattern of the given kind."""
    y, x = np.mgrid[0:height, 0:width]
    y, x = y + phase, x + phase
    if kind == "horizontal":
        return (y // period) % 2
    if kind == "vertical":
        return (x // period) % 2
    if kind == "checker":
        return (y // period + x // period) % 2
    if kind == "diagonal":
        return ((x + y) // period) % 2
    if kind == "dots":
        return ((y % period < period // 2) & (x % period < period // 2)).astype(int)
    raise ValueError(f"unknown texture {kind!r}")


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth, low-saturation grey field plus pixel noise (float RGB)."""
    grid = rng.uniform(70, 180, size=(3, 3, 1)) + rng.uniform(-12, 12, size=(3, 3, 3))
    field = np.stack([np.asarray(Image.fromarray(grid[:, :, c].astype(np.float32))
                                 .resize((width, height), Image.BILINEAR)) for c in range(3)], axis=2)
    return field + rng.normal(0, 10, size=(height, width, 3))


def _void_band(label: np.ndarray) -> np.ndarray:
    """Pixels on either side of a label change (4-neighbourhood): a 2-px band."""
    band = np.zeros(label.shape, dtype=bool)
    vertical = label[1:, :] != label[:-1, :]
    horizontal = label[:, 1:] != label[:, :-1]
    band[1:, :] |= vertical
    band[:-1, :] |= vertical
    band[:, 1:] |= horizontal
    band[:, :-1] |= horizontal
    return band


def synthetic_sample(rng: np.random.Generator, classes=tuple(SYNTHETIC_CLASSES),
                     sides: tuple[int, int] = (MIN_SIDE, MAX_SIDE)):
    """One (RGB uint8 image H×W×3, label H×W uint8 without void) pair, sides in ``sides``."""
    height, width = (int(v) for v in rng.integers(sides[0], sides[1] + 1, size=2))
    image = _background(rng, height, width)
    label = np.zeros((height, width), dtype=np.uint8)
    for _ in range(int(rng.integers(1, 4))):
        class_index = int(rng.choice(classes))
        colour, shape, texture = SYNTHETIC_CLASSES[class_index]
        radii = (rng.uniform(0.15, 0.35) * height, rng.uniform(0.15, 0.35) * width)
        center = (rng.uniform(radii[0] * 0.5, height - radii[0] * 0.5),
                  rng.uniform(radii[1] * 0.5, width - radii[1] * 0.5))
        mask = _shape_mask(shape, height, width, center, radii)
        if mask.sum() < 16:
            continue
        pattern = _texture(texture, height, width, period=int(rng.integers(3, 6)), phase=int(rng.integers(0, 6)))
        shade = (0.7 + 0.3 * pattern)[..., None] * (np.asarray(colour) + rng.normal(0, 8, size=3))
        painted = shade + rng.normal(0, 8, size=(height, width, 3))
        image[mask] = painted[mask]
        label[mask] = class_index
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), label


def _write_split(path: Path, ids) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{sample_id}\n" for sample_id in ids))


def write_sbd_label(path: str | Path, label: np.ndarray) -> None:
    """An SBD ``cls`` file: struct ``GTcls`` with ``Segmentation`` (uint8) and ``CategoriesPresent``."""
    import scipy.io

    present = np.array([c for c in np.unique(label) if 0 < c < 255], dtype=np.uint8).reshape(-1, 1)
    scipy.io.savemat(str(path), {"GTcls": {"Segmentation": np.asarray(label, dtype=np.uint8),
                                           "CategoriesPresent": present}})


def make_synthetic_dataset(root: str | Path, n_train: int = 40, n_val: int = 12, seed: int = 0,
                           classes=tuple(SYNTHETIC_CLASSES),
                           sides: tuple[int, int] = (MIN_SIDE, MAX_SIDE)) -> SyntheticDataset:
    """Write ``n_train`` + ``n_val`` synthetic samples in both layouts under ``root``."""
    if n_train < 1 or n_val < 1:
        raise ValueError(f"need at least one training and one validation sample, got {n_train}, {n_val}")
    unknown = [c for c in classes if c not in SYNTHETIC_CLASSES]
    if unknown:
        raise ValueError(f"no synthetic appearance for classes {unknown}; choose from {sorted(SYNTHETIC_CLASSES)}")
    root = Path(root)
    voc_dir = root / "pascal" / "VOC2011"
    sbdd_dir = root / "sbdd" / "dataset"
    for folder in (voc_dir / "JPEGImages", voc_dir / "SegmentationClass", sbdd_dir / "img", sbdd_dir / "cls"):
        folder.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(seed)
    ids = [f"synth_{i:05d}" for i in range(n_train + n_val)]
    for sample_id in ids:
        image, label = synthetic_sample(rng, tuple(classes), sides)
        for image_path in (voc_dir / "JPEGImages" / f"{sample_id}.jpg", sbdd_dir / "img" / f"{sample_id}.jpg"):
            Image.fromarray(image).save(image_path, quality=JPEG_QUALITY, subsampling=0)
        voc_label = label.copy()
        voc_label[_void_band(label)] = 255
        save_palette_png(voc_dir / "SegmentationClass" / f"{sample_id}.png", voc_label)
        write_sbd_label(sbdd_dir / "cls" / f"{sample_id}.mat", label)

    train_ids, val_ids = tuple(ids[:n_train]), tuple(ids[n_train:])
    splits = voc_dir / "ImageSets" / "Segmentation"
    _write_split(splits / "train.txt", train_ids)
    _write_split(splits / "val.txt", val_ids)
    _write_split(splits / "seg11valid.txt", val_ids)  # disjoint from SBD train, as the real one
    _write_split(sbdd_dir / "train.txt", train_ids)
    _write_split(sbdd_dir / "val.txt", val_ids)
    classes_file = root / "classes.txt"
    classes_file.write_text("\n".join(VOC_CLASSES) + "\n")
    return SyntheticDataset(root, voc_dir, sbdd_dir, classes_file, train_ids, val_ids,
                            tuple(sorted(classes)))


def classification_samples(voc_dir: str | Path, ids, size: int = 32, mean=VOC_MEAN_BGR):
    """Crops for pre-training a classifier on the same data: ``(images, labels)``.

    For every image and every class present (background included), the bounding box of
    that class's pixels is cropped, resized to ``size × size`` and labelled with the
    class holding most non-void pixels of the crop. Images are Caffe-preprocessed like
    the segmentation inputs (``N × 3 × size × size`` float32 BGR minus ``mean``); labels
    are int64 class indices.
    """
    voc_dir = Path(voc_dir)
    mean = np.array(mean)
    crops, targets = [], []
    for sample_id in ids:
        image_path = voc_dir / "JPEGImages" / f"{sample_id}.jpg"
        with Image.open(voc_dir / "SegmentationClass" / f"{sample_id}.png") as label_image:
            label = np.array(label_image, dtype=np.uint8)
        with Image.open(image_path) as rgb:
            rgb = rgb.convert("RGB")
            for class_index in np.unique(label):
                if class_index == 255:
                    continue
                rows, cols = np.nonzero(label == class_index)
                box = (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
                counts = np.bincount(label[box[1]:box[3], box[0]:box[2]].ravel(), minlength=256)[:255]
                crop = rgb.crop(box).resize((size, size), Image.BILINEAR)
                crop_array = np.asarray(crop, dtype=np.float32)[:, :, ::-1] - mean
                crops.append(crop_array.transpose(2, 0, 1).astype(np.float32))
                targets.append(int(counts.argmax()))
    return np.stack(crops), np.asarray(targets, dtype=np.int64)

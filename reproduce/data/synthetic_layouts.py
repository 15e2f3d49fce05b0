"""Small generated datasets in the NYUDv2, SIFT Flow and PASCAL-Context layouts of the release.

For the tests and small-scale runs of those datasets' stages: the images and shapes of
``reproduce.data.synthetic`` (a few textured shapes on a noisy background), written as the
reference data layers read them, with each dataset's own label encoding:

* ``make_synthetic_nyud(root)`` → ``<root>/nyud``: ``{trainval,test}.txt`` (image numbers),
  ``data/images/img_<id>.png`` (RGB), ``data/depth/img_<id>.png`` (16-bit depth in mm,
  larger inside the shapes), ``data/hha/img_<id>.png`` (an RGB encoding of the depth), and
  ``segmentation/img_<id>.mat`` (``segmentation``: 0 void, classes 1–40);
* ``make_synthetic_siftflow(root)`` → ``<root>/sift-flow``: ``{trainval,test}.txt``, the
  ``Images``/``SemanticLabels``/``GeoLabels`` folders of the 256×256 release (``S``: semantic
  0 void, 1–33; geometric -1/0 void, 1 sky, 2 horizontal, 3 vertical);
* ``make_synthetic_pascalcontext(root)`` → ``<root>/pascal/VOC2010`` (``ImageSets/Main/
  {train,val}.txt``, ``JPEGImages``) and ``<root>/pascal-context`` (``labels.txt``,
  ``59_labels.txt``, ``trainval/<id>.mat`` with ``LabelMap`` over the full label list).

Deterministic from the seed. Each returns ``{split: ids}``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .siftflow import _SUBDIR as SIFTFLOW_SUBDIR
from .synthetic import JPEG_QUALITY, MAX_SIDE, MIN_SIDE, SYNTHETIC_CLASSES, synthetic_sample

_CLASSES = tuple(SYNTHETIC_CLASSES)


def _samples(seed: int, ids, sides=(MIN_SIDE, MAX_SIDE)):
    rng = np.random.default_rng(seed)
    for sample_id in ids:
        image, label = synthetic_sample(rng, _CLASSES, sides)
        yield sample_id, image, label, rng


def _write_list(path: Path, ids) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{i}\n" for i in ids))


def _savemat(path: Path, **variables) -> None:
    import scipy.io

    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(str(path), variables)


def _split_ids(names: tuple[str, str], counts: tuple[int, int], make_id) -> dict[str, list[str]]:
    if min(counts) < 1:
        raise ValueError(f"need at least one sample per split, got {counts}")
    ids = [make_id(i) for i in range(sum(counts))]
    return {names[0]: ids[:counts[0]], names[1]: ids[counts[0]:]}


def make_synthetic_nyud(root: str | Path, n_trainval: int = 4, n_test: int = 2, seed: int = 0):
    """NYUDv2 in the release's ``data/nyud`` layout (see the module docstring)."""
    nyud = Path(root) / "nyud"
    splits = _split_ids(("trainval", "test"), (n_trainval, n_test), lambda i: f"{5001 + i:04d}")
    for folder in ("images", "depth", "hha"):
        (nyud / "data" / folder).mkdir(parents=True, exist_ok=True)
    for sample_id, image, label, rng in _samples(seed, [i for ids in splits.values() for i in ids]):
        Image.fromarray(image).save(nyud / "data" / "images" / f"img_{sample_id}.png")
        depth = (1500 + 1000 * (label > 0) + rng.integers(0, 200, size=label.shape)).astype(np.uint16)
        Image.fromarray(depth).save(nyud / "data" / "depth" / f"img_{sample_id}.png")
        code = depth.astype(np.int32) // 16
        hha = np.stack([code, 255 - code, label.astype(np.int32) * 12], axis=-1)
        Image.fromarray(np.clip(hha, 0, 255).astype(np.uint8)).save(nyud / "data" / "hha" / f"img_{sample_id}.png")
        # the synthetic classes (1–15) and background (→ class 20) as NYUDv2 classes 1–40
        _savemat(nyud / "segmentation" / f"img_{sample_id}.mat",
                 segmentation=np.where(label > 0, label, 20).astype(np.uint8))
    for split, ids in splits.items():
        _write_list(nyud / f"{split}.txt", ids)
    return splits


def make_synthetic_siftflow(root: str | Path, n_trainval: int = 4, n_test: int = 2, seed: int = 0):
    """SIFT Flow in the release's ``data/sift-flow`` layout, both label maps."""
    siftflow = Path(root) / "sift-flow"
    splits = _split_ids(("trainval", "test"), (n_trainval, n_test), lambda i: f"coast_synth{i:04d}")
    for sample_id, image, label, _rng in _samples(seed, [i for ids in splits.values() for i in ids]):
        image_path = siftflow / "Images" / SIFTFLOW_SUBDIR / f"{sample_id}.jpg"
        image_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(image_path, quality=JPEG_QUALITY, subsampling=0)
        semantic = np.where(label > 0, label + 10, 0).astype(np.int32)  # 0 void, classes 11–25
        height = label.shape[0]
        geometric = np.full(label.shape, 3, dtype=np.int32)             # vertical
        geometric[: height // 3] = 1                                    # sky on top
        geometric[height - height // 4:] = 2                            # ground below
        geometric[label > 0] = 3
        geometric[0, :] = -1                                            # a void row (-1 → 255)
        _savemat(siftflow / "SemanticLabels" / SIFTFLOW_SUBDIR / f"{sample_id}.mat", S=semantic)
        _savemat(siftflow / "GeoLabels" / SIFTFLOW_SUBDIR / f"{sample_id}.mat", S=geometric)
    for split, ids in splits.items():
        _write_list(siftflow / f"{split}.txt", ids)
    return splits


def make_synthetic_pascalcontext(root: str | Path, n_train: int = 4, n_val: int = 2, seed: int = 0):
    """PASCAL-Context: VOC2010 images and the 59-class labels over a 70-name full list."""
    root = Path(root)
    voc2010 = root / "pascal" / "VOC2010"
    context = root / "pascal-context"
    splits = _split_ids(("train", "val"), (n_train, n_val), lambda i: f"2008_{i:06d}")
    full = [f"thing{i}" for i in range(1, 71)]
    task = full[5:64]  # 59 of them, not in list order's first places
    context.mkdir(parents=True, exist_ok=True)
    (context / "labels.txt").write_text("".join(f"{i}: {name}\n" for i, name in enumerate(full, 1)))
    (context / "59_labels.txt").write_text("".join(f"{i}: {name}\n" for i, name in enumerate(task, 1)))
    (voc2010 / "JPEGImages").mkdir(parents=True, exist_ok=True)
    for sample_id, image, label, _rng in _samples(seed, [i for ids in splits.values() for i in ids]):
        Image.fromarray(image).save(voc2010 / "JPEGImages" / f"{sample_id}.jpg", quality=JPEG_QUALITY,
                                    subsampling=0)
        # background → full label 70 (outside the task: class 0); shapes → task classes
        full_label = np.where(label > 0, label + 5, 70).astype(np.uint16)
        _savemat(context / "trainval" / f"{sample_id}.mat", LabelMap=full_label)
    for split, ids in splits.items():
        _write_list(voc2010 / "ImageSets" / "Main" / f"{split}.txt", ids)
    return splits

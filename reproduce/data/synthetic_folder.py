"""A small generated dataset in a user's layouts (``reproduce.data.folder``): for tests and trying
``--dataset`` out without data.

``make_folder_dataset(root, layout)`` writes images of varied sizes with five classes
(background and four textured shapes of ``reproduce.data.synthetic``) as ``folder``
(class-index PNGs, no split lists: the default split), ``voc-style`` (palette PNGs with a void
band, split lists) or ``colour`` (the folder layout with colour-coded RGB masks and a
``classes.txt`` of ``name R G B`` lines).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .synthetic import JPEG_QUALITY, _void_band, synthetic_sample

# synthetic class index → the class of the generated dataset
_CLASS_OF = {0: 0, 1: 1, 7: 2, 8: 3, 12: 4}
FOLDER_CLASSES = (("background", (0, 0, 0)), ("plane", (220, 50, 40)), ("car", (40, 80, 230)),
                  ("cat", (240, 205, 30)), ("dog", (40, 190, 70)))


def make_folder_dataset(root: str | Path, layout: str = "folder", n: int = 12, seed: int = 0,
                        sides: tuple[int, int] = (40, 72), n_val: int = 3) -> Path:
    """Write ``n`` samples in ``layout`` (``folder``, ``voc-style`` or ``colour``) under ``root``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    images, labels = (("JPEGImages", "SegmentationClass") if layout == "voc-style" else ("images", "labels"))
    (root / images).mkdir(parents=True, exist_ok=True)
    (root / labels).mkdir(parents=True, exist_ok=True)
    lookup = np.zeros(256, dtype=np.uint8)
    for source, target in _CLASS_OF.items():
        lookup[source] = target
    ids = [f"img{i:03d}" for i in range(n)]
    for index, sample_id in enumerate(ids):
        image, label = synthetic_sample(rng, (1, 7, 8, 12), sides)
        label = lookup[label]
        suffix = ".png" if index % 3 == 2 else ".jpg"   # both kinds of image files
        image_file = root / images / f"{sample_id}{suffix}"
        if suffix == ".png":
            Image.fromarray(image).save(image_file)
        else:
            Image.fromarray(image).save(image_file, quality=JPEG_QUALITY, subsampling=0)
        if layout == "colour":
            colours = np.array([c for _, c in FOLDER_CLASSES], dtype=np.uint8)
            Image.fromarray(colours[label]).save(root / labels / f"{sample_id}.png")
        elif layout == "voc-style":
            label = label.copy()
            label[_void_band(label)] = 255
            from reproduce.evaluation.score import save_palette_png

            save_palette_png(root / labels / f"{sample_id}.png", label)
        else:
            Image.fromarray(label, mode="L").save(root / labels / f"{sample_id}.png")
    if layout == "voc-style":
        split_dir = root / "ImageSets" / "Segmentation"
        split_dir.mkdir(parents=True, exist_ok=True)
        (split_dir / "train.txt").write_text("".join(f"{i}\n" for i in ids[n_val:]))
        (split_dir / "val.txt").write_text("".join(f"{i}\n" for i in ids[:n_val]))
        (root / "classes.txt").write_text("".join(f"{name}\n" for name, _ in FOLDER_CLASSES))
    if layout == "colour":
        (root / "classes.txt").write_text("".join(f"{name} {r} {g} {b}\n" for name, (r, g, b) in FOLDER_CLASSES))
    return root

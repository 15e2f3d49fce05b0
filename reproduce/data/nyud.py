"""NYUDv2 (the 40-class task of Gupta et al.), as ``nyud_layers.NYUDSegDataLayer`` reads it.

The tops are chosen by the ``tops`` parameter, in its order, from ``color`` (BGR minus the
float32 mean (116.190, 97.203, 92.318)), ``depth`` (``log`` of the depth PNG minus 7.844,
``1 × H × W``), ``hha`` (HHA PNG minus (132.431, 94.076, 118.477), not channel-swapped) and
``label`` (``segmentation`` of the ``.mat`` as uint8 minus 1: void 0 wraps around to 255).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import SplitDataset
from .preprocess import open_image_array, read_mat_variable

from .fetch import Archive, DatasetRelease, Derived, SplitCount, release_file

# The release's data facts (``python -m reproduce data fetch nyud``): nyud.tar.gz, the release's
# own packing of NYUDv2 for its data layer (data/images, data/depth, segmentation under a top
# folder nyud/, or at the archive's root), becomes nyud_dir. The release's split lists
# (data/nyud/: train 381, val 414, test 654 ids) are placed where the archive has none;
# trainval.txt, the split the nets train on, is train + val (795) when absent. The HHA images
# the HHA nets read (data/hha) are in no archive the release names: they are computed from
# data/depth with Gupta et al.'s encoding (reproduce.data.hha) for every id lacking one.
_NYUD_SAMPLE = ("nyud/data/images/img_{id}.png", "nyud/data/depth/img_{id}.png", "nyud/segmentation/img_{id}.mat")
NYUD_RELEASE = DatasetRelease(
    "nyud", "NYUDv2, the 40-class task of Gupta et al., in the release's format",
    files=(Archive("nyud.tar.gz", ("http://dl.caffe.berkeleyvision.org/nyud.tar.gz",), members=(("", "nyud"),),
                   roots=("nyud", ""), expect=("data/images", "segmentation")),
           release_file("data/nyud/train.txt", "bb81542035299d06fe9fb9f03398824fb4861252", "nyud/train.txt"),
           release_file("data/nyud/val.txt", "48e9b1cd3804d68e4897c3422031e665f8097078", "nyud/val.txt"),
           release_file("data/nyud/test.txt", "ea2a0e505c795dfe044f047e0f508b12e1453fad", "nyud/test.txt")),
    splits=(SplitCount("nyud/trainval.txt", 795, _NYUD_SAMPLE), SplitCount("nyud/test.txt", 654, _NYUD_SAMPLE)),
    joins=(("nyud/trainval.txt", ("nyud/train.txt", "nyud/val.txt")),),
    derived=(Derived("HHA images", "nyud/data/hha/img_{id}.png",
                     ("nyud/train.txt", "nyud/val.txt", "nyud/trainval.txt", "nyud/test.txt"),
                     "reproduce.data.hha:derive_nyud_hha", "python -m reproduce data hha --dir {dir}"),),
    note="HHA images (data/hha) are in no archive of the release: computed from data/depth with Gupta "
         "et al.'s encoding, mask depth == 0 (not byte-identical to Gupta's, whose mask is the raw depth's "
         "holes); ones already there (e.g. Gupta's own) are kept")

NYUD_MEAN_BGR = np.array((116.190, 97.203, 92.318), dtype=np.float32)
NYUD_MEAN_HHA = np.array((132.431, 94.076, 118.477), dtype=np.float32)
NYUD_MEAN_LOGD = np.array((7.844,), dtype=np.float32)
NYUD_TOPS = ("color", "depth", "hha", "label")


class NYUDSegmentation(SplitDataset):
    dataset_name = "NYUDv2"
    layout = ("  {root}/{split}.txt                       one image number a line\n"
              "  {root}/data/images/img_<id>.png          RGB image (top color)\n"
              "  {root}/data/depth/img_<id>.png           depth PNG (top depth)\n"
              "  {root}/data/hha/img_<id>.png             HHA PNG (top hha)\n"
              "  {root}/segmentation/img_<id>.mat         variable segmentation, 0 void, 1–40 (top label)")

    def __init__(self, nyud_dir: str | Path, split: str, tops=("color", "label"), check_files: bool = True):
        unknown = [top for top in tops if top not in NYUD_TOPS]
        if unknown or not tops:
            raise ValueError(f"NYUDv2 tops must be chosen from {NYUD_TOPS}, got {list(tops)}")
        self.tops = tuple(tops)
        super().__init__(nyud_dir, split, check_files)

    def split_path(self) -> Path:
        return self.root / f"{self.split}.txt"

    def path(self, top: str, sample_id: str) -> Path:
        if top == "label":
            return self.root / "segmentation" / f"img_{sample_id}.mat"
        folder = {"color": "images", "depth": "depth", "hha": "hha"}[top]
        return self.root / "data" / folder / f"img_{sample_id}.png"

    def sample_paths(self, sample_id: str):
        return tuple(self.path(top, sample_id) for top in self.tops)

    def load_top(self, top: str, sample_id: str) -> np.ndarray:
        path = self.path(top, sample_id)
        if top == "color":
            return self.caffe_image(path, NYUD_MEAN_BGR)
        if top == "label":
            label = read_mat_variable(path, "segmentation", "an NYUDv2 label").astype(np.uint8)
            label -= 1  # classes 0–39; void (0) wraps around to 255
            return label[np.newaxis, ...]
        if top == "depth":
            depth = np.log(open_image_array(path, np.float32))
            depth -= NYUD_MEAN_LOGD
            return depth[np.newaxis, ...]
        hha = open_image_array(path, np.float32)
        hha -= NYUD_MEAN_HHA
        return np.ascontiguousarray(hha.transpose((2, 0, 1)))

    def load(self, sample_id: str):
        arrays = tuple(self.load_top(top, sample_id) for top in self.tops)
        sizes = {array.shape[-2:] for array in arrays}
        if len(sizes) > 1:
            described = ", ".join(f"{self.path(top, sample_id)} {array.shape[-2]}×{array.shape[-1]}"
                                  for top, array in zip(self.tops, arrays))
            raise ValueError(f"NYUDv2 sample {sample_id}: sizes differ: {described}")
        return arrays

"""SIFT Flow, as ``siftflow_layers.SIFTFlowSegDataLayer`` of the reference reads it.

Three tops: the image (BGR minus the fixed float32 mean (114.578, 115.294, 108.353)), the
semantic label and the geometric label, both ``1 × H × W`` uint8. The ``.mat`` labels
(variable ``S``) count classes from 1 with 0 as void; the reference casts to uint8 and
subtracts 1, so void wraps around to 255. Geometric labels of -1 are first set to 0 (and so
also end as 255).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import SplitDataset
from .preprocess import check_same_size, read_mat_variable, with_channel_axis

from .fetch import Archive, DatasetRelease, SplitCount, release_file

# The release's data facts (``python -m reproduce data fetch siftflow``): SiftFlowDataset.zip
# holds Images/, SemanticLabels/, GeoLabels/ (each with the spatial_envelope_… folder) under
# SiftFlowDataset/ or at its root; they become siftflow_dir. The splits are the release's own
# (data/sift-flow/: 2,486 trainval and 200 test ids — the 2,688 images less the unannotated ones).
_SIFTFLOW_SAMPLE = tuple(f"sift-flow/{folder}/spatial_envelope_256x256_static_8outdoorcategories/{{id}}.{ext}"
                         for folder, ext in (("Images", "jpg"), ("SemanticLabels", "mat"), ("GeoLabels", "mat")))
SIFTFLOW_RELEASE = DatasetRelease(
    "siftflow", "SIFT Flow (Liu et al.), semantic and geometric labels",
    files=(Archive("SiftFlowDataset.zip", ("http://www.cs.unc.edu/~jtighe/Papers/ECCV10/siftflow/SiftFlowDataset.zip",),
                   members=tuple((f, f"sift-flow/{f}") for f in ("Images", "SemanticLabels", "GeoLabels")),
                   roots=("SiftFlowDataset", "")),
           release_file("data/sift-flow/trainval.txt", "4080a5599e4e46699456a62dcd04d92b389416c8",
                        "sift-flow/trainval.txt"),
           release_file("data/sift-flow/test.txt", "6cf0a53f63d7c3c8bb135ffe2d87ef433693fb69", "sift-flow/test.txt")),
    splits=(SplitCount("sift-flow/trainval.txt", 2486, _SIFTFLOW_SAMPLE),
            SplitCount("sift-flow/test.txt", 200, _SIFTFLOW_SAMPLE)))

SIFTFLOW_MEAN_BGR = np.array((114.578, 115.294, 108.353), dtype=np.float32)
_SUBDIR = "spatial_envelope_256x256_static_8outdoorcategories"


class SIFTFlowSegmentation(SplitDataset):
    dataset_name = "SIFT Flow"
    tops = ("data", "sem", "geo")
    layout = ("  {root}/{split}.txt\n"
              f"  {{root}}/Images/{_SUBDIR}/<id>.jpg\n"
              f"  {{root}}/SemanticLabels/{_SUBDIR}/<id>.mat   variable S, 0 void, 1–33 classes\n"
              f"  {{root}}/GeoLabels/{_SUBDIR}/<id>.mat        variable S, -1/0 void, 1–3 classes")

    def split_path(self) -> Path:
        return self.root / f"{self.split}.txt"

    def image_path(self, sample_id: str) -> Path:
        return self.root / "Images" / _SUBDIR / f"{sample_id}.jpg"

    def label_path(self, sample_id: str, label_type: str) -> Path:
        folder = {"semantic": "SemanticLabels", "geometric": "GeoLabels"}[label_type]
        return self.root / folder / _SUBDIR / f"{sample_id}.mat"

    def sample_paths(self, sample_id: str):
        return (self.image_path(sample_id), self.label_path(sample_id, "semantic"),
                self.label_path(sample_id, "geometric"))

    def load_label(self, sample_id: str, label_type: str) -> np.ndarray:
        path = self.label_path(sample_id, label_type)
        label = read_mat_variable(path, "S", f"a SIFT Flow {label_type} label")
        if label_type == "geometric":
            label[label == -1] = 0
        label = label.astype(np.uint8)
        label -= 1  # classes start at 0; void (0) wraps around to 255
        return with_channel_axis(label, path).copy()

    def load(self, sample_id: str):
        image = self.caffe_image(self.image_path(sample_id), SIFTFLOW_MEAN_BGR)
        semantic = self.load_label(sample_id, "semantic")
        geometric = self.load_label(sample_id, "geometric")
        check_same_size(image, self.image_path(sample_id), semantic, self.label_path(sample_id, "semantic"))
        check_same_size(image, self.image_path(sample_id), geometric, self.label_path(sample_id, "geometric"))
        return image, semantic, geometric

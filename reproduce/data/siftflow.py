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
from .preprocess import check_same_size, load_caffe_image, read_mat_variable, with_channel_axis

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
        image = load_caffe_image(self.image_path(sample_id), SIFTFLOW_MEAN_BGR)
        semantic = self.load_label(sample_id, "semantic")
        geometric = self.load_label(sample_id, "geometric")
        check_same_size(image, self.image_path(sample_id), semantic, self.label_path(sample_id, "semantic"))
        check_same_size(image, self.image_path(sample_id), geometric, self.label_path(sample_id, "geometric"))
        return image, semantic, geometric

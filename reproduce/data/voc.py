"""PASCAL VOC and SBD segmentation datasets, as ``voc_layers.VOCSegDataLayer`` and
``voc_layers.SBDDSegDataLayer`` of the reference read them.

VOC: ``JPEGImages/<id>.jpg``, ``SegmentationClass/<id>.png`` (palette PNG read as its
indices), ``ImageSets/Segmentation/<split>.txt``. SBD: ``img/<id>.jpg``, ``cls/<id>.mat``
(``GTcls.Segmentation``, read with ``scipy.io.loadmat``), ``<split>.txt`` at the root.
A sample is ``(image, label)``: the image ``3 × H × W`` float32 BGR minus the mean, the
label ``1 × H × W`` uint8 (255 = void).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import SplitDataset
from .preprocess import (check_same_size, open_image_array, read_mat_variable,
                         with_channel_axis)

from .fetch import Archive, DatasetRelease, SplitCount, release_file

# The release's data facts (``reproduce.data.fetch``, ``python -m reproduce data fetch sbd voc2011``):
# SBD's benchmark.tgz holds benchmark_RELEASE/dataset/{img,cls,inst,train.txt,val.txt}, the
# reference's sbdd_dir; it trains on the 8,498 ids of train.txt (val.txt has 2,857). VOC2011's
# tar holds TrainVal/VOCdevkit/VOC2011, the reference's voc_dir, which it scores on the 736 ids
# of its own seg11valid.txt (data/pascal/ of the release), placed in ImageSets/Segmentation.
# Published checksums (md5, as their publishers give them) and mirrors, each with its source.
# The md5 pins the bytes, so a mirror cannot substitute others; the mirror is tried after the host.
TORCHVISION_SBD = "torchvision's dataset catalogue (torchvision/datasets/sbd.py, SBDataset.md5)"
TORCHVISION_VOC = "torchvision's dataset catalogue (torchvision/datasets/voc.py, DATASET_YEAR_DICT)"
VOC_HF_MIRROR = "https://huggingface.co/datasets/JimmyUnleashed/Pascal_VOC/resolve/main/"  # R torchvision's
SBD_RELEASE = DatasetRelease(
    "sbd", "SBD (Hariharan et al.), the training set of the VOC nets",
    files=(Archive("benchmark.tgz", ("https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/"
                                     "semantic_contours/benchmark.tgz",
                                     "http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/"
                                     "semantic_contours/benchmark.tgz"),
                   members=(("benchmark_RELEASE/dataset", "sbdd/dataset"),),
                   md5="82b4d87ceb2ed10f6038a1cba92111cb", md5_source=TORCHVISION_SBD),),
    splits=(SplitCount("sbdd/dataset/train.txt", 8498, ("sbdd/dataset/img/{id}.jpg", "sbdd/dataset/cls/{id}.mat")),
            SplitCount("sbdd/dataset/val.txt", 2857, ("sbdd/dataset/img/{id}.jpg", "sbdd/dataset/cls/{id}.mat"))))
VOC2011_RELEASE = DatasetRelease(
    "voc2011", "PASCAL VOC 2011, validated on seg11valid",
    files=(Archive("VOCtrainval_25-May-2011.tar",
                   ("http://host.robots.ox.ac.uk/pascal/VOC/voc2011/VOCtrainval_25-May-2011.tar",
                    VOC_HF_MIRROR + "VOCtrainval_25-May-2011.tar"),
                   members=(("TrainVal/VOCdevkit/VOC2011", "pascal/VOC2011"),),
                   md5="6c3384ef61512963050cb5d687e5bf1e", md5_source=TORCHVISION_VOC),
           release_file("data/pascal/seg11valid.txt", "dc143d96cbef27941a92fe028359eb919ded5723",
                        "pascal/VOC2011/ImageSets/Segmentation/seg11valid.txt")),
    splits=(SplitCount("pascal/VOC2011/ImageSets/Segmentation/seg11valid.txt", 736,
                       ("pascal/VOC2011/JPEGImages/{id}.jpg", "pascal/VOC2011/SegmentationClass/{id}.png")),))

# The reference's mean (BGR) in the upstream prototxts' param_str.
VOC_MEAN_BGR = (104.00699, 116.66877, 122.67892)

# The 21 PASCAL VOC classes in model output order (label 255 is void).
VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)


class VOCSegmentation(SplitDataset):
    """PASCAL VOC segmentation (``voc_dir`` is e.g. ``data/pascal/VOC2011``)."""

    dataset_name = "PASCAL VOC"
    layout = ("  {root}/ImageSets/Segmentation/{split}.txt   one image id a line\n"
              "  {root}/JPEGImages/<id>.jpg                  RGB image\n"
              "  {root}/SegmentationClass/<id>.png           palette PNG of class indices, 255 void")

    def __init__(self, voc_dir: str | Path, split: str, mean=VOC_MEAN_BGR, check_files: bool = True):
        self.mean = np.array(mean)  # as the reference: np.array(params['mean']), float64
        super().__init__(voc_dir, split, check_files)

    def split_path(self) -> Path:
        return self.root / "ImageSets" / "Segmentation" / f"{self.split}.txt"

    def image_path(self, sample_id: str) -> Path:
        return self.root / "JPEGImages" / f"{sample_id}.jpg"

    def label_path(self, sample_id: str) -> Path:
        return self.root / "SegmentationClass" / f"{sample_id}.png"

    def sample_paths(self, sample_id: str):
        return (self.image_path(sample_id), self.label_path(sample_id))

    def load_image(self, sample_id: str) -> np.ndarray:
        return self.caffe_image(self.image_path(sample_id), self.mean)

    def load_label(self, sample_id: str) -> np.ndarray:
        path = self.label_path(sample_id)
        return with_channel_axis(open_image_array(path, np.uint8), path)

    def load(self, sample_id: str) -> tuple[np.ndarray, np.ndarray]:
        image, label = self.load_image(sample_id), self.load_label(sample_id)
        check_same_size(image, self.image_path(sample_id), label, self.label_path(sample_id))
        return image, label


class SBDSegmentation(VOCSegmentation):
    """The SBD extended VOC labelling (``sbdd_dir`` is e.g. ``data/sbdd/dataset``)."""

    dataset_name = "SBD"
    layout = ("  {root}/{split}.txt           one image id a line\n"
              "  {root}/img/<id>.jpg          RGB image\n"
              "  {root}/cls/<id>.mat          MATLAB struct GTcls with field Segmentation (H×W)")

    def split_path(self) -> Path:
        return self.root / f"{self.split}.txt"

    def image_path(self, sample_id: str) -> Path:
        return self.root / "img" / f"{sample_id}.jpg"

    def label_path(self, sample_id: str) -> Path:
        return self.root / "cls" / f"{sample_id}.mat"

    def load_label(self, sample_id: str) -> np.ndarray:
        path = self.label_path(sample_id)
        return with_channel_axis(load_sbd_segmentation(path), path)


def load_sbd_segmentation(path: str | Path) -> np.ndarray:
    """``loadmat(path)['GTcls'][0]['Segmentation'][0]`` as uint8, the reference's indexing
    (read straight from the file by ``reproduce.data.sbd_mat`` where its layout is SBD's: the
    same array at half the cost; any other file through loadmat)."""
    from .sbd_mat import read_segmentation

    fast = read_segmentation(path)
    if fast is not None:
        return fast
    what = "an SBD class label (a struct GTcls with a Segmentation field)"
    gtcls = read_mat_variable(path, "GTcls", what)
    try:
        segmentation = gtcls[0]["Segmentation"][0]
    except (KeyError, IndexError, ValueError, TypeError) as error:
        raise ValueError(f"{path}: not {what}: {type(error).__name__}: {error}") from None
    return np.asarray(segmentation).astype(np.uint8)

"""PASCAL-Context (the 59-class task), as ``pascalcontext_layers.PASCALContextSegDataLayer``.

Images come from ``<voc_dir>/VOC2010`` (BGR minus the float32 mean (104.007, 116.669,
122.679)); labels from ``<context_dir>/trainval/<id>.mat`` (variable ``LabelMap`` over the
full label list of ``labels.txt``), translated to the 59 classes of ``59_labels.txt``:
class ``i`` (from 1) is the pixels whose full label is the (position + 1) of its name in
``labels.txt``; everything else is 0. Names are compared with spaces removed, and three
task names are renamed to their full-list spelling first, as the reference does.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import SplitDataset
from .preprocess import check_same_size, read_mat_variable

from .fetch import Archive, DatasetRelease, SplitCount
from .voc import TORCHVISION_VOC, VOC_HF_MIRROR

# The release's data facts (``python -m reproduce data fetch pascalcontext``): the images and
# splits of PASCAL VOC 2010 (VOCtrainval_03-May-2010.tar: VOCdevkit/VOC2010 → voc_dir/VOC2010,
# train 4,998 and val 5,105 ids in ImageSets/Main), the full labelling of its 10,103 images
# (trainval.tar.gz: trainval/<id>.mat and labels.txt → context_dir) and the 59-class task's
# names (59_labels.txt → context_dir).
_CONTEXT_SAMPLE = ("pascal/VOC2010/JPEGImages/{id}.jpg", "pascal-context/trainval/{id}.mat")
PASCALCONTEXT_RELEASE = DatasetRelease(
    "pascalcontext", "PASCAL-Context (Mottaghi et al.), the 59-class task over PASCAL VOC 2010",
    files=(Archive("VOCtrainval_03-May-2010.tar",
                   ("http://host.robots.ox.ac.uk/pascal/VOC/voc2010/VOCtrainval_03-May-2010.tar",
                    VOC_HF_MIRROR + "VOCtrainval_03-May-2010.tar"),
                   members=(("VOCdevkit/VOC2010", "pascal/VOC2010"),),
                   md5="da459979d0c395079b5c75ee67908abb", md5_source=TORCHVISION_VOC),
           Archive("trainval.tar.gz", ("https://cs.stanford.edu/~roozbeh/pascal-context/trainval.tar.gz",),
                   members=(("trainval", "pascal-context/trainval"), ("labels.txt", "pascal-context/labels.txt"))),
           Archive("59_labels.txt", ("https://cs.stanford.edu/~roozbeh/pascal-context/59_labels.txt",),
                   place="pascal-context/59_labels.txt")),
    splits=(SplitCount("pascal/VOC2010/ImageSets/Main/train.txt", 4998, _CONTEXT_SAMPLE),
            SplitCount("pascal/VOC2010/ImageSets/Main/val.txt", 5105, _CONTEXT_SAMPLE)),
    required=("pascal-context/labels.txt", "pascal-context/59_labels.txt"))

CONTEXT_MEAN_BGR = np.array((104.007, 116.669, 122.679), dtype=np.float32)
# (full-list name, 59-task name) pairs the reference reconciles
_RENAMES = (("table", "diningtable"), ("bedclothes", "bedcloth"), ("cloth", "clothes"))


def read_label_names(path: str | Path) -> list[str]:
    """The names of an ``<index>: <name>`` list, spaces removed, in file order.

    Stands in for the reference's ``np.genfromtxt(path, delimiter=':', dtype=None)``.
    """
    names = []
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0]  # genfromtxt's comment character
        if not line.strip():
            continue
        if ":" not in line:
            raise ValueError(f"{path}: expected '<index>: <name>' lines, got {line!r}")
        names.append(line.split(":", 1)[1].replace(" ", ""))
    return names


class PASCALContextSegmentation(SplitDataset):
    dataset_name = "PASCAL-Context"
    layout = ("  {root}/VOC2010/ImageSets/Main/{split}.txt\n"
              "  {root}/VOC2010/JPEGImages/<id>.jpg\n"
              "  <context_dir>/labels.txt, <context_dir>/59_labels.txt   '<index>: <name>' lines\n"
              "  <context_dir>/trainval/<id>.mat                        variable LabelMap")

    def __init__(self, voc_dir: str | Path, context_dir: str | Path, split: str, check_files: bool = True):
        self.context_dir = Path(context_dir)
        self.voc2010 = Path(voc_dir) / "VOC2010"
        super().__init__(voc_dir, split, check_files=False)
        for name in ("labels.txt", "59_labels.txt"):
            if not (self.context_dir / name).is_file():
                self._fail(f"missing file {self.context_dir / name}")
        self.labels_full = read_label_names(self.context_dir / "labels.txt")
        self.labels_59 = read_label_names(self.context_dir / "59_labels.txt")
        for full_name, task_name in _RENAMES:
            if task_name in self.labels_59:
                self.labels_59[self.labels_59.index(task_name)] = full_name
        missing = [name for name in self.labels_59 if name not in self.labels_full]
        if missing:
            self._fail(f"59-class names {missing} are not in {self.context_dir / 'labels.txt'}")
        # (full label value, task class) pairs, in the reference's assignment order
        self.translation = [(self.labels_full.index(name) + 1, index + 1)
                            for index, name in enumerate(self.labels_59)]
        if check_files:
            self.check_files()

    def split_path(self) -> Path:
        return self.voc2010 / "ImageSets" / "Main" / f"{self.split}.txt"

    def image_path(self, sample_id: str) -> Path:
        return self.voc2010 / "JPEGImages" / f"{sample_id}.jpg"

    def label_path(self, sample_id: str) -> Path:
        return self.context_dir / "trainval" / f"{sample_id}.mat"

    def sample_paths(self, sample_id: str):
        return (self.image_path(sample_id), self.label_path(sample_id))

    def load_label(self, sample_id: str) -> np.ndarray:
        label_full = read_mat_variable(self.label_path(sample_id), "LabelMap",
                                       "a PASCAL-Context label")
        label = np.zeros_like(label_full, dtype=np.uint8)
        for full_value, task_class in self.translation:
            label[label_full == full_value] = task_class
        return label[np.newaxis, ...]

    def load(self, sample_id: str):
        image, label = self.caffe_image(self.image_path(sample_id), CONTEXT_MEAN_BGR), self.load_label(sample_id)
        check_same_size(image, self.image_path(sample_id), label, self.label_path(sample_id))
        return image, label

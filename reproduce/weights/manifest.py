"""The official weights of the reference release, torchvision-style: where they live, what they score.

One ``WeightsEntry`` per caffemodel of fcn.berkeleyvision.org (the ``*/caffemodel-url``
files of the release: five PASCAL VOC nets, three NYUDv2, three SIFT Flow, three
PASCAL-Context) and per base classifier the stages start from (``VGG_ILSVRC_16_layers``,
the V1-format VGG16 of FCN-32s; ``bvlc_alexnet`` of FCN-AlexNet; ``bvlc_googlenet`` of
FCN-GoogLeNet). The release's ``nyud-fcn32s-color-d/`` folder (early fusion of color and
log-depth) has nets but no ``caffemodel-url``: its entry exists so that every release folder
has one, but it is *not released* (``urls`` is empty; ``weights --from DIR`` can import a file
of that name). An entry holds:

* ``url`` (the release's own URL) and ``mirrors`` — ``urls`` is both, tried in that order.
  Mirrors are listed only where a sha1 is published, so that a mirror can never introduce
  bytes the checksum would not catch;
* the file name, the sha1 where one is published (else None: "unknown"), the net it loads
  into (the ``reproduce.models`` name, which for the NYUDv2 / SIFT Flow / PASCAL-Context nets is
  the release folder's name), ``num_classes`` (channels of the score layer; SIFT Flow has two
  heads, ``heads`` gives both), the dataset;
* ``published``: the release's mean IU on VOC2011 ``seg11valid`` (percent) — what the
  released "heavy" (momentum 0.99, unnormalized loss) VOC models score and what ``verify``
  compares against; FCN-8s also has its PASCAL VOC 2012 test figure;
* ``paper_table2``: the CVPR 2015 paper's Table 2, "Comparison of skip FCNs on a subset of
  PASCAL VOC2011 validation" (original, non-heavy training, same subset) — pixel acc., mean
  acc., mean IU, f.w. IU — for context only (``../shared/README.md`` files these figures
  under "Table 3"; in the paper's text Table 2 is the one that compares FCN-32s-fixed, Sec.
  4.3 "Fine-tuning", and Table 3 holds the VOC2011/2012 *test* results);
* ``scores``: ``PublishedScore`` rows of the papers for the other datasets, each naming its
  paper, table and row; ``published_note`` says how those rows relate to the released file,
  or that nothing is published for it.

Where the figures come from (read in the papers' text): CVPR 2015 = Long, Shelhamer,
Darrell, arXiv 1411.4038 (v2 and later: Appendix B adds PASCAL-Context). Table 4: NYUDv2,
the standard split's 654 test images, 40 classes; Table 5: SIFT Flow, 200 test images,
semantic metrics over the classes present in the test set plus geometric pixel accuracy;
Table 6: PASCAL-Context val, the 59-class task. Those rows come from the original training of
that paper, not from the release's "heavy" training (its solvers: momentum 0.99); the
release's README gives no scores for these nets. The PAMI 2016 paper (Shelhamer, Long,
Darrell, arXiv 1605.06211), which the release accompanies, reports these tasks again; its
figures are not transcribed here (see ``PAMI_NOTE``), so a released file may score
differently from the CVPR row.

Sha1s: only ``fcn8s-heavy-pascal.caffemodel``'s is published with the FCN release (and
``bvlc_alexnet``'s and ``bvlc_googlenet``'s in Caffe's model zoo readmes); the others are
"unknown". The first download (or ``--from`` import) of such a file records the sha1 it
observed in the lock file ``<weights dir>/weights.lock.json`` so that later downloads (and
checks) are held to it (trust on first use, like a package lock).
"""
from __future__ import annotations

import os
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

__all__ = ["WeightsEntry", "PublishedScore", "Equivalent", "EQUIVALENTS", "equivalents", "MANIFEST", "UNKNOWN", "LOCK_FILE", "entry", "select",
           "fcn_entries", "entry_for_net", "read_lock", "locked_sha1", "expected_sha1", "record_sha1",
           "CVPR2015", "PAMI2016"]

UNKNOWN = "unknown"
LOCK_FILE = "weights.lock.json"
BERKELEY = "http://dl.caffe.berkeleyvision.org/"
CVPR2015 = "CVPR 2015 (arXiv 1411.4038)"
PAMI2016 = "PAMI 2016 (arXiv 1605.06211)"
PAMI_NOTE = (f"the released model is trained with high momentum (the release's solver: momentum 0.99), as in "
             f"{PAMI2016}, whose figures for this dataset are not transcribed here; the {CVPR2015} row is from "
             f"that paper's original training")
# NVIDIA's copies of the two Caffe model zoo classifiers (jetson-inference's CMakePreBuild.sh, as
# quoted in dividiti/ck-caffe issue #12); safe as fallbacks because both sha1s are published.
NVIDIA_ALEXNET = "https://nvidia.box.com/shared/static/5j264j7mky11q8emy4q14w3r8hl5v6zh.caffemodel"
NVIDIA_GOOGLENET = "https://nvidia.box.com/shared/static/at8b1105ww1c5h7p30j5ko8qfnxrs0eg.caffemodel"


@dataclass(frozen=True)
class PublishedScore:
    """One row of a paper's results table, as printed (percent)."""

    source: str                    # paper and table: "CVPR 2015 (arXiv 1411.4038) Table 4"
    row: str                       # the row's label in that table: "FCN-32s RGB"
    split: str                     # what it was measured on
    metrics: Mapping[str, float]   # pixel_acc, mean_acc, mean_iu, fwavacc, geom_acc (as printed)
    head: str = ""                 # which head ("semantic", "geometric"); "" for single-head nets
    training: str = "original"     # "original" (CVPR 2015) or "heavy" (the release's training)

    def to_dict(self) -> dict:
        return {"source": self.source, "row": self.row, "split": self.split, "metrics": dict(self.metrics),
                "head": self.head, "training": self.training}


PYTORCH_FCN = "wkentaro/pytorch-fcn"
PYTORCH_FCN_HEAD = "4b988509bfd1a613d5e8482595a1c6654047d69b"    # torchfcn/models/*.py: md5s of the re-upload
PYTORCH_FCN_BEFORE = "e86a0f08bbc6fa4033b1e9d15c8ddb70a9537bb5"  # before cc9c75c "Re-upload …": first uploads


@dataclass(frozen=True)
class Equivalent:
    """A converted copy of a release caffemodel published elsewhere, accepted in its place.

    pytorch-fcn's ``fcn*_from_caffe.pth`` are plain state_dicts of the release's weights
    under the release's layer names (``conv1_1.weight``, ``upscore.weight`` …), the naming
    ``reproduce.weights.convert`` uses: read with ``weights_only=True`` (a pickle, never run),
    held to one of the md5s pytorch-fcn publishes in its source, then checked against the
    net and converted like a caffemodel."""

    file: str
    urls: tuple[str, ...]
    md5s: tuple[str, ...]
    source: str


def _pytorch_fcn(file: str, urls: tuple[str, ...], *md5s: str) -> Equivalent:
    return Equivalent(file, urls, md5s, f"{PYTORCH_FCN} torchfcn/models at {PYTORCH_FCN_HEAD[:7]} (and "
                                        f"{PYTORCH_FCN_BEFORE[:7]} for the first upload)")


_DRIVE = "https://drive.google.com/uc?id="
EQUIVALENTS = {
    "fcn32s": (_pytorch_fcn("fcn32s_from_caffe.pth", (_DRIVE + "11k2Q0bvRQgQbT6-jYWeh6nmAsWlSCY3f",
                                                      _DRIVE + "0B9P1L--7Wd2vM2oya3k0Zlgtekk"),
                            "d3eb467a80e7da0468a20dfcbc13e6c8", "8acf386d722dc3484625964cbe2aba49"),),
    "fcn16s": (_pytorch_fcn("fcn16s_from_caffe.pth", (_DRIVE + "1bctu58B6YH9bu6lBBSBB2rUeGlGhYLoP",
                                                      _DRIVE + "0B9P1L--7Wd2vVGE3TkRMbWlNRms"),
                            "a2d4035f669f09483b39c9a14a0d6670", "991ea45d30d632a01e5ec48002cac617"),),
    "fcn8s": (_pytorch_fcn("fcn8s_from_caffe.pth", (_DRIVE + "1ieXWyoG68xqoHJPWdyrDyaIaaWlfmUxI",
                                                    _DRIVE + "0B9P1L--7Wd2vT0FtdThWREhjNkU"),
                           "de93e540ec79512f8770033849c8ae89", "dbd9bbb3829a3184913bccc74373afbb"),),
    "fcn8s-atonce": (_pytorch_fcn("fcn8s-atonce_from_caffe.pth", (_DRIVE + "0B9P1L--7Wd2vblE1VUIxV1o2d2M",),
                                  "bfed4437e941fef58932891217fe6464"),),
}


def equivalents(e: "WeightsEntry") -> tuple[Equivalent, ...]:
    """The converted copies accepted in place of ``e``'s caffemodel (pytorch-fcn's), or ()."""
    return EQUIVALENTS.get(e.name, ())


@dataclass(frozen=True)
class WeightsEntry:
    """One weights file of the release or a base net (see the module docstring)."""

    name: str                      # short name: --only NAME, also the runs/<name> stage
    file: str                      # file name under the weights directory
    url: str | None                # the release's URL; None: not released
    sha1: str | None               # None: not published ("unknown")
    net: str | None                # reproduce.models name the weights load into; None for base nets
    num_classes: int               # channels of the (first) score layer
    kind: str                      # "fcn" (a released FCN) or "base" (an ILSVRC classifier)
    description: str
    published: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    paper_table2: Mapping[str, float] | None = None
    mirrors: tuple[str, ...] = ()  # further URLs, tried in order after ``url``
    dataset: str = "PASCAL VOC"
    heads: Mapping[str, int] = field(default_factory=dict)  # {head: classes}; empty: one head
    scores: tuple[PublishedScore, ...] = ()
    published_note: str | None = None
    folder: str | None = None      # the release folder the net comes from (``voc-fcn8s`` …)

    @property
    def urls(self) -> tuple[str, ...]:
        """Every URL of the file, the release's first; empty when the file was never released."""
        return ((self.url,) if self.url else ()) + tuple(self.mirrors)

    @property
    def released(self) -> bool:
        return bool(self.urls)

    @property
    def head_classes(self) -> dict[str, int]:
        """``{head: classes}``: SIFT Flow's ``{"semantic": 33, "geometric": 3}``, else ``{"score": n}``."""
        return dict(self.heads) if self.heads else {"score": self.num_classes}

    @property
    def classes_text(self) -> str:
        return " + ".join(str(n) for n in self.head_classes.values())

    @property
    def sha1_text(self) -> str:
        return self.sha1 or UNKNOWN

    @property
    def stem(self) -> str:
        return self.file[: -len(".caffemodel")] if self.file.endswith(".caffemodel") else self.file

    @property
    def pth(self) -> str:
        """The converted file's name (``fcn8s-heavy-pascal.pth``)."""
        return f"{self.stem}.pth"

    @property
    def published_mean_iu(self) -> float | None:
        """The release's mean IU (percent) on seg11valid, or None (other datasets, base nets)."""
        return self.published.get("seg11valid", {}).get("mean_iu")

    @property
    def published_text(self) -> str:
        """One phrase for listings: the release's figure, else the paper's, else "none published"."""
        if self.published_mean_iu is not None:
            text = f"{self.published_mean_iu:.1f} mean IU (release, seg11valid)"
            test = self.published.get("seg12test", {}).get("mean_iu")
            return text + (f"; {test:.1f} on seg12test" if test is not None else "")
        if self.scores:
            parts = []
            for s in self.scores:
                metric = ", ".join(f"{_METRIC_NAMES[k]} {v:.1f}" for k, v in s.metrics.items()
                                   if k in ("mean_iu", "geom_acc"))
                head = f", {s.head}" if s.head else ""
                parts.append(f"{metric} ({_short_source(s.source)}, {s.row}{head})")
            return "; ".join(parts)
        return "n/a (ILSVRC base net)" if self.kind == "base" else "none published"

    def to_dict(self) -> dict:
        return {"name": self.name, "file": self.file, "url": self.url, "urls": list(self.urls),
                "released": self.released, "sha1": self.sha1_text, "net": self.net,
                "num_classes": self.num_classes, "heads": self.head_classes, "kind": self.kind,
                "dataset": self.dataset, "folder": self.folder, "description": self.description,
                "published": {k: dict(v) for k, v in self.published.items()},
                "paper_table2": dict(self.paper_table2) if self.paper_table2 else None,
                "scores": [s.to_dict() for s in self.scores], "published_note": self.published_note}


_METRIC_NAMES = {"pixel_acc": "pixel acc.", "mean_acc": "mean acc.", "mean_iu": "mean IU",
                 "fwavacc": "f.w. IU", "geom_acc": "geom. acc."}


def _short_source(source: str) -> str:
    """``"CVPR 2015 (arXiv 1411.4038) Table 6 (Appendix B)"`` → ``"CVPR 2015 Table 6"``."""
    match = re.search(r"Table \d+", source)
    return source.split(" (arXiv")[0] + (f" {match.group(0)}" if match else "")


def _metrics(pixel_acc: float, mean_acc: float, mean_iu: float, fwavacc: float) -> dict:
    return {"pixel_acc": pixel_acc, "mean_acc": mean_acc, "mean_iu": mean_iu, "fwavacc": fwavacc}


_NYUD_SPLIT = "NYUDv2 test (the standard split's 654 images), 40 classes of Gupta et al."
_SIFT_SPLIT = "SIFT Flow test (200 images); semantic metrics over the classes present in the test set"
_CONTEXT_SPLIT = "PASCAL-Context val, 59-class task"


def _nyud(row: str, pixel_acc: float, mean_acc: float, mean_iu: float, fwavacc: float) -> PublishedScore:
    return PublishedScore(f"{CVPR2015} Table 4", row, _NYUD_SPLIT, _metrics(pixel_acc, mean_acc, mean_iu, fwavacc))


def _context(row: str, pixel_acc: float, mean_acc: float, mean_iu: float, fwavacc: float) -> PublishedScore:
    return PublishedScore(f"{CVPR2015} Table 6 (Appendix B)", row, _CONTEXT_SPLIT,
                          _metrics(pixel_acc, mean_acc, mean_iu, fwavacc))


def _release(folder: str, file: str, classes: int, dataset: str, description: str, *,
             scores: tuple[PublishedScore, ...] = (), note: str, heads: Mapping[str, int] | None = None,
             released: bool = True) -> WeightsEntry:
    """An entry of a NYUDv2 / SIFT Flow / PASCAL-Context net: named and loaded like its folder."""
    return WeightsEntry(folder, file, BERKELEY + file if released else None, None, folder, classes, "fcn",
                        description, dataset=dataset, heads=heads or {}, scores=scores,
                        published_note=note, folder=folder)


_SIFT_HEADS = {"semantic": 33, "geometric": 3}
_NO_SIFT_ROW = (f"none published: {CVPR2015} Table 5 reports only FCN-16s for SIFT Flow, and the "
                f"{PAMI2016} figures of the release's heavy models are not transcribed here")

MANIFEST: "OrderedDict[str, WeightsEntry]" = OrderedDict((e.name, e) for e in (
    WeightsEntry("fcn32s", "fcn32s-heavy-pascal.caffemodel", BERKELEY + "fcn32s-heavy-pascal.caffemodel",
                 None, "fcn32s", 21, "fcn", "FCN-32s, PASCAL VOC, heavy training (voc-fcn32s)",
                 {"seg11valid": {"mean_iu": 63.6}}, _metrics(89.1, 73.3, 59.4, 81.4), folder="voc-fcn32s"),
    WeightsEntry("fcn16s", "fcn16s-heavy-pascal.caffemodel", BERKELEY + "fcn16s-heavy-pascal.caffemodel",
                 None, "fcn16s", 21, "fcn", "FCN-16s, PASCAL VOC, heavy training (voc-fcn16s)",
                 {"seg11valid": {"mean_iu": 65.0}}, _metrics(90.0, 75.7, 62.4, 83.0), folder="voc-fcn16s"),
    WeightsEntry("fcn8s", "fcn8s-heavy-pascal.caffemodel", BERKELEY + "fcn8s-heavy-pascal.caffemodel",
                 "c449ea74dd7d83751d1357d6a8c323fcf4038962", "fcn8s", 21, "fcn",
                 "FCN-8s, PASCAL VOC, heavy training (voc-fcn8s)",
                 {"seg11valid": {"mean_iu": 65.5}, "seg12test": {"mean_iu": 67.2}},
                 _metrics(90.3, 75.9, 62.7, 83.2), folder="voc-fcn8s"),
    WeightsEntry("fcn8s-atonce", "fcn8s-atonce-pascal.caffemodel", BERKELEY + "fcn8s-atonce-pascal.caffemodel",
                 None, "fcn8s-atonce", 21, "fcn", "FCN-8s at-once (scaled skips), PASCAL VOC (voc-fcn8s-atonce)",
                 {"seg11valid": {"mean_iu": 65.4}}, folder="voc-fcn8s-atonce"),
    WeightsEntry("fcn-alexnet", "fcn-alexnet-pascal.caffemodel", BERKELEY + "fcn-alexnet-pascal.caffemodel",
                 None, "fcn-alexnet", 21, "fcn", "FCN-AlexNet, PASCAL VOC (voc-fcn-alexnet)",
                 {"seg11valid": {"mean_iu": 48.0}}, folder="voc-fcn-alexnet"),
    # -- NYUDv2 (release README: "trained online with high momentum on color, depth, and HHA")
    _release("nyud-fcn32s-color", "nyud-fcn32s-color-heavy.caffemodel", 40, "NYUDv2",
             "FCN-32s NYUDv2 on color (BGR) input, heavy training",
             scores=(_nyud("FCN-32s RGB", 60.0, 42.2, 29.2, 43.9),), note=PAMI_NOTE),
    _release("nyud-fcn32s-hha", "nyud-fcn32s-hha-heavy.caffemodel", 40, "NYUDv2",
             "FCN-32s NYUDv2 on HHA input (Gupta et al.'s depth encoding), heavy training",
             scores=(_nyud("FCN-32s HHA", 57.1, 35.2, 24.2, 40.4),), note=PAMI_NOTE),
    _release("nyud-fcn32s-color-d", "nyud-fcn32s-color-d-heavy.caffemodel", 40, "NYUDv2",
             "FCN-32s NYUDv2 early fusion of color and log-depth (4-channel input) — NOT RELEASED: the "
             "release's nyud-fcn32s-color-d/ has no caffemodel-url; the file name follows the release's "
             "pattern so that `weights --from DIR` can import weights trained elsewhere",
             scores=(_nyud("FCN-32s RGBD", 61.5, 42.4, 30.5, 45.5),), released=False,
             note="the release has no weights for this net (no caffemodel-url); the CVPR 2015 row is the "
                  "early-fusion RGBD model of that paper's original training"),
    _release("nyud-fcn32s-color-hha", "nyud-fcn32s-color-hha-heavy.caffemodel", 40, "NYUDv2",
             "FCN-32s NYUDv2 late fusion of the color and HHA streams (scores summed), heavy training",
             scores=(_nyud("FCN-32s RGB-HHA", 64.3, 44.9, 32.8, 48.0),),
             note=PAMI_NOTE + f"; the table's best row, FCN-16s RGB-HHA (65.4 / 46.1 / 34.0 / 49.5), has no "
                              f"released net"),
    # -- SIFT Flow (two heads: 33 semantic + 3 geometric classes, trained jointly)
    _release("siftflow-fcn32s", "siftflow-fcn32s-heavy.caffemodel", 33, "SIFT Flow",
             "FCN-32s SIFT Flow, semantic (33) and geometric (3) heads, heavy training",
             heads=_SIFT_HEADS, note=_NO_SIFT_ROW),
    _release("siftflow-fcn16s", "siftflow-fcn16s-heavy.caffemodel", 33, "SIFT Flow",
             "FCN-16s SIFT Flow, semantic (33) and geometric (3) heads, heavy training",
             heads=_SIFT_HEADS,
             scores=(PublishedScore(f"{CVPR2015} Table 5", "FCN-16s", _SIFT_SPLIT,
                                    {"pixel_acc": 85.2, "mean_acc": 51.7, "mean_iu": 39.5, "fwavacc": 76.1},
                                    head="semantic"),
                     PublishedScore(f"{CVPR2015} Table 5", "FCN-16s", "SIFT Flow test (200 images)",
                                    {"geom_acc": 94.3}, head="geometric")),
             note=PAMI_NOTE + "; the release README warns that its own semantic evaluation was not yet "
                              "right (classes missing from the test set)"),
    _release("siftflow-fcn8s", "siftflow-fcn8s-heavy.caffemodel", 33, "SIFT Flow",
             "FCN-8s SIFT Flow, semantic (33) and geometric (3) heads, heavy training",
             heads=_SIFT_HEADS, note=_NO_SIFT_ROW),
    # -- PASCAL-Context (59 classes + background = 60 score channels)
    _release("pascalcontext-fcn32s", "pascalcontext-fcn32s-heavy.caffemodel", 60, "PASCAL-Context",
             "FCN-32s PASCAL-Context, 59 classes + background, heavy training",
             scores=(_context("FCN-32s", 63.8, 42.7, 31.8, 48.3),), note=PAMI_NOTE),
    _release("pascalcontext-fcn16s", "pascalcontext-fcn16s-heavy.caffemodel", 60, "PASCAL-Context",
             "FCN-16s PASCAL-Context, 59 classes + background, heavy training",
             scores=(_context("FCN-16s", 65.7, 46.2, 34.8, 50.7),), note=PAMI_NOTE),
    _release("pascalcontext-fcn8s", "pascalcontext-fcn8s-heavy.caffemodel", 60, "PASCAL-Context",
             "FCN-8s PASCAL-Context, 59 classes + background, heavy training",
             scores=(_context("FCN-8s", 65.9, 46.5, 35.1, 51.0),), note=PAMI_NOTE),
    # -- the ILSVRC base nets
    WeightsEntry("vgg16", "VGG_ILSVRC_16_layers.caffemodel",
                 "http://www.robots.ox.ac.uk/~vgg/software/very_deep/caffe/VGG_ILSVRC_16_layers.caffemodel",
                 None, None, 1000, "base", "VGG16 ILSVRC classifier (V1 format), the base of FCN-32s",
                 dataset="ILSVRC 2012"),
    WeightsEntry("alexnet", "bvlc_alexnet.caffemodel", BERKELEY + "bvlc_alexnet.caffemodel",
                 "9116a64c0fbe4459d18f4bb6b56d647b63920377", None, 1000, "base",
                 "BVLC AlexNet ILSVRC classifier (sha1 from Caffe's model zoo), the base of FCN-AlexNet",
                 mirrors=(NVIDIA_ALEXNET,), dataset="ILSVRC 2012"),
    WeightsEntry("googlenet", "bvlc_googlenet.caffemodel", BERKELEY + "bvlc_googlenet.caffemodel",
                 "405fc5acd08a3bb12de8ee5e23a96bec22f08204", None, 1000, "base",
                 "BVLC GoogLeNet ILSVRC classifier (Caffe's model zoo models/bvlc_googlenet, sha1 from its "
                 "readme), the base of FCN-GoogLeNet (whose weights were never released)",
                 mirrors=(NVIDIA_GOOGLENET,), dataset="ILSVRC 2012"),
))


def entry(name: str) -> WeightsEntry:
    """The entry called ``name``; its file name, file stem, .pth name or release folder is accepted too."""
    if name in MANIFEST:
        return MANIFEST[name]
    for e in MANIFEST.values():
        if name in (e.file, e.stem, e.pth) or (e.folder and name == e.folder):
            return e
    raise KeyError(f"no weights called {name!r} (known: {', '.join(MANIFEST)})")


def select(names=None) -> list[WeightsEntry]:
    """The entries ``names`` names (all when empty), in manifest order, without duplicates."""
    if not names:
        return list(MANIFEST.values())
    chosen = {entry(name).name for name in names}
    return [e for e in MANIFEST.values() if e.name in chosen]


def fcn_entries(dataset: str | None = None) -> list[WeightsEntry]:
    """The FCN entries (released or not), of ``dataset`` only when given ("PASCAL VOC", "NYUDv2" …)."""
    return [e for e in MANIFEST.values() if e.kind == "fcn" and (dataset is None or e.dataset == dataset)]


def entry_for_net(net: str) -> WeightsEntry | None:
    """The released FCN weights of model ``net`` (``fcn8s``, ``siftflow-fcn16s`` …), or None."""
    for e in fcn_entries():
        if e.net == net:
            return e
    return None


# -- the lock file: sha1s observed at download (reproduce.weights.lockfile) -----------------
def read_lock(weights_dir: str | os.PathLike) -> dict:
    """``{file: {"sha1", "size", "url", "recorded"}}`` from the weights lock file ({} when absent)."""
    from reproduce.weights import lockfile

    return lockfile.read_lock(Path(weights_dir) / LOCK_FILE)


def locked_sha1(weights_dir: str | os.PathLike, file: str) -> str | None:
    from reproduce.weights import lockfile

    return lockfile.recorded_sha1(Path(weights_dir) / LOCK_FILE, file)


def expected_sha1(e: WeightsEntry, weights_dir: str | os.PathLike) -> tuple[str | None, str]:
    """The sha1 a download of ``e`` must have and where it comes from (manifest, lock or none)."""
    if e.sha1:
        return e.sha1, "manifest"
    recorded = locked_sha1(weights_dir, e.file)
    if recorded:
        return recorded, f"lock file {Path(weights_dir) / LOCK_FILE}"
    return None, "none"


def record_sha1(weights_dir: str | os.PathLike, file: str, sha1: str, size: int, url: str) -> Path:
    """Record the observed sha1 of ``file`` in the weights lock file (written atomically)."""
    from reproduce.weights import lockfile

    return lockfile.record_sha1(Path(weights_dir) / LOCK_FILE, file, sha1, size, url)

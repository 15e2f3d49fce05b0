"""The official weights of the reference release, torchvision-style: where they live, what they score.

One ``WeightsEntry`` per file of fcn.berkeleyvision.org's PASCAL VOC models (the
``*/caffemodel-url`` files of the release) and per base classifier the stages start from
(``VGG_ILSVRC_16_layers.caffemodel``, the V1-format VGG16 of the FCN-32s/8s-at-once stages;
``bvlc_alexnet.caffemodel`` of FCN-AlexNet). An entry holds the URL, the file name, the sha1
where one is published, the net it loads into (``reproduce.models`` name) and the published
scores:

* ``published``: the release's mean IU on VOC2011 ``seg11valid`` (percent) — what the
  released "heavy" (momentum 0.99, unnormalized loss) models score, and what ``verify``
  compares against; FCN-8s also has its PASCAL VOC 2012 test figure;
* ``paper_table3``: the CVPR 2015 paper's Table 3 (original, non-heavy training, same subset)
  — pixel acc., mean acc., mean IU, f.w. IU — for context only.

Sha1s: only ``fcn8s-heavy-pascal.caffemodel``'s is published with the FCN release (and
``bvlc_alexnet``'s in Caffe's model zoo readme); the others are "unknown". The first
download of such a file records the sha1 it observed in the lock file
``<weights dir>/weights.lock.json`` so that later downloads (and ``--check``) are held to it
(trust on first use, like a package lock).
"""
from __future__ import annotations

import json
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping

__all__ = ["WeightsEntry", "MANIFEST", "UNKNOWN", "LOCK_FILE", "entry", "select", "fcn_entries",
           "entry_for_net", "read_lock", "locked_sha1", "expected_sha1", "record_sha1"]

UNKNOWN = "unknown"
LOCK_FILE = "weights.lock.json"
LOCK_FORMAT = 1
BERKELEY = "http://dl.caffe.berkeleyvision.org/"


@dataclass(frozen=True)
class WeightsEntry:
    """One downloadable weights file (see the module docstring)."""

    name: str                      # short name: --only NAME, also the runs/<name> stage
    file: str                      # file name under the weights directory
    url: str
    sha1: str | None               # None: not published ("unknown")
    net: str | None                # reproduce.models name the weights load into; None for base nets
    num_classes: int
    kind: str                      # "fcn" (a released FCN) or "base" (an ILSVRC classifier)
    description: str
    published: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    paper_table3: Mapping[str, float] | None = None

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
        """The release's mean IU (percent) on seg11valid, or None (base nets)."""
        return self.published.get("seg11valid", {}).get("mean_iu")

    def to_dict(self) -> dict:
        return {"name": self.name, "file": self.file, "url": self.url, "sha1": self.sha1_text,
                "net": self.net, "num_classes": self.num_classes, "kind": self.kind,
                "description": self.description, "published": {k: dict(v) for k, v in self.published.items()},
                "paper_table3": dict(self.paper_table3) if self.paper_table3 else None}


def _table3(pixel_acc: float, mean_acc: float, mean_iu: float, fwavacc: float) -> dict:
    return {"pixel_acc": pixel_acc, "mean_acc": mean_acc, "mean_iu": mean_iu, "fwavacc": fwavacc}


MANIFEST: "OrderedDict[str, WeightsEntry]" = OrderedDict((e.name, e) for e in (
    WeightsEntry("fcn32s", "fcn32s-heavy-pascal.caffemodel", BERKELEY + "fcn32s-heavy-pascal.caffemodel",
                 None, "fcn32s", 21, "fcn", "FCN-32s, PASCAL VOC, heavy training (voc-fcn32s)",
                 {"seg11valid": {"mean_iu": 63.6}}, _table3(89.1, 73.3, 59.4, 81.4)),
    WeightsEntry("fcn16s", "fcn16s-heavy-pascal.caffemodel", BERKELEY + "fcn16s-heavy-pascal.caffemodel",
                 None, "fcn16s", 21, "fcn", "FCN-16s, PASCAL VOC, heavy training (voc-fcn16s)",
                 {"seg11valid": {"mean_iu": 65.0}}, _table3(90.0, 75.7, 62.4, 83.0)),
    WeightsEntry("fcn8s", "fcn8s-heavy-pascal.caffemodel", BERKELEY + "fcn8s-heavy-pascal.caffemodel",
                 "c449ea74dd7d83751d1357d6a8c323fcf4038962", "fcn8s", 21, "fcn",
                 "FCN-8s, PASCAL VOC, heavy training (voc-fcn8s)",
                 {"seg11valid": {"mean_iu": 65.5}, "seg12test": {"mean_iu": 67.2}},
                 _table3(90.3, 75.9, 62.7, 83.2)),
    WeightsEntry("fcn8s-atonce", "fcn8s-atonce-pascal.caffemodel", BERKELEY + "fcn8s-atonce-pascal.caffemodel",
                 None, "fcn8s-atonce", 21, "fcn", "FCN-8s at-once (scaled skips), PASCAL VOC (voc-fcn8s-atonce)",
                 {"seg11valid": {"mean_iu": 65.4}}),
    WeightsEntry("fcn-alexnet", "fcn-alexnet-pascal.caffemodel", BERKELEY + "fcn-alexnet-pascal.caffemodel",
                 None, "fcn-alexnet", 21, "fcn", "FCN-AlexNet, PASCAL VOC (voc-fcn-alexnet)",
                 {"seg11valid": {"mean_iu": 48.0}}),
    WeightsEntry("vgg16", "VGG_ILSVRC_16_layers.caffemodel",
                 "http://www.robots.ox.ac.uk/~vgg/software/very_deep/caffe/VGG_ILSVRC_16_layers.caffemodel",
                 None, None, 1000, "base", "VGG16 ILSVRC classifier (V1 format), the base of FCN-32s"),
    WeightsEntry("alexnet", "bvlc_alexnet.caffemodel", BERKELEY + "bvlc_alexnet.caffemodel",
                 "9116a64c0fbe4459d18f4bb6b56d647b63920377", None, 1000, "base",
                 "BVLC AlexNet ILSVRC classifier (sha1 from Caffe's model zoo), the base of FCN-AlexNet"),
))


def entry(name: str) -> WeightsEntry:
    """The entry called ``name``; its file name or file stem is accepted too."""
    if name in MANIFEST:
        return MANIFEST[name]
    for e in MANIFEST.values():
        if name in (e.file, e.stem, e.pth):
            return e
    raise KeyError(f"no weights called {name!r} (known: {', '.join(MANIFEST)})")


def select(names=None) -> list[WeightsEntry]:
    """The entries ``names`` names (all when empty), in manifest order, without duplicates."""
    if not names:
        return list(MANIFEST.values())
    chosen = {entry(name).name for name in names}
    return [e for e in MANIFEST.values() if e.name in chosen]


def fcn_entries() -> list[WeightsEntry]:
    return [e for e in MANIFEST.values() if e.kind == "fcn"]


def entry_for_net(net: str) -> WeightsEntry | None:
    """The released FCN weights of model ``net`` (``fcn8s`` …), or None."""
    for e in fcn_entries():
        if e.net == net:
            return e
    return None


# -- the lock file: sha1s observed at download --------------------------------------------
def read_lock(weights_dir: str | os.PathLike) -> dict:
    """``{file: {"sha1", "size", "url", "recorded"}}`` from the lock file ({} when absent)."""
    path = Path(weights_dir) / LOCK_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: unreadable lock file ({err}); fix or delete it") from None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        raise ValueError(f"{path}: not a weights lock file (no 'files' table); fix or delete it")
    return files


def locked_sha1(weights_dir: str | os.PathLike, file: str) -> str | None:
    record = read_lock(weights_dir).get(file)
    return record.get("sha1") if isinstance(record, dict) else None


def expected_sha1(e: WeightsEntry, weights_dir: str | os.PathLike) -> tuple[str | None, str]:
    """The sha1 a download of ``e`` must have and where it comes from (manifest, lock or none)."""
    if e.sha1:
        return e.sha1, "manifest"
    recorded = locked_sha1(weights_dir, e.file)
    if recorded:
        return recorded, f"lock file {Path(weights_dir) / LOCK_FILE}"
    return None, "none"


def record_sha1(weights_dir: str | os.PathLike, file: str, sha1: str, size: int, url: str) -> Path:
    """Record the observed sha1 of ``file`` in the lock file (written atomically)."""
    from reproduce.caffe.files import atomic_output

    weights_dir = Path(weights_dir)
    files = read_lock(weights_dir)
    files[file] = {"sha1": sha1, "size": int(size), "url": url,
                   "recorded": datetime.now(timezone.utc).replace(microsecond=0).isoformat()}
    path = weights_dir / LOCK_FILE
    text = json.dumps({"format": LOCK_FORMAT, "files": dict(sorted(files.items()))}, indent=2) + "\n"
    with atomic_output(path) as tmp:
        tmp.write_text(text)
    return path

"""The record a stage keeps: CSV and JSON-lines logs and the learning-curve plot.

What the reference ``solve.py`` prints — Caffe's ``Iteration N … loss = …, lr = …`` lines
every ``display`` iterations and ``score.seg_tests``' ``>>> … Iteration N loss / overall
accuracy / mean accuracy / mean IU / fwavacc`` lines — is kept here as files:

* ``log.csv``: one row per displayed training iteration
  (``iter, loss, smoothed_loss, lr, it_per_s, elapsed_s``);
* ``test.csv``: one row per seg_tests (``iter, loss, overall_acc, mean_acc, mean_iu, fwavacc``);
* ``log.jsonl``: both, as ``{"kind": "train"|"test", …}`` records in the order they happened,
  and a ``{"kind": "run", …}`` record of the settings each (re)started run trains with;
* ``curve.png``: the smoothed training loss (the raw loss faint) and validation mean IU on its
  own axis, against the iteration (and the wall time on a second scale; ``reproduce.training.curves``);
* ``events.out.tfevents.*``: the same rows for ``tensorboard --logdir runs``, when the optional
  ``tensorboard`` package is installed (``reproduce.training.tensorboard``).

Rows are appended and flushed one at a time. A resumed stage first drops the rows written
after the snapshot it resumes from (``truncate``), so the files read as one run.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Iterable

from reproduce.caffe.files import atomic_output
from reproduce.training.tensorboard import TEST_SCALARS, TRAIN_SCALARS, EventLog

TRAIN_COLUMNS = ("iter", "loss", "smoothed_loss", "lr", "it_per_s", "elapsed_s")
TEST_COLUMNS = ("iter", "loss", "overall_acc", "mean_acc", "mean_iu", "fwavacc")
HEAD_COLUMN = "head"  # which score blob a row scores, for nets with several (SIFT Flow)


def _finite_or_none(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class StageLog:
    """Appends a stage's train and test records to ``run_dir``; a no-op when not ``enabled``."""

    def __init__(self, run_dir: str | Path, enabled: bool = True):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.csv_path = self.run_dir / "log.csv"
        self.test_csv_path = self.run_dir / "test.csv"
        self.jsonl_path = self.run_dir / "log.jsonl"
        self.curve_path = self.run_dir / "curve.png"
        self.events = EventLog(self.run_dir) if enabled else None

    # -- writing ---------------------------------------------------------------------------
    def _append_csv(self, path: Path, columns: Iterable[str], row: dict) -> None:
        columns = tuple(columns)
        new = not path.exists() or path.stat().st_size == 0
        with open(path, "a", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            if new:
                writer.writerow(columns)
            writer.writerow([_format(row.get(c)) for c in columns])

    def _append_json(self, record: dict) -> None:
        with open(self.jsonl_path, "a") as f:
            f.write(json.dumps({k: _finite_or_none(v) for k, v in record.items()}) + "\n")

    def train(self, **row) -> None:
        if not self.enabled:
            return
        self._append_csv(self.csv_path, TRAIN_COLUMNS, row)
        self._append_json({"kind": "train", **row})
        self.events.scalars("train", row, TRAIN_SCALARS)

    def run(self, **row) -> None:
        """A ``{"kind": "run", …}`` record: the settings a (re)started run trains with."""
        if self.enabled:
            self._append_json({"kind": "run", **row})

    def test(self, **row) -> None:
        if not self.enabled:
            return
        columns = TEST_COLUMNS + ((HEAD_COLUMN,) if HEAD_COLUMN in row else ())
        self._append_csv(self.test_csv_path, columns, row)
        self._append_json({"kind": "test", **row})
        self.events.scalars("test", row, TEST_SCALARS)

    def close(self) -> None:
        if self.events is not None:
            self.events.close()

    # -- reading and resuming --------------------------------------------------------------
    def records(self) -> list[dict]:
        return read_records(self.jsonl_path)

    def truncate(self, resumed_iter: int) -> None:
        """Keep only what a run had logged when its weights were those after ``resumed_iter`` updates.

        A train row's ``iter`` is Caffe's displayed iteration — the loss computed *before* update
        ``iter`` — so rows with ``iter < resumed_iter`` stay; a test row's ``iter`` is the number
        of updates done (``solver.iter``), so rows with ``iter <= resumed_iter`` stay. Torn
        (partly written) lines go too.
        """
        if not self.enabled:
            return
        self.events.purge_after(resumed_iter)
        kept = [r for r in self.records()
                if int(r.get("iter", 0)) < resumed_iter
                or (r.get("kind") == "test" and int(r.get("iter", 0)) <= resumed_iter)]
        self._rewrite(self.jsonl_path, "".join(json.dumps(r) + "\n" for r in kept))
        for path, columns, kind in ((self.csv_path, TRAIN_COLUMNS, "train"),
                                    (self.test_csv_path, TEST_COLUMNS, "test")):
            rows = [r for r in kept if r.get("kind") == kind]
            if not rows and not path.exists():
                continue
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(columns)
            for r in rows:
                writer.writerow([_format(r.get(c)) for c in columns])
            self._rewrite(path, out.getvalue())

    @staticmethod
    def _rewrite(path: Path, text: str) -> None:
        if not path.exists() and not text:
            return
        with atomic_output(path) as tmp:
            Path(tmp).write_text(text)

    # -- plotting --------------------------------------------------------------------------
    def plot(self, title: str = "") -> Path | None:
        if not self.enabled:
            return None
        return plot_curve(self.records(), self.curve_path, title)


def _format(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return str(value)


def read_records(path: str | Path) -> list[dict]:
    """The records of a ``log.jsonl``; a torn (partly written) line is skipped."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def plot_curve(records: list[dict], out: str | Path, title: str = "", axes=None) -> Path:
    """The learning curves of ``records`` (``reproduce.training.curves``): a PNG at ``out``, or
    drawn on ``axes`` = (loss axis, mean-IU axis) of a larger figure."""
    from reproduce.training import curves

    if axes is None:
        return curves.plot(records, out, title)
    curves.draw(records, *axes, title=title)
    return Path(out)

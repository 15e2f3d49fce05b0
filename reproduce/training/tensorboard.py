"""A TensorBoard event file per run, beside ``log.csv``/``log.jsonl`` (which stay the record).

When the optional ``tensorboard`` package is installed (``pip install -e ".[tensorboard]"``),
``StageLog`` mirrors each train and test row as scalars into ``runs/<stage>/events.out.tfevents.*``
so that ``tensorboard --logdir runs`` shows every stage side by side: ``train/loss``,
``train/smoothed_loss``, ``train/lr``, ``train/it_per_s`` and ``test/<metric>`` (per head for
SIFT Flow), each at Caffe's iteration and with the run's wall time. A resumed run purges the
steps after its snapshot (TensorBoard's ``purge_step``), as ``StageLog.truncate`` drops them
from the CSV and JSON lines. Without the package nothing is written and nothing fails.
"""
from __future__ import annotations

import functools
import time
from pathlib import Path

TRAIN_SCALARS = ("loss", "smoothed_loss", "lr", "it_per_s")
TEST_SCALARS = ("loss", "overall_acc", "mean_acc", "mean_iu", "mean_iu_present", "fwavacc")


@functools.lru_cache(maxsize=None)
def available() -> bool:
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        return False
    return True


class EventLog:
    """Scalars of one run directory into a TensorBoard event file; a no-op without tensorboard."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.writer = None
        self.purge_step: int | None = None
        self.started = time.time()

    def purge_after(self, step: int) -> None:
        """The steps ``>= step`` of earlier event files are stale (a resume from ``step``)."""
        self.purge_step = step

    def _open(self):
        if self.writer is None and available():
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.run_dir), purge_step=self.purge_step or None)
        return self.writer

    def scalars(self, prefix: str, row: dict, names) -> None:
        writer = self._open()
        if writer is None or row.get("iter") is None:
            return
        step = int(row["iter"])
        head = row.get("head")
        for name in names:
            value = row.get(name)
            if isinstance(value, (int, float)) and value == value:   # numbers, not NaN
                tag = f"{prefix}/{name}" + (f"/{head}" if head else "")
                writer.add_scalar(tag, float(value), step)
        writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

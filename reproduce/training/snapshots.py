"""Which snapshot a stage resumes from, checked; and a snapshot taken with a clear disk-full error.

``resume_from(prefix, max_iter, say)`` takes the latest ``<prefix>_iter_<N>.solverstate.pt``
(N ≤ ``max_iter``) whose record matches its weights file (``reproduce.solver.integrity``); a
damaged or truncated later one is named and passed over ("falling back to …"), and when
snapshots exist but none is good the stage refuses (``StageError``) rather than start
afresh over them. ``take_snapshot`` turns a full disk into one line naming the file and the
free space a snapshot needs; the previous snapshot is left as it was (writes are atomic).
"""
from __future__ import annotations

import errno
import shutil
from pathlib import Path
from typing import Callable

__all__ = ["snapshot_states", "resume_from", "take_snapshot"]


def snapshot_states(prefix: Path, max_iter: int) -> list[Path]:
    """The ``<prefix>_iter_<N>.solverstate.pt`` with N ≤ ``max_iter``, newest first."""
    from reproduce.solver.snapshot import STATE_SUFFIX

    directory = prefix.parent
    if not directory.is_dir():
        return []
    found = []
    for path in directory.glob(f"{prefix.name}_iter_*{STATE_SUFFIX}"):
        number = path.name[len(prefix.name) + len("_iter_"):-len(STATE_SUFFIX)]
        if number.isdigit() and int(number) <= max_iter:
            found.append((int(number), path))
    return [path for _, path in sorted(found, reverse=True)]


def resume_from(prefix: Path, max_iter: int, say: Callable[[str], None], error=RuntimeError) -> Path | None:
    """The latest good snapshot (see the module docstring); None when there is none at all."""
    from reproduce.solver.integrity import usable_snapshots

    states = snapshot_states(prefix, max_iter)
    damaged = []
    for state, reason in usable_snapshots(states):
        if reason is None:
            if damaged:
                say(f"falling back to {state}: the later snapshot(s) are damaged — " + "; ".join(damaged))
            return state
        damaged.append(reason)
    if damaged:
        raise error(f"no good snapshot to resume from in {prefix.parent}: " + "; ".join(damaged)
                    + " — delete the damaged files to start this stage afresh")
    return None


def take_snapshot(snapshot: Callable[[], object], directory: Path, need_bytes: int, error=RuntimeError):
    """Call ``snapshot()``; a full disk becomes ``error`` naming the file and the space needed."""
    try:
        return snapshot()
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        try:
            free = shutil.disk_usage(directory).free
        except OSError:
            free = 0
        where = err.filename or directory
        raise error(f"{where}: disk full while writing a snapshot ({err.strerror}); it needs about "
                    f"{need_bytes / 2**20:,.1f} MiB free in {directory}, {free / 2**20:,.1f} MiB are; the "
                    f"previous snapshot is kept — free space and run again to resume") from None

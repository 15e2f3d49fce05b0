"""Starting a dataset over: what a wrong archive left behind, and ``data fetch NAME --refetch``.

A release archive without a published sha1 is trusted on first use (its sha1 recorded in
``<dir>/datasets.lock.json``), so a wrong archive — another year of VOC, a truncated mirror
copy that still unpacks — is extracted into place, and fetching again changes nothing: every
destination is "in place". ``leftovers`` names everything that has to go for a clean fetch —
the archives in ``<dir>/archives/``, the trees they were extracted into, the split lists written
from them and their lock entries — which ``data check`` prints for an incomplete dataset, and
``forget`` deletes them (``data fetch NAME --refetch``).
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from reproduce.data.fetch import ARCHIVES, LOCK_FILE, DatasetRelease


@dataclass(frozen=True)
class Leftovers:
    paths: tuple[Path, ...]        # files and folders under the data dir, each present
    lock_entries: tuple[str, ...]  # names recorded in <dir>/datasets.lock.json

    def __bool__(self) -> bool:
        return bool(self.paths or self.lock_entries)

    def describe(self, data_dir: Path) -> list[str]:
        lines = [f"{p}{'/ (a folder)' if p.is_dir() else ''}" for p in self.paths]
        if self.lock_entries:
            lines.append(f"the entries {', '.join(self.lock_entries)} of {Path(data_dir) / LOCK_FILE}")
        return lines


def leftovers(release: DatasetRelease, data_dir: str | Path) -> Leftovers:
    """What of ``release`` is under ``data_dir`` now: archives, extracted trees, joined lists, lock entries."""
    from reproduce.weights.lockfile import read_lock

    data_dir = Path(data_dir)
    paths: list[Path] = []
    for archive in release.files:
        for path in (data_dir / ARCHIVES / archive.file, *(data_dir / d for d in archive.destinations)):
            if (path.exists() or path.is_symlink()) and path not in paths:
                paths.append(path)
    for dest, _ in release.joins:
        if (data_dir / dest).exists():
            paths.append(data_dir / dest)
    try:
        locked = read_lock(data_dir / LOCK_FILE)
    except ValueError:
        locked = {}
    entries = tuple(a.file for a in release.files if a.file in locked)
    # a path inside another listed folder goes with it
    kept = tuple(p for p in paths if not any(q != p and q in p.parents for q in paths))
    return Leftovers(kept, entries)


def forget(release: DatasetRelease, data_dir: str | Path):
    """Delete ``leftovers(release, data_dir)``; yields one line per thing deleted."""
    from reproduce.caffe.files import atomic_output

    data_dir = Path(data_dir)
    found = leftovers(release, data_dir)
    for path in found.paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        yield f"deleted {path}"
    if found.lock_entries:
        lock = data_dir / LOCK_FILE
        data = json.loads(lock.read_text())
        for name in found.lock_entries:
            data["files"].pop(name, None)
        with atomic_output(lock) as tmp:
            Path(tmp).write_text(json.dumps(data, indent=2) + "\n")
        yield f"forgot the recorded sha1 of {', '.join(found.lock_entries)} in {lock}"

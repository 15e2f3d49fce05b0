"""A small trust-on-first-use lock file: ``{"format": 1, "files": {name: {sha1, size, url, recorded}}}``.

The generic form of ``weights.lock.json`` (``reproduce.weights.manifest``): a file without a
published sha1 has the sha1 observed at its first download recorded here, and later
downloads or checks are held to it, like a package lock. Used by ``reproduce.data.fetch``
for ``<data dir>/datasets.lock.json``. Written atomically.
"""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

__all__ = ["LOCK_FORMAT", "read_lock", "recorded_sha1", "record_sha1"]

LOCK_FORMAT = 1


def read_lock(path: str | os.PathLike) -> dict:
    """``{name: {"sha1", "size", "url", "recorded"}}`` from the lock file ``path`` ({} when absent)."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: unreadable lock file ({err}); fix or delete it") from None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        raise ValueError(f"{path}: not a lock file (no 'files' table); fix or delete it")
    return files


def recorded_sha1(path: str | os.PathLike, name: str) -> str | None:
    """The sha1 recorded for ``name`` in the lock file ``path``, or None."""
    record = read_lock(path).get(name)
    return record.get("sha1") if isinstance(record, dict) else None


def record_sha1(path: str | os.PathLike, name: str, sha1: str, size: int, url: str) -> Path:
    """Record the observed ``sha1`` of ``name`` in the lock file ``path`` (atomic rewrite)."""
    from reproduce.caffe.files import atomic_output

    path = Path(path)
    files = read_lock(path)
    files[name] = {"sha1": sha1, "size": int(size), "url": url,
                   "recorded": datetime.now(timezone.utc).replace(microsecond=0).isoformat()}
    text = json.dumps({"format": LOCK_FORMAT, "files": dict(sorted(files.items()))}, indent=2) + "\n"
    with atomic_output(path) as tmp:
        tmp.write_text(text)
    return path

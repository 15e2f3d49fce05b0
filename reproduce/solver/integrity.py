"""Checksums of snapshot weights, kept in the snapshot's own record (the solver state).

A caffemodel is a sequence of self-delimiting layer records: a file cut exactly at a layer
boundary parses, and so does one with a flipped bit inside a float — either would resume
silently with wrong weights. ``Solver.snapshot`` therefore writes the weights file's sha256
and size into the ``.solverstate.pt`` it writes next (``record``), and ``Solver.restore``
compares them before copying a single blob (``verify``). The state file itself is a
``torch.save`` zip archive whose members carry CRC-32s, which ``torch.load`` checks.

``usable_snapshots`` walks a run's snapshots newest first and says which are damaged and
why, so a resume can fall back to the previous good snapshot instead of the damaged latest.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["SnapshotDamaged", "file_digest", "record", "verify", "check_snapshot", "usable_snapshots"]

_CHUNK = 1 << 20


class SnapshotDamaged(Exception):
    """A snapshot whose files do not match its record; ``str()`` names the file and why."""


def file_digest(path: str | os.PathLike) -> tuple[str, int]:
    """``(sha256 hex, size in bytes)`` of ``path``."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def record(weights_path: str | os.PathLike) -> dict:
    """What a solver state records about the weights file it refers to."""
    sha256, size = file_digest(weights_path)
    return {"sha256": sha256, "size": size}


def verify(weights_path: str | os.PathLike, recorded: dict | None) -> bool:
    """Raise ``SnapshotDamaged`` unless ``weights_path`` matches ``recorded`` (a ``record()``);
    returns False when there is no record to compare with (a state written before records)."""
    if not recorded:
        return False
    path = Path(weights_path)
    size = path.stat().st_size
    if size != int(recorded.get("size", -1)):
        raise SnapshotDamaged(f"{path}: {size:,} bytes, its snapshot record says {int(recorded['size']):,} "
                              f"(truncated or overwritten)")
    sha256, _ = file_digest(path)
    if sha256 != recorded.get("sha256"):
        raise SnapshotDamaged(f"{path}: sha256 {sha256[:16]}… differs from its snapshot record's "
                              f"{str(recorded.get('sha256'))[:16]}… (damaged)")
    return True


def check_snapshot(state_path: str | os.PathLike) -> bool:
    """Raise ``SnapshotDamaged`` if the snapshot of ``state_path`` cannot be resumed exactly:
    an unreadable state, a missing weights file, or weights that differ from the record.
    Returns whether a checksum was compared (False: an older state without one)."""
    from .snapshot import SolverStateError, learned_net_path, read_solverstate

    state_path = Path(state_path)
    try:
        state = read_solverstate(state_path)
        weights = learned_net_path(state_path, state)
    except (SolverStateError, FileNotFoundError, OSError, KeyError) as err:
        raise SnapshotDamaged(" ".join(str(err).split()) or f"{state_path}: unreadable") from None
    return verify(weights, state.get("learned_net_record"))


def usable_snapshots(states: list[Path]):
    """For each of ``states`` (newest first): ``(path, None)`` for a good one, ``(path, reason)``
    for a damaged one — stopping after the first good one."""
    for state in states:
        try:
            check_snapshot(state)
        except SnapshotDamaged as err:
            yield state, str(err)
            continue
        yield state, None
        return

"""One process per run directory: an exclusive lock on ``<run_dir>/.lock`` and on the directory.

Two ``python -m reproduce stage …`` on the same ``runs/<stage>`` would both train, both
snapshot and interleave their logs. ``hold_run_dir(run_dir, what=…)`` takes an exclusive,
non-blocking ``fcntl.flock`` on ``<run_dir>/.lock`` for the duration of a ``with`` block and
writes the holder's pid, host, command line and start time into the file (one JSON object).
A second holder — another process, or the same process a second time — is refused at once
with ``RunDirBusy``, whose message is one line naming the holder (pid, host, command, since
when) and the directory.

Why ``flock`` and not a pid file: the kernel drops the lock when the holding process dies,
however it dies (``kill -9``, OOM killer, power loss of a local disk), so a crashed run
never leaves a stale lock behind and nothing has to guess whether a recorded pid is still
alive. The file itself stays (it is never unlinked: unlinking while another process has it
open lets two processes lock two different inodes of the same name); its text only describes
the last holder and is rewritten by the next one. Because a user may still delete it by hand,
the run directory itself is flocked too (an open directory descriptor), so a second run is
refused even then. Caffe has no such guard — this is a
property of this port's stage runner, not of the reference release.

Limits, documented rather than papered over:

* **Forked children keep the lock.** A ``flock`` belongs to the open file, so a child made by
  ``fork()`` without ``exec`` (multiprocessing's ``fork`` start method, DataLoader workers)
  holds it as long as it lives, even after the parent died. The file is opened
  ``O_CLOEXEC``, so ``exec``'d subprocesses do not inherit it.
* **NFS.** On Linux ≥ 2.6.12 the NFS client emulates ``flock`` with POSIX byte-range locks
  sent to the server (NLM for NFSv3, the protocol's own locks for NFSv4), so the lock does
  exclude processes on *other* hosts — provided the server supports locking and the share is
  not mounted with ``nolock``/``local_lock=all`` (then the lock is local to each client and
  two hosts can both hold it). An NFSv4 lock whose lease lapses (client cut off from the
  server longer than the lease time, typically 90 s) can be lost while the holder still
  runs. Because the emulated lock is a POSIX lock, which is per *process*, the same-process
  re-entry check is done here in Python as well, not left to the kernel. Other network file
  systems (SMB/CIFS, some FUSE file systems) may accept ``flock`` and enforce nothing.
* **POSIX only.** Without ``fcntl`` (Windows) ``hold_run_dir`` raises ``OSError`` rather
  than pretending to lock.
* **torchrun.** Only rank 0 takes the lock (``rank`` parameter): the ranks of one launch
  share the directory by design, and a second launch is refused through its rank 0 (torchrun
  then stops that launch's other ranks). Ranks other than 0 get ``None`` and touch nothing.
"""
from __future__ import annotations

import errno
import json
import os
import socket
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

__all__ = ["RunDirBusy", "RunDirLock", "hold_run_dir", "read_holder", "LOCK_NAME"]

LOCK_NAME = ".lock"

# run directories this process holds now (resolved paths) — the re-entry check that does not
# depend on the kernel's flock semantics (see "NFS" in the module docstring)
_HELD: set[str] = set()
_HELD_GUARD = threading.Lock()


class RunDirBusy(RuntimeError):
    """Another process (or this one, already) holds the run directory's lock.

    ``str(error)`` is one line; ``run_dir`` and ``holder`` (the holder's recorded details,
    ``{}`` when they could not be read) are attributes.
    """

    def __init__(self, run_dir: Path, holder: dict, same_process: bool = False):
        self.run_dir = Path(run_dir)
        self.holder = dict(holder)
        self.same_process = same_process
        super().__init__(_busy_line(self.run_dir, self.holder, same_process))


def _busy_line(run_dir: Path, holder: dict, same_process: bool) -> str:
    lock = run_dir / LOCK_NAME
    if same_process:
        what = f" ({holder['what']})" if holder.get("what") else ""
        return (f"{run_dir} is already held by this process (pid {os.getpid()}){what}; "
                f"a run directory is used by one run at a time (lock {lock})")
    if not holder.get("pid"):
        return (f"{run_dir} is in use by another process, which has not written its details yet "
                f"(lock {lock}); wait for it to finish or stop it")
    command = " ".join(str(holder.get("command", "?")).split())   # one line, whatever argv held
    if len(command) > 200:
        command = command[:197] + "..."
    what = f" ({holder['what']})" if holder.get("what") else ""
    return (f"{run_dir} is in use by pid {holder['pid']} on {holder.get('host', '?')}{what}, "
            f"command {command!r}, since {holder.get('started', '?')}; wait for it to finish or "
            f"stop it (lock {lock})")


def read_holder(run_dir: str | Path) -> dict:
    """The details the current (or last) holder wrote into ``<run_dir>/.lock``; ``{}`` if none.

    Reading takes no lock: the text may describe a holder that has since exited — only a
    failed ``flock`` says the directory is busy now.
    """
    try:
        text = (Path(run_dir) / LOCK_NAME).read_text()
    except (OSError, UnicodeDecodeError):
        return {}
    try:
        holder = json.loads(text)
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


@dataclass
class RunDirLock:
    """A held lock: the directory, the lock file and what was written into it."""

    run_dir: Path
    path: Path
    holder: dict
    _fd: int | None = None
    _dir_fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        """Unlock and close (idempotent). The file stays; its text is left as it was."""
        fd, self._fd = self._fd, None
        dir_fd, self._dir_fd = self._dir_fd, None
        if fd is None:
            return
        import fcntl

        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
            if dir_fd is not None:
                os.close(dir_fd)   # closing drops its flock
            with _HELD_GUARD:
                _HELD.discard(_key(self.run_dir))


def _key(run_dir: Path) -> str:
    return os.path.realpath(run_dir)


def _holder_details(what: str) -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(),
            "command": " ".join([Path(sys.executable).name, *sys.argv]) if sys.argv else sys.executable,
            "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"), "what": what}


def acquire(run_dir: str | Path, what: str = "") -> RunDirLock:
    """Take the lock of ``run_dir`` (created if missing) or raise ``RunDirBusy`` at once.

    The caller must ``release()`` it; ``hold_run_dir`` does that for a ``with`` block.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        raise OSError("run directory locks need fcntl.flock (POSIX); this platform has none") from None
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    key = _key(run_dir)
    with _HELD_GUARD:
        if key in _HELD:
            raise RunDirBusy(run_dir, read_holder(run_dir), same_process=True)
        _HELD.add(key)   # reserved while we try; removed again on any failure below
    path = run_dir / LOCK_NAME
    fd = dir_fd = None
    try:
        dir_fd = _lock_directory(run_dir, fcntl)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise RunDirBusy(run_dir, _wait_for_details(run_dir)) from None
        holder = _holder_details(what)
        data = (json.dumps(holder) + "\n").encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)
        lock = RunDirLock(run_dir, path, holder, fd, dir_fd)
        fd = dir_fd = None
        return lock
    except BaseException:
        if fd is not None:
            os.close(fd)
        if dir_fd is not None:
            os.close(dir_fd)
        with _HELD_GUARD:
            _HELD.discard(key)
        raise


def _lock_directory(run_dir: Path, fcntl) -> int | None:
    """An exclusive ``flock`` on the run directory itself, held with the lock file's: deleting
    ``.lock`` by hand while a run holds it would let a second process create and lock a new
    ``.lock`` inode — the directory's lock cannot be deleted away. None where the file system
    cannot lock a directory (NFS's emulated locks need a file open for writing); the lock
    file's flock then stands alone."""
    try:
        dir_fd = os.open(run_dir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(dir_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        os.close(dir_fd)
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise RunDirBusy(run_dir, _wait_for_details(run_dir)) from None
        return None   # EBADF, ENOLCK, EINVAL: no directory locks here
    return dir_fd


def _wait_for_details(run_dir: Path, attempts: int = 20) -> dict:
    """The holder's details; it may have locked a moment ago and not written them yet."""
    import time

    for _ in range(attempts):
        holder = read_holder(run_dir)
        if holder.get("pid"):
            return holder
        time.sleep(0.025)
    return read_holder(run_dir)


@contextmanager
def hold_run_dir(run_dir: str | Path, what: str = "", rank: int = 0) -> Iterator[RunDirLock | None]:
    """Hold ``run_dir`` exclusively for the ``with`` block; see the module docstring.

    ``what`` (e.g. ``"stage fcn32s"``) is recorded and shown to a refused second holder.
    ``rank`` is the torchrun rank: only rank 0 locks; other ranks get ``None``. Raises
    ``RunDirBusy`` (one line naming the holder) when the directory is held — by another
    process or already by this one. The lock is released when the block ends, by return or
    exception, and by the kernel if the process dies.
    """
    if rank != 0:
        yield None
        return
    lock = acquire(run_dir, what)
    try:
        yield lock
    finally:
        lock.release()

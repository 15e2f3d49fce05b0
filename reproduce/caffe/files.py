"""File plumbing shared by the weights readers and writers: format sniffing, atomic output, progress.

Caffe tells an HDF5 caffemodel from a binary one by content (``H5Fis_hdf5``), not by name;
``is_hdf5`` does the same (the HDF5 signature at byte 0, 512, 1024, 2048, …).
``foreign_format`` names the common files that are handed to a weights reader by mistake,
so that the error says "PNG image" instead of a wire-format complaint at byte 0.
"""
from __future__ import annotations

import codecs
import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Union

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"

_MAGICS = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (HDF5_SIGNATURE, "an HDF5 file"),
    (b"PK\x03\x04", "a zip archive (a PyTorch .pth checkpoint?)"),
    (b"\x1f\x8b", "gzip-compressed (decompress it first)"),
    (b"BZh", "bzip2-compressed (decompress it first)"),
    (b"\xfd7zXZ\x00", "xz-compressed (decompress it first)"),
    (b"\x93NUMPY", "a NumPy .npy array"),
    (b"\x80\x02", "a Python pickle"), (b"\x80\x03", "a Python pickle"),
    (b"\x80\x04", "a Python pickle"), (b"\x80\x05", "a Python pickle"),
)
_TEXT_CONTROLS = frozenset(range(0x20)) - {0x09, 0x0A, 0x0D} | {0x7F}
SNIFF_BYTES = 512

Progress = Union[bool, Callable[[int, int], None], None]


def foreign_format(head: bytes, complete: bool = False) -> str | None:
    """What ``head`` (a file's first bytes; ``complete`` if the whole file) shows the file to be,
    if it is a known non-protobuf format.

    Text counts as foreign: a binary NetParameter has a control or non-UTF-8 byte within its
    first few bytes (the name's length, a layer's tag), a prototxt or an HTML page has none.
    """
    for magic, what in _MAGICS:
        if head.startswith(magic):
            return what
    if head and _looks_like_text(head, complete):
        stripped = head.lstrip()
        if stripped[:1] == b"<":
            return "a text file (an HTML page? a failed download)"
        return "a text file (a prototxt? read it with reproduce.caffe.text)"
    return None


def _looks_like_text(head: bytes, complete: bool) -> bool:
    if any(b in _TEXT_CONTROLS for b in head):
        return False
    try:  # a sniffed prefix may end inside a multi-byte character
        codecs.getincrementaldecoder("utf-8")().decode(head, final=complete)
    except UnicodeDecodeError:
        return False
    return True


def is_hdf5(path: str | os.PathLike) -> bool:
    """True when the file carries the HDF5 superblock signature where HDF5 looks for it."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        offset = 0
        while offset + len(HDF5_SIGNATURE) <= size:
            f.seek(offset)
            if f.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
                return True
            offset = 512 if offset == 0 else offset * 2
    return False


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path``; on success it replaces ``path`` at once.

    The data are flushed to disk before the rename, so ``path`` holds either the old file or
    the complete new one, never a truncated mix. On error the temporary file is removed.
    """
    path = Path(path)
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    while True:
        tmp = directory / f".{path.name}.{os.getpid()}-{secrets.token_hex(6)}.tmp"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # honours umask
            break
        except FileExistsError:
            continue
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files ``atomic_output`` left beside ``path`` in a process that no
    longer runs (killed with SIGKILL, or the machine went down); returns what was deleted.
    The writer's process id is part of each temporary name, so a live writer's file is kept."""
    path = Path(path)
    removed = []
    prefix = f".{path.name}."
    try:
        candidates = [p for p in path.parent.iterdir() if p.name.startswith(prefix) and p.name.endswith(".tmp")]
    except OSError:
        return removed
    for candidate in candidates:
        pid = candidate.name[len(prefix):-len(".tmp")].split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        try:
            if not candidate.is_symlink() and candidate.is_file():
                candidate.unlink()
                removed.append(candidate)
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class ProgressReport:
    """``progress`` as given to a reader or writer: ``True`` draws a tqdm bar on stderr,
    a callable receives ``(bytes_done, bytes_total)``, ``None``/``False`` stays quiet."""

    def __init__(self, progress: Progress, total: int, description: str):
        self.total = total
        self.callback = progress if callable(progress) else None
        self.bar = None
        if progress is True:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                            desc=description, leave=False, dynamic_ncols=True)

    def __call__(self, done: int) -> None:
        if self.callback is not None:
            self.callback(done, self.total)
        if self.bar is not None:
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

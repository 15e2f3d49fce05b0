"""Resumable HTTP downloads with a sha1 check and an atomic rename.

What Caffe's ``scripts/download_model_binary.py`` does (fetch a caffemodel, compare its
sha1), made robust for files of half a gigabyte:

* bytes go to ``<dest>.part``; an existing ``.part`` is resumed with an HTTP ``Range``
  request (a server that answers ``200`` instead of ``206`` restarts it from zero);
* a dropped connection is retried (``retries`` times, resuming each time); a failure leaves
  the ``.part`` in place so the next run resumes it;
* the complete file's sha1 is compared with ``sha1`` when one is expected — a mismatch
  deletes the ``.part`` (resuming a corrupt file cannot repair it) and raises
  ``ChecksumError``;
* only a checked, complete file is renamed (``os.replace``) to ``dest``.

Every failure raises ``DownloadError`` (``ChecksumError`` is one) with a one-line message
naming the file and the URL; nothing else escapes for network trouble.

``download_from(urls, dest)`` tries several URLs of one file in order (the release's host,
then mirrors): any failure of one URL — HTTP error, unreachable host, a transfer that keeps
breaking off, *and* a completed file whose sha1 is wrong (a mirror may hold a stale or broken
copy) — moves on to the next; the error, when all fail, is one line naming every URL and why
it failed. A ``.part`` is resumed from another URL only when a sha1 is expected (the final
check then catches mixed bytes); without one it is resumed only from the URL that wrote it
(recorded in ``<dest>.source.part``). ``import_file(src, dest)`` is the same check and atomic
rename for a file the user already has.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import re
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path

__all__ = ["DownloadError", "ChecksumError", "AllURLsFailed", "DownloadResult", "download", "download_from",
           "import_file", "sha1_of", "md5_of", "check_md5"]

CHUNK = 1 << 20
# A transfer that trickles never ends on its own (each byte resets the socket timeout): it is
# stopped when slower than MIN_RATE bytes/s over any RATE_WINDOW seconds, or past DEADLINE
# seconds in all; what arrived stays in the .part and the next run resumes it.
MIN_RATE = 10 * 1024
RATE_WINDOW = 60.0
DEADLINE = 6 * 3600.0
USER_AGENT = "reproduce-fcn/0.1 (+python urllib)"
_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)")
_NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError,
                   socket.timeout, OSError)


class DownloadError(Exception):
    """A download that failed; ``str()`` is one line naming the file and the cause."""


class ChecksumError(DownloadError):
    """The downloaded bytes do not have the expected sha1."""


class AllURLsFailed(DownloadError):
    """Every URL of a file failed; ``attempts`` is ``[(url, DownloadError), …]`` in the order tried."""

    def __init__(self, message: str, attempts):
        super().__init__(message)
        self.attempts = list(attempts)


class _Retryable(DownloadError):
    """A transfer that broke off; the ``.part`` keeps what arrived."""


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    sha1: str
    size: int
    resumed_from: int      # bytes already in the .part when the (last) transfer started
    checked: bool          # the sha1 was compared with an expected value
    url: str = ""          # where the bytes came from (download_from, import_file)


def md5_of(path: str | os.PathLike, chunk: int = CHUNK) -> str:
    """The md5 of ``path`` — only to compare with checksums others publish as md5 (torchvision's
    dataset catalogue, pytorch-fcn), never as this project's own pin (sha1, sha256)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def check_md5(path: Path, md5, label: str, origin: str) -> None:
    """Raise ``ChecksumError`` unless ``path``'s md5 is ``md5`` (or one of several published)."""
    if not md5:
        return
    allowed = (md5,) if isinstance(md5, str) else tuple(md5)
    observed = md5_of(path)
    if observed not in {m.lower() for m in allowed}:
        raise ChecksumError(f"{label}: md5 {observed} does not match the published {' or '.join(allowed)}"
                            f" ({origin})")


def sha1_of(path: str | os.PathLike, chunk: int = CHUNK) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def part_path(dest: str | os.PathLike) -> Path:
    dest = Path(dest)
    return dest.with_name(dest.name + ".part")


def download(url: str, dest: str | os.PathLike, *, sha1: str | None = None, timeout: float = 30.0,
             retries: int = 3, progress: bool = True, backoff: float = 1.0, md5=None,
             md5_origin: str = "published", min_rate: float | None = None, rate_window: float | None = None,
             deadline: float | None = None) -> DownloadResult:
    """Download ``url`` to ``dest`` (see the module docstring); returns what was written."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    if part.is_symlink():   # never resumed, hashed or renamed into place: it is not ours
        raise DownloadError(f"{part}: is a symbolic link; not written through (remove it)")
    attempt = 0
    pace = _Pace(MIN_RATE if min_rate is None else min_rate, RATE_WINDOW if rate_window is None else rate_window,
                 DEADLINE if deadline is None else deadline, part, url, dest.name)
    while True:
        try:
            resumed_from = _transfer(url, part, dest.name, timeout, progress, pace)
            break
        except _Retryable as err:
            if attempt >= retries:
                kept = part.stat().st_size if part.exists() else 0
                raise DownloadError(f"{err} ({kept:,} bytes kept in {part}; run again to resume)") from None
            attempt += 1
            time.sleep(backoff * attempt)
    digest = sha1_of(part)
    size = part.stat().st_size
    if sha1 is not None and digest != sha1.lower():
        part.unlink()
        raise ChecksumError(f"{dest.name}: sha1 {digest} of the downloaded {size:,} bytes does not match "
                            f"the expected {sha1} (from {url}); the download was deleted — run again "
                            f"to fetch it afresh")
    try:
        check_md5(part, md5, dest.name, md5_origin)
    except ChecksumError as err:
        part.unlink()
        raise ChecksumError(f"{err}; the {size:,} bytes from {url} were deleted — run again to fetch "
                            f"it afresh") from None
    with open(part, "rb") as f:
        os.fsync(f.fileno())
    os.replace(part, dest)
    return DownloadResult(dest, digest, size, resumed_from, sha1 is not None or bool(md5))


def source_path(dest: str | os.PathLike) -> Path:
    """Where ``download_from`` notes which URL wrote ``<dest>.part``."""
    dest = Path(dest)
    return dest.with_name(dest.name + ".source.part")


def download_from(urls, dest: str | os.PathLike, *, sha1: str | None = None, **kwargs) -> DownloadResult:
    """Download ``dest`` from the first of ``urls`` that delivers it (see the module docstring).

    ``kwargs`` go to ``download`` (timeout, retries, progress, backoff). With one URL its error
    is raised unchanged; with several, ``AllURLsFailed`` (a ``ChecksumError`` too when every URL
    delivered a file with the wrong sha1) lists each URL and its failure.
    """
    dest = Path(dest)
    urls = tuple(urls)
    if not urls:
        raise DownloadError(f"{dest.name}: no URL to download it from")
    part, source = part_path(dest), source_path(dest)
    attempts: list[tuple[str, DownloadError]] = []
    for url in urls:
        recorded = source.read_text().strip() if source.is_file() else None
        if part.exists() and recorded and recorded != url and sha1 is None and not kwargs.get("md5"):
            part.unlink()  # bytes of another URL, and no sha1 to catch a mix: start over
        inherited = part.exists() and recorded is not None and recorded != url
        try:
            try:
                result = download(url, dest, sha1=sha1, **kwargs)
            except ChecksumError:
                if not inherited:
                    raise
                result = download(url, dest, sha1=sha1, **kwargs)  # the resumed prefix was another URL's
        except DownloadError as err:
            attempts.append((url, err))
            if part.exists():
                source.write_text(url + "\n")
            else:
                source.unlink(missing_ok=True)
            continue
        source.unlink(missing_ok=True)
        return replace(result, url=url)
    if len(attempts) == 1:
        raise attempts[0][1]
    reasons = "; ".join(f"{i}) {url}: {_without(str(err), dest.name, url)}"
                        for i, (url, err) in enumerate(attempts, 1))
    cls = _AllChecksumsFailed if all(isinstance(err, ChecksumError) for _, err in attempts) else AllURLsFailed
    raise cls(f"{dest.name}: all {len(attempts)} URLs failed — {reasons}", attempts)


class _AllChecksumsFailed(AllURLsFailed, ChecksumError):
    pass


def _without(message: str, label: str, url: str) -> str:
    """``message`` less what the combined error already says (the file name, the URL)."""
    if message.startswith(label + ": "):
        message = message[len(label) + 2:]
    for redundant, instead in ((f"cannot download {url}: ", ""), (f" (from {url})", ""),
                               (f"transfer from {url}", "transfer"), (f" from {url}", "")):
        message = message.replace(redundant, instead)
    return message.strip()


def import_file(src: str | os.PathLike, dest: str | os.PathLike, *, sha1: str | None = None, md5=None,
                md5_origin: str = "published") -> DownloadResult:
    """Copy ``src`` (a file the user already has) to ``dest`` with the checks of a download.

    The bytes are hashed while copied into ``<dest>.import.part`` beside ``dest``; a sha1 other
    than ``sha1`` (when given) deletes the copy and raises ``ChecksumError`` naming ``src``; only a
    checked copy is renamed to ``dest`` (``os.replace``), so ``dest`` is never half-written.
    """
    src, dest = Path(src), Path(dest)
    if not src.is_file():
        why = "is not a file" if src.exists() else "not found"
        raise DownloadError(f"{src}: {why} (expected the release's {dest.name} there)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".import.part")
    digest = hashlib.sha1()
    size = 0
    try:
        with open(src, "rb") as f, open(tmp, "wb") as out:
            for block in iter(lambda: f.read(CHUNK), b""):
                digest.update(block)
                out.write(block)
                size += len(block)
            out.flush()
            os.fsync(out.fileno())
        observed = digest.hexdigest()
        if sha1 is not None and observed != sha1.lower():
            raise ChecksumError(f"{src}: sha1 {observed} of its {size:,} bytes does not match the expected "
                                f"{sha1} for {dest.name}; not imported")
        try:
            check_md5(tmp, md5, str(src), md5_origin)
        except ChecksumError as err:
            raise ChecksumError(f"{err}; not imported as {dest.name}") from None
        os.replace(tmp, dest)
    except OSError as err:
        raise DownloadError(f"{src}: cannot import it to {dest}: {err.strerror or err}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return DownloadResult(dest, observed, size, 0, sha1 is not None or bool(md5), src.resolve().as_uri())


class _Pace:
    """The minimum rate and the overall deadline of one file's download (all its attempts)."""

    def __init__(self, min_rate: float, window: float, deadline: float, part: Path, url: str, label: str):
        self.min_rate, self.window, self.deadline = float(min_rate), float(window), float(deadline)
        self.part, self.url, self.label = part, url, label
        self.started = time.monotonic()
        self.window_start, self.window_bytes = self.started, 0

    def restart_window(self) -> None:
        self.window_start, self.window_bytes = time.monotonic(), 0

    def check(self, received: int) -> None:
        now = time.monotonic()
        self.window_bytes += received
        kept = self.part.stat().st_size if self.part.exists() else 0
        if now - self.started > self.deadline:
            raise DownloadError(f"{self.label}: the download from {self.url} passed its deadline of "
                                f"{self.deadline:,.0f} s ({kept:,} bytes kept in {self.part}; run again to resume)")
        if now - self.window_start >= self.window:
            rate = self.window_bytes / (now - self.window_start)
            if rate < self.min_rate:
                raise DownloadError(f"{self.label}: the transfer from {self.url} is too slow "
                                    f"({rate:,.0f} bytes/s over {now - self.window_start:,.0f} s, the minimum is "
                                    f"{self.min_rate:,.0f}; {kept:,} bytes kept in {self.part}; run again to "
                                    f"resume)")
            self.restart_window()


def _transfer(url: str, part: Path, label: str, timeout: float, progress: bool, pace: "_Pace | None" = None) -> int:
    """Fetch the rest of ``url`` into ``part``; returns the offset it resumed from."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            return _range_not_satisfiable(err, part, offset, url, label)
        if 500 <= err.code < 600:
            raise _Retryable(f"{label}: HTTP {err.code} {err.reason} from {url}") from None
        raise DownloadError(f"{label}: HTTP {err.code} {err.reason} from {url}") from None
    except _NETWORK_ERRORS as err:
        raise DownloadError(f"{label}: cannot download {url}: {_reason(err)} "
                            f"(offline or the server is unreachable?)") from None
    with response:
        status = getattr(response, "status", 200)
        if offset and status == 206:
            start, total = _parse_content_range(response.headers.get("Content-Range"))
            if start != offset:
                offset = 0  # a range we did not ask for: start over
                part.unlink(missing_ok=True)
                raise _Retryable(f"{label}: server answered the wrong range from {url}")
        else:
            if offset:  # the server ignores Range: start over
                offset = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        mode = "ab" if offset else "wb"
        received = 0
        expected_bytes = None if total is None else total - offset
        bar = _progress_bar(progress, total, offset, label)
        if pace is not None:
            pace.restart_window()
        read = getattr(response, "read1", None) or response.read   # what has arrived: a trickle still returns
        try:
            with _open_part(part, mode) as out:
                while True:
                    try:
                        block = read(CHUNK)
                    except _NETWORK_ERRORS as err:
                        raise _Retryable(f"{label}: transfer from {url} broke off: {_reason(err)}") from None
                    if not block:
                        break
                    _write(out, block, part, None if expected_bytes is None else expected_bytes - received)
                    received += len(block)
                    if pace is not None:
                        pace.check(len(block))
                    if bar is not None:
                        bar.update(len(block))
                out.flush()
                os.fsync(out.fileno())
        finally:
            if bar is not None:
                bar.close()
        if expected_bytes is not None and received < expected_bytes:
            raise _Retryable(f"{label}: transfer from {url} broke off after {offset + received:,} of "
                             f"{total:,} bytes")
    return offset


def _open_part(part: Path, mode: str):
    """The ``.part`` opened for writing, never through a symlink planted at its name."""
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | (os.O_APPEND if mode == "ab" else os.O_TRUNC)
    try:
        fd = os.open(part, flags, 0o666)
    except OSError as err:
        if part.is_symlink():
            raise DownloadError(f"{part}: is a symbolic link; not written through (remove it)") from None
        raise DownloadError(f"{part}: cannot write it: {err.strerror or err}") from None
    return os.fdopen(fd, mode, buffering=0)   # unbuffered: a full disk shows at the write that met it


def _write(out, block: bytes, part: Path, remaining: int | None) -> None:
    """Append ``block``; a full disk becomes one line naming the file and the space still needed."""
    import errno
    import shutil

    try:
        view = memoryview(block)
        while view:
            view = view[out.write(view):]
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise DownloadError(f"{part}: cannot write it: {err.strerror or err}") from None
        try:
            free = shutil.disk_usage(part.parent).free
        except OSError:
            free = 0
        need = f"about {remaining:,} more bytes" if remaining is not None else "more space"
        raise DownloadError(f"{part}: disk full ({err.strerror}); the download needs {need}, {free:,} bytes "
                            f"are free in {part.parent} — free space and run again to resume") from None


def _range_not_satisfiable(err, part: Path, offset: int, url: str, label: str) -> int:
    """A 416 to our Range: the ``.part`` is already complete, or it is longer than the file."""
    _, total = _parse_content_range(err.headers.get("Content-Range") if err.headers else None)
    if total is not None and total == offset:
        return offset
    part.unlink(missing_ok=True)
    raise _Retryable(f"{label}: the partial download {part} does not fit {url}; it was deleted")


def _parse_content_range(value: str | None) -> tuple[int | None, int | None]:
    match = _CONTENT_RANGE.match(value or "")
    if not match:
        return None, None
    start = int(match.group(1)) if match.group(1) is not None else None
    total = int(match.group(3)) if match.group(3) != "*" else None
    return start, total


def _reason(err: BaseException) -> str:
    reason = getattr(err, "reason", None)
    if isinstance(reason, BaseException):
        err = reason
    elif reason:
        return str(reason)
    text = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return text.splitlines()[0] if text else type(err).__name__


def _progress_bar(progress: bool, total: int | None, initial: int, label: str):
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                desc=label, file=sys.stderr, dynamic_ncols=True, leave=False)

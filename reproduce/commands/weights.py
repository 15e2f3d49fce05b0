"""Download, check and convert the official caffemodels into the weights directory.

For each selected entry of ``reproduce.weights.manifest.MANIFEST`` (all by default;
``--only NAME …`` picks some: fcn32s fcn16s fcn8s fcn8s-atonce fcn-alexnet vgg16 alexnet):

1. download ``<dir>/<file>.caffemodel`` with a progress bar, resuming a ``<file>.part`` left
   by an interrupted run (HTTP Range), retrying broken transfers;
2. check its sha1 — against the manifest where the release publishes one, otherwise against
   the sha1 recorded in ``<dir>/weights.lock.json`` by an earlier download (the first
   download records what it observed) — and rename it into place only then;
3. convert it to ``<dir>/<file>.pth`` (a plain state_dict) with ``reproduce.weights.convert``.

A file already present is checked, not fetched again (``--force`` fetches anew). A failure
prints one line for that file and the others go on; the exit status is 1 if any file
failed, 0 otherwise. ``--mirror URL`` fetches ``URL/<file>`` instead of the manifest's URL.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reproduce.cli import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--only", nargs="+", metavar="NAME", help="only these entries (default: all)")
    parser.add_argument("--dir", type=Path, default=Path("weights"), help="weights directory (default: weights)")
    parser.add_argument("--mirror", metavar="URL", help="fetch URL/<file name> instead of the official URL")
    parser.add_argument("--no-convert", action="store_true", help="keep the caffemodels only, write no .pth")
    parser.add_argument("--force", action="store_true", help="download again even if the file is present")
    parser.add_argument("--retries", type=int, default=3, help="retries of a broken transfer (default 3)")
    parser.add_argument("--timeout", type=float, default=30.0, help="network timeout in seconds (default 30)")
    parser.add_argument("--list", action="store_true", help="list the manifest and what is present; download nothing")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from reproduce.weights import manifest

    try:
        entries = manifest.select(args.only)
    except KeyError as err:
        raise UserError(err.args[0]) from None
    if args.list:
        _list(entries, args.dir)
        return 0
    failures = 0
    for e in entries:
        try:
            print(f"{e.name}: {fetch_entry(e, args)}", flush=True)
        except Exception as err:  # one line per file; the others go on
            if not _reportable(err):
                raise
            failures += 1
            print(f"error: {err}", file=sys.stderr, flush=True)
    if failures:
        print(f"{failures} of {len(entries)} file(s) failed; run the command again to resume or retry",
              file=sys.stderr)
        return 1
    return 0


def _reportable(err: Exception) -> bool:
    from reproduce.caffe.errors import CaffeFormatError
    from reproduce.weights.download import DownloadError

    return isinstance(err, (DownloadError, CaffeFormatError, OSError, ValueError, UserError))


def url_for(e, mirror: str | None) -> str:
    return f"{mirror.rstrip('/')}/{e.file}" if mirror else e.url


def fetch_entry(e, args: argparse.Namespace) -> str:
    """Download (or check), record and convert one entry; returns a one-line summary."""
    from reproduce.weights import manifest
    from reproduce.weights.download import ChecksumError, DownloadError, download, part_path, sha1_of

    directory: Path = args.dir
    dest = directory / e.file
    url = url_for(e, args.mirror)
    expected, origin = manifest.expected_sha1(e, directory)
    if args.force:
        part_path(dest).unlink(missing_ok=True)
    if dest.is_file() and not args.force:
        digest = sha1_of(dest)
        if expected and digest != expected:
            raise DownloadError(f"{dest}: present, but its sha1 {digest} differs from the expected {expected} "
                                f"(from the {origin}); delete it or pass --force to download it again")
        what = f"present, sha1 {digest} " + (f"matches the {origin}" if expected else "recorded in the lock file")
        if not expected:
            manifest.record_sha1(directory, e.file, digest, dest.stat().st_size, url)
        fresh = False
    else:
        try:
            result = download(url, dest, sha1=expected, timeout=args.timeout, retries=args.retries,
                              progress=not args.quiet)
        except ChecksumError as err:
            if origin.startswith("lock file"):
                raise ChecksumError(f"{err}; the expected sha1 was recorded in the {origin} at an earlier "
                                    f"download — if the file really changed, delete its entry there") from None
            raise
        manifest.record_sha1(directory, e.file, result.sha1, result.size, url)
        resumed = f", resumed at byte {result.resumed_from:,}" if result.resumed_from else ""
        check = (f"matches the {origin}" if result.checked
                 else f"recorded in {directory / manifest.LOCK_FILE} (no published sha1)")
        what = f"downloaded {result.size:,} bytes{resumed}, sha1 {result.sha1} {check}"
        fresh = True
    if args.no_convert:
        return what
    pth = directory / e.pth
    if pth.is_file() and not fresh and pth.stat().st_mtime >= dest.stat().st_mtime:
        return f"{what}; {pth} up to date"
    convert_file(dest, pth, progress=not args.quiet)
    return f"{what}; converted to {pth}"


def convert_file(src: Path, dst: Path, progress: bool = False) -> Path:
    """``src`` caffemodel → ``dst`` .pth through ``reproduce.weights.convert`` (blobs as Caffe holds them)."""
    from reproduce.weights.convert import load_weights, save_weights

    return save_weights(dst, load_weights(src, progress=progress))


def _list(entries, directory: Path) -> None:
    from reproduce.weights import manifest

    lock = manifest.read_lock(directory)
    header = ("name", "file", "sha1", "present", "published mean IU")
    rows = []
    for e in entries:
        sha1 = e.sha1 or (lock.get(e.file, {}).get("sha1") and f"{lock[e.file]['sha1']} (lock)") or manifest.UNKNOWN
        present = ", ".join(name for name in (e.file, e.pth) if (directory / name).is_file()) or "-"
        published = "" if e.published_mean_iu is None else f"{e.published_mean_iu:.1f}"
        rows.append((e.name, e.file, sha1, present, published))
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip())

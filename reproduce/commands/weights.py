"""Download (or import), check and convert the official caffemodels into the weights directory.

For each selected entry of ``reproduce.weights.manifest.MANIFEST`` (all by default; ``--only
NAME …`` picks some by name, file name or release folder — see ``--list``):

1. download ``<dir>/<file>.caffemodel`` with a progress bar, resuming a ``<file>.part`` left
   by an interrupted run (HTTP Range), retrying broken transfers, and trying the entry's URLs
   in order (the release's host ``dl.caffe.berkeleyvision.org`` first, then mirrors — listed
   only for files whose sha1 is published); each URL's failure, a wrong sha1 included, moves
   on to the next, and when all fail the one-line error names every URL and why;
2. check its sha1 — against the manifest where one is published, otherwise against the sha1
   recorded in ``<dir>/weights.lock.json`` by an earlier download — and rename it into place
   only then;
3. convert it to ``<dir>/<file>.pth`` (a plain state_dict) with ``reproduce.weights.convert``;
   a file without a published sha1 has its sha1 recorded in the lock file only now, once it
   parsed as weights and converted (an HTML error page is never pinned). ``--force`` fetches
   anew and replaces such a recorded sha1 (never a published one).

``--from DIR`` also accepts pytorch-fcn's converted copies (``fcn8s_from_caffe.pth`` …,
``manifest.EQUIVALENTS``) where DIR lacks the caffemodel: held to pytorch-fcn's published
md5s, read with ``weights_only=True``, checked against the net and written as the ``.pth``.

``--from DIR`` takes the files from DIR instead of the network: the release's file names
(``DIR/fcn8s-heavy-pascal.caffemodel`` …), checked like downloads (sha1 or lock), copied
atomically into the weights directory and converted. With ``--only`` every named file must be
in DIR; without it, the files DIR lacks are listed by name and skipped (at least one must be
there). ``nyud-fcn32s-color-d`` was never released (the release's folder has no
``caffemodel-url``): it is skipped by downloads of all entries, and can only be imported.

A file already present is checked, not fetched again (``--force`` fetches anew). A failure
prints one line for that file and the others go on; the exit status is 1 if any file
failed, 0 otherwise. ``--mirror URL`` (repeatable, tried in order) fetches ``URL/<file>``
instead of the manifest's URLs.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reproduce.cli import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from reproduce.commands.common import add_quiet

    parser.add_argument("--only", nargs="+", metavar="NAME", help="only these entries (default: all)")
    parser.add_argument("--dir", type=Path, default=Path("weights"), help="weights directory (default: weights)")
    parser.add_argument("--from", dest="from_dir", type=Path, metavar="DIR",
                        help="import the release's files from DIR (checked and converted like downloads)")
    parser.add_argument("--mirror", metavar="URL", action="append",
                        help="fetch URL/<file name> instead of the official URLs (repeat to try several in order)")
    parser.add_argument("--no-convert", action="store_true", help="keep the caffemodels only, write no .pth")
    parser.add_argument("--force", action="store_true", help="download again even if the file is present")
    parser.add_argument("--retries", type=int, default=3, help="retries of a broken transfer (default 3)")
    parser.add_argument("--timeout", type=float, default=30.0, help="network timeout in seconds (default 30)")
    parser.add_argument("--list", action="store_true", help="list the manifest and what is present; download nothing")
    add_quiet(parser)


def run(args: argparse.Namespace) -> int:
    from reproduce.weights import manifest

    try:
        entries = manifest.select(args.only)
    except KeyError as err:
        raise UserError(err.args[0]) from None
    if args.list:
        _list(entries, args.dir)
        return 0
    source_dir: Path | None = getattr(args, "from_dir", None)
    if source_dir is not None and not source_dir.is_dir():
        raise UserError(f"--from {source_dir}: not a directory")
    explicit = bool(args.only)
    failures = done = 0
    missing: list[str] = []
    unfetched = []   # entries whose download failed (not a wrong file): what to fetch elsewhere
    for e in entries:
        if source_dir is None and not explicit and not e.released:
            print(f"{e.name}: skipped — not released by the reference release (import it with --from DIR)",
                  flush=True)
            continue
        if (source_dir is not None and not explicit and not (source_dir / e.file).exists()
                and not (args.dir / e.file).is_file() and _equivalent_in(e, source_dir) is None):
            missing.append(e.file)
            continue
        try:
            print(f"{e.name}: {fetch_entry(e, args)}", flush=True)
            done += 1
        except Exception as err:  # one line per file; the others go on
            if not _reportable(err):
                raise
            failures += 1
            print(f"error: {err}", file=sys.stderr, flush=True)
            if source_dir is None and _is_transfer_failure(err):
                unfetched.append(e)
    if missing:
        print(f"not in {source_dir} (skipped): {', '.join(missing)}", file=sys.stderr, flush=True)
        if not done and not failures:
            print(f"error: {source_dir}: none of the release's files is there (looked for "
                  f"{', '.join(e.file for e in entries)})", file=sys.stderr, flush=True)
            return 1
    if failures:
        again = "fix the files in --from DIR" if source_dir is not None else "run the command again to resume or retry"
        print(f"{failures} of {len(entries) - len(missing)} file(s) failed; {again}", file=sys.stderr)
        if unfetched:
            print(offline_routes(unfetched, args.dir), file=sys.stderr)
        return 1
    return 0


def _is_transfer_failure(err: Exception) -> bool:
    from reproduce.weights.download import ChecksumError, DownloadError

    return isinstance(err, (DownloadError, OSError)) and not isinstance(err, ChecksumError)


def offline_routes(entries, directory: Path) -> str:
    """What to do when the files cannot be downloaded here: the three offline routes, and each
    file's URLs and checksum to fetch it on another machine."""
    from reproduce.weights import manifest

    lines = ["Offline, or the host unreachable? Three ways on:",
             "  1. fetch the files below on a machine that can, put them in a folder DIR under these names, then:",
             "       make weights WEIGHTS_FROM=DIR        (python -m reproduce weights --from DIR)",
             "  2. from a mirror serving URL/<file name>:",
             "       python -m reproduce weights --mirror URL",
             "  3. run this command again when the network is back (downloads resume).",
             "The files (sha1: checked on import; 'lock' where the release published none and an earlier "
             "download recorded it; 'unknown' where neither):"]
    for e in entries:
        sha1, origin = manifest.expected_sha1(e, directory)
        check = f"{sha1} ({'lock' if origin.startswith('lock') else 'published'})" if sha1 else "unknown"
        lines.append(f"  {e.file}  sha1 {check}")
        lines.extend(f"      {url}" for url in e.urls)
    return "\n".join(lines)


def _reportable(err: Exception) -> bool:
    from reproduce.caffe.errors import CaffeFormatError
    from reproduce.weights.download import DownloadError

    return isinstance(err, (DownloadError, CaffeFormatError, OSError, ValueError, UserError))


def url_for(e, mirror: str | None) -> str:
    """The first URL of ``e`` (``mirror/<file>`` when a mirror is given)."""
    urls = urls_for(e, [mirror] if mirror else None)
    return urls[0] if urls else ""


def urls_for(e, mirrors=None) -> tuple[str, ...]:
    """The URLs to try for ``e``, in order: ``<mirror>/<file>`` for each mirror, else the manifest's."""
    if mirrors:
        return tuple(f"{m.rstrip('/')}/{e.file}" for m in mirrors)
    return e.urls


def fetch_entry(e, args: argparse.Namespace) -> str:
    """Download or import (or check), record and convert one entry; returns a one-line summary."""
    from reproduce.weights import manifest
    from reproduce.weights.download import (ChecksumError, DownloadError, download_from, import_file,
                                            part_path, sha1_of, source_path)

    directory: Path = args.dir
    dest = directory / e.file
    source_dir: Path | None = getattr(args, "from_dir", None)
    urls = urls_for(e, args.mirror)
    if source_dir is not None and not (source_dir / e.file).exists() and not dest.is_file():
        equivalent = _equivalent_in(e, source_dir)
        if equivalent is not None:
            return import_equivalent(e, equivalent, source_dir / equivalent.file, args)
    expected, origin = manifest.expected_sha1(e, directory)
    replaced = ""
    if args.force:
        part_path(dest).unlink(missing_ok=True)
        source_path(dest).unlink(missing_ok=True)
        if origin.startswith("lock file"):   # --force replaces a pin of first use, never a published sha1
            replaced = f" (replaces the sha1 pinned in the {origin}, {expected})"
            expected, origin = None, "none"
    pin = None   # (sha1, size, url) to record once the file is verified (parsed as weights)
    if dest.is_file() and not args.force:
        digest = sha1_of(dest)
        if expected and digest != expected:
            raise DownloadError(f"{dest}: present, but its sha1 {digest} differs from the expected {expected} "
                                f"(from the {origin}); delete it or pass --force to download it again")
        what = f"present, sha1 {digest} " + (f"matches the {origin}" if expected else "recorded in the lock file")
        if not expected:
            pin = (digest, dest.stat().st_size, urls[0] if urls else "")
        fresh = False
    else:
        try:
            if source_dir is not None:
                result = import_file(source_dir / e.file, dest, sha1=expected)
            elif not urls:
                raise DownloadError(f"{e.file}: not released — the reference release has no caffemodel-url "
                                    f"for {e.folder or e.name}; import a file of this name with --from DIR")
            else:
                result = download_from(urls, dest, sha1=expected, timeout=args.timeout, retries=args.retries,
                                       progress=not args.quiet)
        except ChecksumError as err:
            if origin.startswith("lock file"):
                raise ChecksumError(f"{err}; the expected sha1 was recorded in the {origin} at an earlier "
                                    f"download — if the file really changed, pass --force to replace it") from None
            raise
        if not result.checked:
            pin = (result.sha1, result.size, result.url)
        check = (f"matches the {origin}" if result.checked
                 else f"recorded in {directory / manifest.LOCK_FILE} (no published sha1)")
        if source_dir is not None:
            what = f"imported {result.size:,} bytes from {source_dir / e.file}, sha1 {result.sha1} {check}{replaced}"
        else:
            resumed = f", resumed at byte {result.resumed_from:,}" if result.resumed_from else ""
            via = f" from {result.url}" if len(urls) > 1 else ""
            what = f"downloaded {result.size:,} bytes{via}{resumed}, sha1 {result.sha1} {check}{replaced}"
        fresh = True
    pth = directory / e.pth
    if args.no_convert or (pth.is_file() and not fresh and pth.stat().st_mtime >= dest.stat().st_mtime):
        if pin is not None:   # nothing to convert: parse it anyway before its sha1 is trusted
            _verified_weights(dest, pin)
            manifest.record_sha1(directory, e.file, *pin)
        return what if args.no_convert else f"{what}; {pth} up to date"
    weights = _verified_weights(dest, pin, progress=not args.quiet)
    save_converted(weights, pth)
    if pin is not None:   # trust on first use only for a file that parsed as weights and converted
        manifest.record_sha1(directory, e.file, *pin)
    return f"{what}; converted to {pth}"


def _equivalent_in(e, source_dir: Path):
    from reproduce.weights import manifest

    return next((q for q in manifest.equivalents(e) if (source_dir / q.file).is_file()), None)


def import_equivalent(e, equivalent, src: Path, args: argparse.Namespace) -> str:
    """pytorch-fcn's converted copy of ``e`` (``manifest.Equivalent``): its md5 checked against the
    published ones, read with ``weights_only=True``, its layers checked against ``e``'s net as
    Caffe's ``CopyTrainedLayersFrom`` would, and written as ``e``'s ``.pth``."""
    from reproduce.weights.download import import_file
    from reproduce.weights.pretrained import load_net

    local = args.dir / equivalent.file
    result = import_file(src, local, md5=equivalent.md5s, md5_origin=f"published by {equivalent.source}")
    weights = _verified_weights(local, None)
    try:
        load_net(e.net, weights, split="deploy", num_classes=e.num_classes)   # every layer of the net, fitting
    except ValueError as err:
        raise UserError(f"{src}: not {e.name}'s weights: {' '.join(str(err).split())}") from None
    pth = args.dir / e.pth
    save_converted(weights, pth)
    return (f"imported {result.size:,} bytes from {src} (pytorch-fcn's converted copy of {e.file}), md5 matches "
            f"{equivalent.source}; checked against {e.net} and written to {pth}")


def _verified_weights(dest: Path, pin, progress: bool = False):
    """``dest`` read as weights; when its sha1 is not yet pinned a failure says so and how to recover."""
    from reproduce.caffe.errors import CaffeFormatError
    from reproduce.weights.convert import load_weights

    try:
        return load_weights(dest, progress=progress)
    except CaffeFormatError as err:
        if pin is None:
            raise
        raise CaffeFormatError(f"{err.message} — not a usable weights file, so its sha1 was not recorded; "
                               f"delete it or pass --force to fetch it again", err.path, err.where) from None


def save_converted(weights, pth: Path) -> Path:
    from reproduce.commands.convert import refuse_empty_parameter_layers
    from reproduce.weights.convert import save_weights

    refuse_empty_parameter_layers(weights, getattr(weights, "source", pth))
    return save_weights(pth, weights)


def convert_file(src: Path, dst: Path, progress: bool = False) -> Path:
    """``src`` caffemodel → ``dst`` .pth through ``reproduce.weights.convert`` (blobs as Caffe holds them)."""
    from reproduce.weights.convert import load_weights, save_weights

    return save_weights(dst, load_weights(src, progress=progress))


def _list(entries, directory: Path) -> None:
    from reproduce.weights import manifest

    lock = manifest.read_lock(directory)
    header = ("name", "file", "dataset", "classes", "sha1", "present", "published")
    rows = []
    for e in entries:
        sha1 = e.sha1 or (lock.get(e.file, {}).get("sha1") and f"{lock[e.file]['sha1']} (lock)") or manifest.UNKNOWN
        present = ", ".join(name for name in (e.file, e.pth) if (directory / name).is_file()) or "-"
        file = e.file if e.released else f"{e.file} (not released)"
        rows.append((e.name, file, e.dataset, e.classes_text, sha1, present, e.published_text))
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip())
    if any(e.scores for e in entries):
        print("(paper rows — CVPR 2015, original training — are context, not measurements of the released "
              "files; see weights/README.md)")

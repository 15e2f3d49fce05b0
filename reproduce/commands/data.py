"""Download (or import), extract and check the datasets of the reference release.

``data fetch NAME …`` brings each dataset's archives into ``<dir>/archives/`` (resuming an
interrupted download; ``--from`` takes them from a mirror base URL or a local folder holding
the release's file names), checks their sha1 (the release's where published, else the one
recorded in ``<dir>/datasets.lock.json`` at first use), extracts them beside and moves them
into the layout the release's data layers read (``<dir>/sbdd/dataset``, ``<dir>/pascal/VOC2011``,
``<dir>/nyud``, ``<dir>/sift-flow``, ``<dir>/pascal-context``), then checks them.
``data check [NAME …]`` counts each split against the release's figures and names what is
missing and the command that gets it. Datasets: sbd, voc2011, nyud, siftflow, pascalcontext.
NYUDv2's HHA images are in no archive of the release: ``data fetch nyud`` computes them from
``<dir>/nyud/data/depth`` with Gupta et al.'s encoding (``reproduce.data.hha``) for every id of
the split lists lacking one, and ``data hha`` does only that (resumable; existing files,
e.g. Gupta's own HHA PNGs, are kept). Exit status 1 when anything failed or is missing.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from reproduce.commands.common import add_quiet

    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    fetch = sub.add_parser("fetch", help="download (or import), extract and check datasets")
    fetch.add_argument("names", nargs="+", metavar="NAME",
                       help="sbd, voc2011, nyud, siftflow, pascalcontext")
    fetch.add_argument("--dir", type=Path, default=Path("data"), help="data directory (default: data)")
    fetch.add_argument("--from", dest="source", metavar="DIR_OR_URL",
                       help="take the release's files from a mirror base URL or a local folder")
    fetch.add_argument("--refetch", action="store_true",
                       help="start over: delete what an earlier fetch left (archives, extracted trees, recorded "
                            "sha1s; data check lists them), then fetch")
    add_quiet(fetch)
    fetch.add_argument("--retries", type=int, default=3, help="retries of a broken transfer (default 3)")
    fetch.add_argument("--timeout", type=float, default=30.0, help="network timeout in seconds (default 30)")
    hha = sub.add_parser("hha", help="compute NYUDv2's HHA images (Gupta et al.) from its depth PNGs where missing")
    hha.add_argument("--dir", type=Path, default=Path("data"), help="data directory (default: data)")
    add_quiet(hha, "no progress bar")
    hha.add_argument("--raw-depth", type=Path, metavar="DIR",
                     help="raw Kinect depth PNGs img_<id>.png (e.g. Gupta et al.'s rawdepth): their zeros "
                          "are the missing-data mask, as in Gupta's saveHHA (default: the depth's zeros)")
    hha.add_argument("--jobs", type=int, default=1, metavar="N", help="worker processes (default 1)")
    check = sub.add_parser("check", help="count what is there and name what is missing")
    check.add_argument("names", nargs="*", metavar="NAME",
                       help="datasets to check (default: all): sbd, voc2011, nyud, siftflow, pascalcontext, "
                            "or a dataset as its description names it (voc: sbd and voc2011)")
    check.add_argument("--dir", type=Path, default=Path("data"), help="data directory (default: data)")
    check.add_argument("--dataset", type=Path, metavar="DIR",
                       help="check your own dataset folder instead (images/ + labels/, or VOC-style; "
                            "see README 'Your own data'): every problem, then counts and class frequencies")
    check.add_argument("--num-classes", type=int, help="--dataset without classes.txt: K (default: read off the labels)")
    check.add_argument("--ignore-label", type=int, default=255,
                       help="--dataset: the label to ignore (default 255; colour masks: the colour of "
                            "classes.txt's line N, from 0)")


def run(args: argparse.Namespace) -> int:
    from reproduce.data import fetch

    if args.action == "check" and args.dataset is not None:
        return _check_folder(args)
    if args.action == "check":
        from reproduce.data.data_check import check_release

        return check_release(args.names, args.dir, live=True).show()
    if args.action == "hha":
        nyud = fetch.select(["nyud"])
        for line in fetch.make_derived(nyud[0], args.dir, progress=not args.quiet,
                                       raw_depth_dir=args.raw_depth, jobs=args.jobs):
            print(f"nyud: {line}", flush=True)
        return _check(nyud, args.dir)
    releases = fetch.select(args.names)
    source = args.source
    if source and not fetch._is_url(source) and not Path(source).is_dir():
        raise fetch.DataFetchError(f"--from {source}: not a directory (nor an http:// or file:// URL)")
    failed = []
    for release in releases:
        try:
            if args.refetch:
                from reproduce.data.refetch import forget

                for line in forget(release, args.dir):
                    print(f"{release.name}: {line}", flush=True)
            for line in fetch.fetch_dataset(release, args.dir, source, progress=not args.quiet,
                                            timeout=args.timeout, retries=args.retries):
                print(f"{release.name}: {line}", flush=True)
        except Exception as err:  # one line for this dataset; the others go on
            if not _reportable(err):
                raise
            failed.append(release.name)
            print(f"error: {release.name}: {err}", file=sys.stderr, flush=True)
    status = _check([r for r in releases if r.name not in failed], args.dir)
    if failed:
        print(f"{len(failed)} of {len(releases)} dataset(s) failed: {', '.join(failed)}; "
              f"fix the cause and run the command again (downloads resume)", file=sys.stderr)
        return 1
    return status


def _reportable(err: Exception) -> bool:
    from reproduce.data.fetch import DataFetchError
    from reproduce.weights.download import DownloadError

    return isinstance(err, (DataFetchError, DownloadError, OSError, ValueError))


def _check(releases, directory: Path) -> int:
    from reproduce.data.data_check import check_archives

    return check_archives(releases, directory, live=True).show()


def _check_folder(args: argparse.Namespace) -> int:
    """``data check --dataset DIR``: every problem one line on stderr, then the counts."""
    from reproduce.data.data_check import check_folder_dataset

    if args.names:
        raise SystemExit("error: data check: give release dataset names or --dataset DIR, not both")
    return check_folder_dataset(args.dataset, num_classes=args.num_classes, ignore_label=args.ignore_label,
                                progress=sys.stderr.isatty()).show()

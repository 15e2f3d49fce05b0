"""Download, extract and check the datasets of the reference release (``python -m reproduce data``).

The release (fcn.berkeleyvision.org) points at each dataset's own archive and expects it
unpacked under ``data/`` in the layout its data layers read (``../data/sbdd/dataset``,
``../data/pascal/VOC2011``, ``../data/nyud``, ``../data/sift-flow``, ``../data/pascal-context``
in the prototxts' ``param_str``). This module is the generic machinery; each dataset states
its facts once, as a ``DatasetRelease`` constant in its own module (``voc.SBD_RELEASE``,
``voc.VOC2011_RELEASE``, ``nyud.NYUD_RELEASE``, ``siftflow.SIFTFLOW_RELEASE``,
``pascalcontext.PASCALCONTEXT_RELEASE``).

For each file of a dataset, in order:

1. skip it if everything it provides is already in place;
2. obtain ``<data dir>/archives/<file>`` — download it (``reproduce.weights.download``:
   resumable ``.part``, retries, sha1 check, atomic rename), or take it from ``--from``
   (a mirror base URL + the release file name, or a local folder holding the release's file
   names); an archive already there is checked, not fetched again;
3. check its sha1 — the published one where the release publishes one, else the one recorded
   in ``<data dir>/datasets.lock.json`` at its first successful extraction (trust on first use);
4. extract the declared members into a temporary folder inside the data dir (tarfile's
   ``data`` filter; absolute names, ``..`` and links are refused, zip likewise), check the
   release's layout is there, and only then move each member into place (``os.replace``), so
   no half-extracted tree is ever left where the loaders look.

Then the split lists that are unions of others (``joins``) are written, and files no archive
of the release holds are computed from the extracted ones (``derived``: NYUDv2's HHA images,
``reproduce.data.hha``), for each id of the split lists that lacks one; files already there
are never overwritten.

Every failure is a ``DataFetchError`` (or the download's ``DownloadError``) whose message is
one line naming the file and what is wrong.
"""
from __future__ import annotations

import errno
import gzip
import importlib
import lzma
import os
import shutil
import sys
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

__all__ = ["Archive", "SplitCount", "Derived", "DatasetRelease", "DataFetchError", "RELEASE_RAW", "LOCK_FILE",
           "release_file", "datasets", "select", "fetch_dataset", "make_derived", "check_dataset", "CheckReport"]

LOCK_FILE = "datasets.lock.json"
ARCHIVES = "archives"
# The release's own files (split lists), at the commit whose sha1s the constants record.
RELEASE_COMMIT = "1305c7378a9f0ab44b2c936f4d60e4687e3d8743"
RELEASE_RAW = f"https://raw.githubusercontent.com/shelhamer/fcn.berkeleyvision.org/{RELEASE_COMMIT}/"
# Where each dataset's constant lives: (module, attribute).
_RELEASES = (("reproduce.data.voc", "SBD_RELEASE"), ("reproduce.data.voc", "VOC2011_RELEASE"),
             ("reproduce.data.nyud", "NYUD_RELEASE"), ("reproduce.data.siftflow", "SIFTFLOW_RELEASE"),
             ("reproduce.data.pascalcontext", "PASCALCONTEXT_RELEASE"))


class DataFetchError(Exception):
    """A dataset file that cannot be fetched, checked or extracted; one line naming it."""


@dataclass(frozen=True)
class Archive:
    """One file a dataset needs: an archive to extract (``members``) or a plain file (``place``).

    ``file`` is the release's name for it (the name under ``--from`` and in ``archives/``; for
    the release's own files their path in its repository, e.g. ``data/pascal/seg11valid.txt``).
    ``members`` maps a path inside the archive (below one of ``roots``, the first whose
    ``expect`` paths all exist) onto a path under the data dir. A plain file is placed only
    where the archives left none.
    """

    file: str
    urls: tuple[str, ...]
    sha1: str | None = None
    members: tuple[tuple[str, str], ...] = ()
    place: str | None = None
    roots: tuple[str, ...] = ("",)
    expect: tuple[str, ...] = ()
    md5: str | None = None         # a checksum others publish (torchvision's catalogue), held as a pin
    md5_source: str = ""           # who publishes it, for messages and the README

    @property
    def destinations(self) -> tuple[str, ...]:
        return (self.place,) if self.place else tuple(dst for _, dst in self.members)

    @property
    def expected_paths(self) -> tuple[str, ...]:
        return self.expect or tuple(src for src, _ in self.members if src)


@dataclass(frozen=True)
class SplitCount:
    """A split list (path under the data dir), its id count in the release, each id's files."""

    split_list: str
    count: int
    samples: tuple[str, ...]   # templates under the data dir with ``{id}``


@dataclass(frozen=True)
class Derived:
    """Files the release's layers read that no archive holds, computed from the extracted ones.

    ``template`` (under the data dir, with ``{id}``) for each id of the ``split_lists`` there
    (their union); ``make`` names ``module:function``, called as ``function(data_dir, ids,
    progress, **options)`` (``make_derived``'s options) and yielding report lines, which
    writes the missing ones; ``command`` (with
    ``{dir}``) is the command that makes them alone.
    """

    what: str
    template: str
    split_lists: tuple[str, ...]
    make: str
    command: str

    def ids(self, data_dir: Path) -> list[str]:
        lists = [data_dir / s for s in self.split_lists if (data_dir / s).is_file()]
        return list(dict.fromkeys(i for path in lists for i in path.read_text().split()))


@dataclass(frozen=True)
class DatasetRelease:
    """What the release says about one dataset: its files, its splits, what must be there."""

    name: str
    title: str
    files: tuple[Archive, ...]
    splits: tuple[SplitCount, ...]
    required: tuple[str, ...] = ()
    # split lists the loaders read that are the union of others, written when absent
    joins: tuple[tuple[str, tuple[str, ...]], ...] = ()
    derived: tuple[Derived, ...] = ()
    note: str = ""


def release_file(path: str, sha1: str, place: str) -> Archive:
    """A file of the release's repository (``data/…``), pinned by its sha1 at ``RELEASE_COMMIT``."""
    return Archive(path, (RELEASE_RAW + path,), sha1, place=place)


def datasets() -> dict[str, DatasetRelease]:
    """Every dataset of the release by name, from the constants in the dataset modules."""
    found = {}
    for module, attribute in _RELEASES:
        release = getattr(importlib.import_module(module), attribute)
        found[release.name] = release
    return found


def select(names) -> list[DatasetRelease]:
    known = datasets()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise DataFetchError(f"unknown dataset(s) {', '.join(unknown)}; choose from {', '.join(known)}")
    return [known[n] for n in dict.fromkeys(names)]


# -- fetch -------------------------------------------------------------------------------------
def fetch_dataset(release: DatasetRelease, data_dir: str | os.PathLike, source: str | None = None, *,
                  progress: bool = True, timeout: float = 30.0, retries: int = 3):
    """Bring every file of ``release`` into place under ``data_dir``; yields one line per file."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    for archive in release.files:
        if all((data_dir / dst).exists() for dst in archive.destinations):
            unused = (f"; --from {source} not used (data fetch {release.name} --refetch replaces it)"
                      if source else "")
            yield f"{archive.file}: in place ({', '.join(archive.destinations)}){unused}"
            continue
        path, sha1, origin, how = _obtain(archive, data_dir, source, progress, timeout, retries)
        if how.startswith("note: "):     # which of archives/ and --from was used, said once
            how, note = path.resolve().as_uri(), how.removeprefix("note: ")
            yield f"{archive.file}: {note}"
        if archive.place:
            _place(path, data_dir / archive.place)
            what = f"placed at {data_dir / archive.place}"
        else:
            what = "extracted " + ", ".join(_extract(archive, path, data_dir, progress))
        if archive.sha1 is None and archive.md5 is None and origin == "none":
            _lockfile().record_sha1(data_dir / LOCK_FILE, archive.file, sha1, path.stat().st_size, how)
            origin = f"recorded in {data_dir / LOCK_FILE}"
        yield f"{archive.file}: {what} (sha1 {sha1} {origin})"
    for dest, sources in release.joins:
        target = data_dir / dest
        if target.exists() or not all((data_dir / s).is_file() for s in sources):
            continue
        ids = [line for s in sources for line in (data_dir / s).read_text().splitlines()]
        _write_atomic(target, "\n".join(ids) + "\n")
        yield f"{dest}: written as {' + '.join(sources)} ({len(ids):,} ids)"
    yield from make_derived(release, data_dir, progress=progress)


def make_derived(release: DatasetRelease, data_dir: str | os.PathLike, *, progress: bool = True, **options):
    """Compute ``release``'s derived files where missing (see ``Derived``); yields report lines.
    ``options`` go to the ``make`` function (``data hha``'s ``raw_depth_dir``, ``jobs``)."""
    data_dir = Path(data_dir)
    for derived in release.derived:
        ids = derived.ids(data_dir)
        if not ids:
            raise DataFetchError(f"{data_dir}: none of the split lists {', '.join(derived.split_lists)} is "
                                 f"there to list the ids whose {derived.what} to make; run python -m "
                                 f"reproduce data fetch {release.name} --dir {data_dir} first")
        module, function = derived.make.split(":")
        yield from getattr(importlib.import_module(module), function)(data_dir, ids, progress, **options)


def _lockfile():
    from reproduce.weights import lockfile

    return lockfile


def expected_sha1(archive: Archive, data_dir: Path) -> tuple[str | None, str]:
    """The sha1 ``archive`` must have and where that comes from (release, lock file or none)."""
    if archive.sha1:
        return archive.sha1, "matches the release's"
    recorded = _lockfile().recorded_sha1(data_dir / LOCK_FILE, archive.file)
    if recorded:
        return recorded, f"matches {data_dir / LOCK_FILE}"
    return None, "none"


def _obtain(archive: Archive, data_dir: Path, source: str | None, progress: bool, timeout: float,
            retries: int) -> tuple[Path, str, str, str]:
    """``archives/<file>`` present and checked: (path, sha1, where the expected sha1 came from, url)."""
    from reproduce.weights.download import (ChecksumError, DownloadError, check_md5, download_from, import_file,
                                            sha1_of)

    dest = data_dir / ARCHIVES / archive.file
    expected, origin = expected_sha1(archive, data_dir)
    md5 = {"md5": archive.md5, "md5_origin": f"from {archive.md5_source}"} if archive.md5 else {}
    if archive.md5 and not expected:
        origin = f"md5 matches {archive.md5_source}'s"
    if dest.is_file():
        digest = sha1_of(dest)
        if expected and digest != expected:
            raise DataFetchError(f"{dest}: sha1 {digest} differs from the expected {expected} "
                                 f"({origin.replace('matches ', 'from ')}); delete it to fetch it again")
        given = Path(source) / archive.file if source and not _is_url(source) else None
        if given is not None and given.is_file() and sha1_of(given) != digest:
            try:
                result = import_file(given, dest, sha1=expected, **md5)   # the folder the user named wins
            except ChecksumError as err:
                raise ChecksumError(f"{err}; {dest} (sha1 {digest}) is kept — to start over from {given}, "
                                    f"run data fetch with --refetch") from None
            return dest, result.sha1, origin, (f"note: {dest} (sha1 {digest}) replaced by {given} "
                                               f"(sha1 {result.sha1}), as --from asks")
        try:
            check_md5(dest, archive.md5, str(dest), f"from {archive.md5_source}")
        except ChecksumError as err:
            raise DataFetchError(f"{err}; delete it to fetch it again") from None
        if not source:
            return dest, digest, origin, dest.resolve().as_uri()
        if given is None:
            return dest, digest, origin, (f"note: {dest} already there: used, not fetched from {source} "
                                          f"(--refetch fetches anew)")
        if not given.is_file():
            return dest, digest, origin, f"note: {dest} used ({given} is not there)"
        return dest, digest, origin, f"note: {dest} used: the same file as {given} (sha1 {digest})"
    try:
        if source and not _is_url(source):
            result = import_file(Path(source) / archive.file, dest, sha1=expected, **md5)
        else:
            urls = (source.rstrip("/") + "/" + archive.file,) if source else archive.urls
            result = download_from(urls, dest, sha1=expected, timeout=timeout, retries=retries,
                                   progress=progress, **md5)
    except ChecksumError as err:
        if origin.startswith("matches " + str(data_dir)):
            raise ChecksumError(f"{err}; the expected sha1 was recorded in {data_dir / LOCK_FILE} at an "
                                f"earlier fetch — if the file really changed, delete its entry there") from None
        raise
    except DownloadError:
        raise
    except OSError as err:  # a full disk while writing the .part
        raise DataFetchError(f"{dest}: cannot write it: {err.strerror or err} (what arrived is kept in "
                             f"{dest}.part; free space and run again to resume)") from None
    return dest, result.sha1, origin, result.url


def _is_url(source: str) -> bool:
    return source.split(":", 1)[0].lower() in ("http", "https", "ftp", "file")


def _place(path: Path, target: Path) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(target, path.read_bytes())
    except OSError as err:
        raise DataFetchError(f"{target}: cannot write it: {err.strerror or err}") from None


def _write_atomic(target: Path, data) -> None:
    from reproduce.caffe.files import atomic_output

    with atomic_output(target) as tmp:
        (tmp.write_text if isinstance(data, str) else tmp.write_bytes)(data)


# -- extraction -------------------------------------------------------------------------------
def _member_name(name: str, archive_path: Path) -> str:
    """A member's name, normalised; unsafe names (absolute, ``..``) are refused."""
    posix = name.replace("\\", "/")
    parts = PurePosixPath(posix).parts
    if posix.startswith("/") or (parts and parts[0].endswith(":")) or ".." in parts:
        raise DataFetchError(f"{archive_path}: unsafe member {name!r} (absolute or '..' path); not extracted")
    return "/".join(p for p in parts if p not in (".", ""))


def _wanted(archive: Archive, name: str) -> bool:
    for root in archive.roots:
        for src, _ in archive.members:
            prefix = "/".join(p for p in (root, src) if p)
            if not prefix or name == prefix or name.startswith(prefix + "/"):
                return True
    return False


def _extract(archive: Archive, path: Path, data_dir: Path, progress: bool) -> list[str]:
    """Extract ``archive``'s members beside (in a temporary folder) and move them into place."""
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".extract-{Path(archive.file).name}-", dir=data_dir))
    except OSError as err:
        raise DataFetchError(f"{data_dir}: cannot create a folder to extract {path} in: "
                             f"{err.strerror or err}") from None
    try:
        try:
            if zipfile.is_zipfile(path) or path.suffix.lower() == ".zip":
                count, tops = _extract_zip(archive, path, tmp, progress)
            else:
                count, tops = _extract_tar(archive, path, tmp, progress)
        except DataFetchError:
            raise
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, lzma.LZMAError,
                gzip.BadGzipFile) as err:
            raise DataFetchError(f"{path}: corrupt or truncated archive ({_why(err)}); delete it and fetch "
                                 f"it again") from None
        except OSError as err:
            if err.errno is None:
                raise DataFetchError(f"{path}: corrupt or truncated archive ({_why(err)}); delete it and fetch "
                                     f"it again") from None
            raise DataFetchError(f"{path}: cannot extract it into {data_dir}: {err.strerror or err}"
                                 + (" (free space and run again)" if err.errno == errno.ENOSPC else "")) from None
        root = next((r for r in archive.roots
                     if all((tmp / r / p).exists() for p in archive.expected_paths)), None)
        if root is None:
            wanted = ", ".join("/".join(x for x in (archive.roots[0], p) if x) for p in archive.expected_paths)
            found = ", ".join(sorted(tops)[:5]) + (" …" if len(tops) > 5 else "") if tops else "no members"
            raise DataFetchError(f"{path}: not the release's layout: expected {wanted} in it, found "
                                 f"{found} at its top ({count} member(s) matched); nothing extracted")
        placed = []
        for src, dst in archive.members:
            target = data_dir / dst
            if target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / root / src, target)
            placed.append(dst)
        return placed
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _why(err: BaseException) -> str:
    text = str(err).splitlines()[0].rstrip(": ") if str(err) else type(err).__name__
    return "not a tar archive" if text == "file could not be opened successfully" else text


def _bar(progress: bool, total: int, label: str):
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=f"extract {label}",
                file=sys.stderr, dynamic_ncols=True, leave=False)


def _decompressor(raw):
    """``raw`` (an open archive) through its compression, told by its first bytes, or None
    for an uncompressed tar. gzip, bzip2 and xz streams carry a checksum of their content
    (gzip: CRC-32 and length) that these readers check only when read to the very end."""
    import bz2

    head = raw.read(6)
    raw.seek(0)
    if head.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if head.startswith(b"BZh"):
        return bz2.BZ2File(raw, mode="rb")
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(raw, mode="rb")
    return None


def _read_to_end(stream) -> None:
    """Read what tarfile left after the end-of-archive marker, so the compressed stream's
    checksum and length (and any damage after the last member) are checked."""
    while stream.read(1 << 20):
        pass


def _extract_tar(archive: Archive, path: Path, tmp: Path, progress: bool) -> tuple[int, set[str]]:
    """Extract into ``tmp``; the whole compressed stream is read and its checksum verified before
    this returns (a wrong CRC raises), so nothing unverified is ever moved into place."""
    count, tops = 0, set()
    bar = _bar(progress, path.stat().st_size, Path(archive.file).name)
    try:
        with open(path, "rb") as raw:
            stream = _decompressor(raw)
            with tarfile.open(fileobj=stream or raw, mode="r:") as tar:
                count, tops = _extract_members(archive, path, tar, raw, tmp, bar)
            if stream is not None:
                _read_to_end(stream)
                stream.close()
    except tarfile.FilterError as err:
        raise DataFetchError(f"{path}: unsafe member ({_why(err)}); not extracted") from None
    finally:
        if bar is not None:
            bar.close()
    return count, tops


SPACE_MARGIN = 64 << 20


def _check_space(path: Path, tmp: Path, size: int, what: str) -> None:
    """Refuse to extract ``size`` bytes (a member's declared size, or a zip's total) that the
    disk cannot hold: an archive expanding past the free space (a decompression bomb, or just
    a full disk) stops before writing, in one line, with nothing moved into place."""
    free = shutil.disk_usage(tmp).free
    if size + SPACE_MARGIN > free:
        raise DataFetchError(f"{path}: extracting {what} needs {size / 2**20:,.0f} MiB, only "
                             f"{free / 2**20:,.0f} MiB are free in {tmp.parent}; free space and run again")


def _extract_members(archive: Archive, path: Path, tar, raw, tmp: Path, bar) -> tuple[int, set[str]]:
    count, tops = 0, set()
    done = 0
    for member in tar:
        name = _member_name(member.name, path)
        tops.add(name.split("/", 1)[0])
        if member.issym() or member.islnk():
            target = _member_name(member.linkname, path) if member.islnk() else member.linkname
            if member.issym() and (target.startswith("/") or ".." in PurePosixPath(target).parts):
                raise DataFetchError(f"{path}: member {member.name!r} links outside the archive "
                                     f"({member.linkname!r}); not extracted")
        if _wanted(archive, name):
            _check_space(path, tmp, member.size, name)
            tar.extract(member, tmp, filter="data")
            count += 1
        if bar is not None:
            bar.update(raw.tell() - done)
            done = raw.tell()
    return count, tops


def _extract_zip(archive: Archive, path: Path, tmp: Path, progress: bool) -> tuple[int, set[str]]:
    count, tops = 0, set()
    with zipfile.ZipFile(path) as zf:
        bad = zf.testzip()   # every member's CRC-32, the ones not extracted too
        if bad is not None:
            raise DataFetchError(f"{path}: corrupt archive (member {bad!r} fails its CRC-32 check); delete it "
                                 f"and fetch it again")
        infos = zf.infolist()
        _check_space(path, tmp, sum(i.file_size for i in infos if _wanted(archive, _member_name(i.filename, path))),
                     "its members")
        bar = _bar(progress, sum(i.compress_size for i in infos), Path(archive.file).name)
        try:
            for info in infos:
                name = _member_name(info.filename, path)
                tops.add(name.split("/", 1)[0])
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise DataFetchError(f"{path}: member {info.filename!r} is a symbolic link; not extracted")
                if name and _wanted(archive, name):
                    zf.extract(info, tmp)
                    count += 1
                if bar is not None:
                    bar.update(info.compress_size)
        finally:
            if bar is not None:
                bar.close()
    return count, tops


# -- check ------------------------------------------------------------------------------------
@dataclass
class CheckReport:
    release: DatasetRelease
    lines: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.missing


def check_dataset(release: DatasetRelease, data_dir: str | os.PathLike) -> CheckReport:
    """Count each split of ``release`` under ``data_dir`` against the release's figures."""
    data_dir = Path(data_dir)
    report = CheckReport(release)
    for name in release.required:
        if not (data_dir / name).is_file():
            report.missing.append(f"{data_dir / name} is missing")
    for split in release.splits:
        list_path = data_dir / split.split_list
        if not list_path.is_file():
            report.missing.append(f"split list {list_path} is missing")
            continue
        ids = [i for i in list_path.read_text().splitlines()]
        lacking = [(i, data_dir / t.format(id=i)) for i in ids for t in split.samples
                   if not (data_dir / t.format(id=i)).is_file()]
        lacking_ids = len({i for i, _ in lacking})
        line = f"{split.split_list}: {len(ids):,} ids (the release: {split.count:,})"
        if lacking:
            line += f", {lacking_ids:,} without their files (first: {lacking[0][1]})"
            report.missing.append(f"{lacking_ids:,} ids of {list_path} lack files, first {lacking[0][1]}")
        elif len(ids) != split.count:
            report.missing.append(f"{list_path} lists {len(ids):,} ids, the release {split.count:,}")
        else:
            line += ", every file present"
        report.lines.append(line)
    for derived in release.derived:
        ids = derived.ids(data_dir)
        if not ids:  # no split list: reported above
            continue
        lacking = [data_dir / derived.template.format(id=i) for i in ids
                   if not (data_dir / derived.template.format(id=i)).is_file()]
        folder = PurePosixPath(derived.template).parent
        line = f"{folder}: {len(ids) - len(lacking):,} of {len(ids):,} {derived.what}"
        if lacking:
            line += f" (first missing: {lacking[0]})"
            report.missing.append(f"{len(lacking):,} of {len(ids):,} {derived.what} missing, first {lacking[0]}; "
                                  f"make them with: {derived.command.format(dir=data_dir)}")
        report.lines.append(line)
    return report

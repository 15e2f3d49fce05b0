"""What ``python -m reproduce data check`` says about a dataset, as its description lays it out.

``check_dataset(description)`` answers for a release dataset by counting each archive that holds
it (``description.fetch``: VOC's are SBD and VOC2011) against the release's figures
(``fetch.check_dataset``), naming what is missing and the command that gets it; for a user's
folder (``--dataset DIR``) by reading every file (``folder_check.check_description``): every
problem one line, then the counts and class frequencies. Either way the answer is a
``DataCheck``: the lines to print in order, each for stdout or stderr, and whether the data are
complete and sound (``data check`` exits 1 otherwise). Imports no torch.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class DataCheck:
    """The lines ``data check`` prints, in order, each ``(to_stderr, text)``, and ``ok``;
    ``live``: each line is printed as it comes (a long check shows its progress)."""

    lines: list[tuple[bool, str]] = field(default_factory=list)
    ok: bool = True
    live: bool = False

    def out(self, text: str) -> None:
        self._add(False, text)

    def err(self, text: str) -> None:
        self._add(True, text)

    def _add(self, to_stderr: bool, text: str) -> None:
        self.lines.append((to_stderr, text))
        if self.live:
            print(text, file=sys.stderr if to_stderr else sys.stdout)

    def show(self) -> int:
        """Print the lines (not yet printed); the exit status (1 when anything is wrong or missing)."""
        if not self.live:
            for to_stderr, text in self.lines:
                print(text, file=sys.stderr if to_stderr else sys.stdout)
        return 0 if self.ok else 1


def check_release(names, directory, live: bool = False) -> DataCheck:
    """``data check [NAME …]``: a description's name (``voc``) stands for the archives that hold
    it, an archive's name (``sbd``) for itself; no name: every release dataset's description."""
    from . import fetch
    from .description import RELEASE_DATASETS, fetch_names

    return check_archives(fetch.select(fetch_names(names or RELEASE_DATASETS)), directory, live)


def check_archives(releases, directory, live: bool = False) -> DataCheck:
    """Each release archive's splits counted under ``directory``; what is missing named, with the
    command that gets it (or every leftover of an earlier fetch to delete)."""
    from . import fetch

    check = DataCheck(live=live)
    for release in releases:
        report = fetch.check_dataset(release, directory)
        for line in report.lines:
            check.out(f"{release.name}: {line}")
        if release.note:
            check.out(f"{release.name}: note: {release.note}")
        if report.missing:
            check.ok = False
            for what in report.missing:
                check.err(f"{release.name}: missing: {what}")
            _how_to_get(check, release, Path(directory))
        else:
            check.out(f"{release.name}: complete")
    return check


def _how_to_get(check: DataCheck, release, directory: Path) -> None:
    """The command that gets what is missing — or, when an earlier fetch put files in place that
    are not the release's, every file to delete and the command that deletes them and fetches."""
    from .refetch import leftovers

    found = leftovers(release, directory)
    in_place = [a for a in release.files if a.members and all((directory / d).exists() for d in a.destinations)]
    command = f"python -m reproduce data fetch {release.name} --dir {directory}"
    if not in_place or not found:
        check.err(f"{release.name}: get it with: {command}")
        return
    names = ", ".join(a.file for a in in_place)
    check.err(f"{release.name}: {names} {'is' if len(in_place) == 1 else 'are'} extracted but what is in place is not "
              f"the release's (a wrong or incomplete archive?); fetching again changes nothing. Delete:")
    for line in found.describe(directory):
        check.err(f"{release.name}:   {line}")
    check.err(f"{release.name}: then fetch again — or do both with: {command} --refetch")


def check_dataset(description, directory=None, *, shown=None, progress: bool = False,
                  live: bool = False) -> DataCheck:
    """A dataset as its description says: a user's folder (``description.root``) every file read
    (``folder_check.check_description``; ``shown``: the folder as the user named it), a release
    dataset each archive that holds it (``description.fetch``) counted under ``directory``."""
    if description.root is not None:
        from .folder_check import check_description

        return _folder_lines(check_description(description, progress), shown or description.root)
    from . import fetch

    return check_archives(fetch.select(description.fetch), directory, live)


def check_folder_dataset(root, *, num_classes: int | None = None, ignore_label: int = 255,
                         progress: bool = False) -> DataCheck:
    """``data check --dataset DIR``: the folder's description, then its check; a folder that
    cannot be described is its one problem."""
    from .errors import DatasetError
    from .folder import describe_folder
    from .folder_check import CheckReport

    try:
        description = describe_folder(root, num_classes=num_classes, ignore_label=ignore_label)
    except DatasetError as err:
        return _folder_lines(CheckReport(problems=[str(err).splitlines()[0]]), root)
    return check_dataset(description, shown=root, progress=progress)


def _folder_lines(report, shown) -> DataCheck:
    check = DataCheck(ok=report.ok)
    for line in report.lines:
        check.out(line)
    for problem in report.problems:
        check.err(f"problem: {problem}")
    if report.problems:
        check.err(f"{len(report.problems)} problem(s) in {shown}")
    else:
        check.out(f"{shown}: no problems found")
    return check

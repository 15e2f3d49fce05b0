"""The offline and recovery routes, named where they are needed.

``weights`` that cannot download end with what to do (``WEIGHTS_FROM=DIR``, ``--mirror``, each
file's URLs and sha1); ``data fetch --from DIR`` says whether an archive already in
``archives/`` or the folder's was used (the folder the user names wins); after a wrong archive
was extracted, ``data check`` names every file to delete and ``data fetch NAME --refetch``
deletes them and fetches again.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from http_fixture import closed_port_url
from reproduce.cli import main
from reproduce.data import make_synthetic_dataset
from test_data_fetch import _fetch, _tar, facts, release  # noqa: F401  (fixtures)

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def test_weights_offline_ends_with_the_routes_and_each_files_urls_and_sha1(tmp_path):
    from reproduce.weights import manifest

    proc = subprocess.run(
        [sys.executable, "-m", "reproduce", "weights", "--only", "fcn8s", "fcn32s", "--dir", str(tmp_path),
         "--mirror", closed_port_url(), "--retries", "0", "--quiet"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    tail = proc.stderr.split("file(s) failed", 1)[1]
    assert "make weights WEIGHTS_FROM=DIR" in tail and "--from DIR" in tail and "--mirror URL" in tail
    for name in ("fcn8s", "fcn32s"):
        e = manifest.entry(name)
        assert e.file in tail and all(url in tail for url in e.urls), name
    assert f"fcn8s-heavy-pascal.caffemodel  sha1 {manifest.entry('fcn8s').sha1} (published)" in tail
    assert "fcn32s-heavy-pascal.caffemodel  sha1 unknown" in tail


def test_the_makefile_names_weights_and_data_imports_alike():
    text = (PROJECT_ROOT / "Makefile").read_text()
    assert '--from "$(WEIGHTS_FROM)"' in text and '--from "$(DATA_FROM)"' in text
    dry = subprocess.run(["make", "-n", "weights", "FROM=/old", f"STAMP={PROJECT_ROOT / 'Makefile'}"],
                         cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert '--from "/old"' in dry.stdout and "FROM= is the old name of WEIGHTS_FROM=" in dry.stdout


def _folder(path: Path, files: dict) -> Path:
    for name, data in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    return path


def _wrong_sbd(tmp_path: Path) -> bytes:
    """An SBD archive of the right layout with other contents (2 training ids, the release 3)."""
    other = make_synthetic_dataset(tmp_path / "other", n_train=2, n_val=2, sides=(40, 48), seed=9)
    return _tar([(Path(other.sbdd_dir), "benchmark_RELEASE/dataset")], "w:gz")


def test_check_names_every_file_a_wrong_archive_left_and_refetch_starts_over(facts, tmp_path, capsys):
    wrong = _folder(tmp_path / "wrong", {"benchmark.tgz": _wrong_sbd(tmp_path)})
    right = _folder(tmp_path / "right", {"benchmark.tgz": facts["benchmark.tgz"]})
    data = tmp_path / "data"
    rc, out, err = _fetch(capsys, data, "sbd", "--from", str(wrong))
    assert rc == 1 and "lists 2 ids, the release 3" in err
    assert main(["data", "check", "sbd", "--dir", str(data)]) == 1
    err = capsys.readouterr().err
    assert "fetching again changes nothing" in err
    assert f"{data / 'archives' / 'benchmark.tgz'}" in err and f"{data / 'sbdd' / 'dataset'}/ (a folder)" in err
    assert f"the entries benchmark.tgz of {data / 'datasets.lock.json'}" in err
    assert f"python -m reproduce data fetch sbd --dir {data} --refetch" in err
    assert "get it with" not in err
    # fetching again from the right folder without --refetch does not silently keep the old tree
    rc, out, _ = _fetch(capsys, data, "sbd", "--from", str(right))
    assert "in place (sbdd/dataset); --from" in out and "not used" in out and "--refetch" in out
    rc, out, err = _fetch(capsys, data, "sbd", "--from", str(right), "--refetch")
    assert rc == 0, err
    assert f"sbd: deleted {data / 'archives' / 'benchmark.tgz'}" in out
    assert "sbd: forgot the recorded sha1 of benchmark.tgz" in out and "sbd: complete" in out
    assert len((data / "sbdd/dataset/train.txt").read_text().split()) == 3
    lock = json.loads((data / "datasets.lock.json").read_text())["files"]
    assert lock["benchmark.tgz"]["sha1"] == __import__("hashlib").sha1(facts["benchmark.tgz"]).hexdigest()


def test_an_archive_already_there_and_a_new_from_folder_say_which_is_used(facts, tmp_path, capsys):
    right = _folder(tmp_path / "right", {"benchmark.tgz": facts["benchmark.tgz"]})
    data = tmp_path / "data"
    _folder(data / "archives", {"benchmark.tgz": _wrong_sbd(tmp_path)})   # left by an earlier try
    rc, out, err = _fetch(capsys, data, "sbd", "--from", str(right))
    assert rc == 0, err
    assert f"{data / 'archives' / 'benchmark.tgz'} (sha1 " in out and f"replaced by {right / 'benchmark.tgz'}" in out
    assert (data / "archives" / "benchmark.tgz").read_bytes() == facts["benchmark.tgz"]
    # the same file: used, and said so
    import shutil

    shutil.rmtree(data / "sbdd")
    rc, out, _ = _fetch(capsys, data, "sbd", "--from", str(right))
    assert rc == 0 and "used: the same file as" in out
    # a folder without it: the archive there is used, and said so
    shutil.rmtree(data / "sbdd")
    (tmp_path / "empty").mkdir()
    rc, out, _ = _fetch(capsys, data, "sbd", "--from", str(tmp_path / "empty"))
    assert rc == 0 and f"{data / 'archives' / 'benchmark.tgz'} used ({tmp_path / 'empty' / 'benchmark.tgz'} is not there)" in out

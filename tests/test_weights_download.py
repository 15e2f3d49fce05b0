"""Downloads of the official weights, against a local HTTP server (127.0.0.1) only.

The real servers are never contacted: files are generated here and served by
``http_fixture.FileServer`` — with Range support, an interrupted transfer, a server that
ignores Range — and the ``weights`` command is pointed at it with ``--mirror``.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from http_fixture import FileServer, closed_port_url
from reproduce.weights import manifest
from reproduce.cli import main
from reproduce.weights.download import ChecksumError, DownloadError, download, part_path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PAYLOAD = np.random.default_rng(0).integers(0, 256, size=300_000, dtype=np.uint8).tobytes()
PAYLOAD_SHA1 = hashlib.sha1(PAYLOAD).hexdigest()


@pytest.fixture
def server():
    with FileServer() as s:
        s.files["blob.bin"] = PAYLOAD
        yield s


# -- the manifest ---------------------------------------------------------------------------
def test_manifest_holds_the_release_facts():
    assert [e.name for e in manifest.fcn_entries()] == ["fcn32s", "fcn16s", "fcn8s", "fcn8s-atonce", "fcn-alexnet"]
    assert {n: manifest.entry(n).published_mean_iu for n in ("fcn32s", "fcn16s", "fcn8s", "fcn8s-atonce",
                                                               "fcn-alexnet")} == \
        {"fcn32s": 63.6, "fcn16s": 65.0, "fcn8s": 65.5, "fcn8s-atonce": 65.4, "fcn-alexnet": 48.0}
    assert manifest.entry("fcn8s").published["seg12test"]["mean_iu"] == 67.2
    assert manifest.entry("fcn8s").sha1 == "c449ea74dd7d83751d1357d6a8c323fcf4038962"
    for name in ("fcn32s", "fcn16s", "fcn8s-atonce", "fcn-alexnet", "vgg16"):
        assert manifest.entry(name).sha1 is None and manifest.entry(name).sha1_text == "unknown"
    t3 = {n: manifest.entry(n).paper_table3 for n in ("fcn32s", "fcn16s", "fcn8s")}
    assert [t3[n]["mean_iu"] for n in t3] == [59.4, 62.4, 62.7]
    assert [t3[n]["pixel_acc"] for n in t3] == [89.1, 90.0, 90.3]
    assert [t3[n]["mean_acc"] for n in t3] == [73.3, 75.7, 75.9]
    assert [t3[n]["fwavacc"] for n in t3] == [81.4, 83.0, 83.2]
    vgg = manifest.entry("VGG_ILSVRC_16_layers.caffemodel")
    assert vgg.name == "vgg16" and vgg.url.endswith("/very_deep/caffe/VGG_ILSVRC_16_layers.caffemodel")
    assert manifest.entry("fcn8s-heavy-pascal").pth == "fcn8s-heavy-pascal.pth"
    for e in manifest.fcn_entries():
        assert e.url == f"http://dl.caffe.berkeleyvision.org/{e.file}" and e.num_classes == 21
    with pytest.raises(KeyError, match="known: fcn32s"):
        manifest.entry("fcn4s")


def test_manifest_agrees_with_the_shared_readme(upstream):
    readme = (upstream.parent / "README.md").read_text()
    for e in manifest.MANIFEST.values():
        if e.name != "alexnet":  # bvlc_alexnet comes from Caffe's model zoo, not the FCN release
            assert e.url in readme, e.url
    assert manifest.entry("fcn8s").sha1 in readme


def test_lock_file_records_and_is_consulted(tmp_path):
    e = manifest.entry("fcn32s")
    assert manifest.expected_sha1(e, tmp_path) == (None, "none")
    manifest.record_sha1(tmp_path, e.file, "ab" * 20, 5, e.url)
    sha1, origin = manifest.expected_sha1(e, tmp_path)
    assert sha1 == "ab" * 20 and manifest.LOCK_FILE in origin
    # a published sha1 wins over the lock
    manifest.record_sha1(tmp_path, "fcn8s-heavy-pascal.caffemodel", "cd" * 20, 5, "x")
    assert manifest.expected_sha1(manifest.entry("fcn8s"), tmp_path)[0] == manifest.entry("fcn8s").sha1
    (tmp_path / manifest.LOCK_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="unreadable lock file"):
        manifest.read_lock(tmp_path)


# -- the downloader -------------------------------------------------------------------------
def test_download_checks_sha1_and_renames(server, tmp_path):
    dest = tmp_path / "w" / "blob.bin"
    result = download(f"{server.url}/blob.bin", dest, sha1=PAYLOAD_SHA1, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert (result.sha1, result.size, result.resumed_from, result.checked) == (PAYLOAD_SHA1, len(PAYLOAD), 0, True)
    assert not part_path(dest).exists()


def test_interrupted_download_resumes_with_range(server, tmp_path):
    dest = tmp_path / "blob.bin"
    server.cut["blob.bin"] = 123_456
    with pytest.raises(DownloadError, match="run again to resume"):
        download(f"{server.url}/blob.bin", dest, sha1=PAYLOAD_SHA1, retries=0, progress=False)
    assert not dest.exists()
    assert part_path(dest).read_bytes() == PAYLOAD[:123_456]
    result = download(f"{server.url}/blob.bin", dest, sha1=PAYLOAD_SHA1, retries=0, progress=False)
    assert server.log[-1] == ("/blob.bin", "bytes=123456-")
    assert result.resumed_from == 123_456 and dest.read_bytes() == PAYLOAD
    assert not part_path(dest).exists()


def test_broken_transfer_is_retried_within_one_call(server, tmp_path):
    server.cut["blob.bin"] = 1000
    result = download(f"{server.url}/blob.bin", tmp_path / "blob.bin", sha1=PAYLOAD_SHA1, retries=1,
                      backoff=0, progress=False)
    assert [r for _, r in server.log] == [None, "bytes=1000-"]
    assert result.resumed_from == 1000 and (tmp_path / "blob.bin").read_bytes() == PAYLOAD


def test_sha1_mismatch_deletes_the_download(server, tmp_path):
    dest = tmp_path / "blob.bin"
    with pytest.raises(ChecksumError, match=f"sha1 {PAYLOAD_SHA1} .* does not match the expected 0+"):
        download(f"{server.url}/blob.bin", dest, sha1="0" * 40, progress=False)
    assert not dest.exists() and not part_path(dest).exists()


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    dest = tmp_path / "blob.bin"
    part_path(dest).write_bytes(b"garbage that is not a prefix")
    server.ignore_range = True
    result = download(f"{server.url}/blob.bin", dest, sha1=PAYLOAD_SHA1, progress=False)
    assert server.log[-1][1] is not None  # it asked for a range …
    assert result.resumed_from == 0 and dest.read_bytes() == PAYLOAD  # … and started over on a 200


def test_complete_part_file_is_finished_on_416(server, tmp_path):
    dest = tmp_path / "blob.bin"
    part_path(dest).write_bytes(PAYLOAD)
    result = download(f"{server.url}/blob.bin", dest, sha1=PAYLOAD_SHA1, progress=False)
    assert result.resumed_from == len(PAYLOAD) and dest.read_bytes() == PAYLOAD


def test_http_404_and_unreachable_are_one_line(server, tmp_path):
    with pytest.raises(DownloadError, match=r"missing\.bin: HTTP 404"):
        download(f"{server.url}/missing.bin", tmp_path / "missing.bin", progress=False)
    with pytest.raises(DownloadError, match="offline or the server is unreachable") as info:
        download(f"{closed_port_url()}/x.bin", tmp_path / "x.bin", retries=0, progress=False)
    assert "\n" not in str(info.value)


# -- the command ----------------------------------------------------------------------------
def _caffemodel_bytes(tmp_path: Path, seed: int) -> tuple[bytes, dict]:
    from reproduce.caffe.weights import write_caffemodel

    rng = np.random.default_rng(seed)
    weights = {"conv1_1": [rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
                           rng.standard_normal(4).astype(np.float32)],
               "score_fr": [rng.standard_normal((21, 4, 1, 1)).astype(np.float32)]}
    path = tmp_path / f"src{seed}.caffemodel"
    write_caffemodel(path, weights)
    return path.read_bytes(), weights


def test_weights_command_downloads_records_and_converts(server, tmp_path, capsys):
    import torch

    data, weights = _caffemodel_bytes(tmp_path, 1)
    server.files["fcn32s-heavy-pascal.caffemodel"] = data
    out = tmp_path / "weights"
    argv = ["weights", "--only", "fcn32s", "--dir", str(out), "--mirror", server.url, "--quiet"]
    assert main(argv) == 0
    assert (out / "fcn32s-heavy-pascal.caffemodel").read_bytes() == data
    state = torch.load(out / "fcn32s-heavy-pascal.pth", weights_only=True)
    assert sorted(state) == ["conv1_1.bias", "conv1_1.weight", "score_fr.weight"]
    np.testing.assert_array_equal(state["score_fr.weight"].numpy(), weights["score_fr"][0])
    lock = json.loads((out / manifest.LOCK_FILE).read_text())["files"]
    assert lock["fcn32s-heavy-pascal.caffemodel"]["sha1"] == hashlib.sha1(data).hexdigest()
    assert "recorded in" in capsys.readouterr().out

    # a second run checks the present file against the lock and fetches nothing
    requests = len(server.log)
    assert main(argv) == 0
    assert len(server.log) == requests and "matches the lock file" in capsys.readouterr().out

    # the server now has different bytes: --force fetches them, the locked sha1 refuses them
    server.files["fcn32s-heavy-pascal.caffemodel"] = _caffemodel_bytes(tmp_path, 2)[0]
    assert main(argv + ["--force"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("error: fcn32s-heavy-pascal.caffemodel: sha1 ") and "does not match" in err[0]
    assert (out / "fcn32s-heavy-pascal.caffemodel").read_bytes() == data  # the checked file is untouched


def test_weights_command_refuses_a_wrong_sha1_of_the_manifest(server, tmp_path, capsys):
    server.files["fcn8s-heavy-pascal.caffemodel"] = _caffemodel_bytes(tmp_path, 3)[0]
    out = tmp_path / "weights"
    assert main(["weights", "--only", "fcn8s", "--dir", str(out), "--mirror", server.url, "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "does not match the expected c449ea74dd7d83751d1357d6a8c323fcf4038962" in err
    assert not (out / "fcn8s-heavy-pascal.caffemodel").exists() and not (out / "fcn8s-heavy-pascal.pth").exists()


def test_weights_command_resumes_a_part_file(server, tmp_path, capsys):
    data, _ = _caffemodel_bytes(tmp_path, 4)
    server.files["fcn16s-heavy-pascal.caffemodel"] = data
    server.cut["fcn16s-heavy-pascal.caffemodel"] = 100
    out = tmp_path / "weights"
    argv = ["weights", "--only", "fcn16s", "--dir", str(out), "--mirror", server.url, "--quiet",
            "--retries", "0", "--no-convert"]
    assert main(argv) == 1
    assert "100 bytes kept" in capsys.readouterr().err
    assert main(argv) == 0
    assert "resumed at byte 100" in capsys.readouterr().out
    assert (out / "fcn16s-heavy-pascal.caffemodel").read_bytes() == data


def test_weights_command_offline_prints_one_line_per_file(tmp_path):
    """Unreachable server: one line per file on stderr, exit 1, no traceback (a real subprocess)."""
    out = tmp_path / "weights"
    proc = subprocess.run(
        [sys.executable, "-m", "reproduce", "weights", "--only", "fcn32s", "fcn16s", "--dir", str(out),
         "--mirror", closed_port_url(), "--retries", "0", "--quiet"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2
    assert errors[0].startswith("error: fcn32s-heavy-pascal.caffemodel: cannot download http://127.0.0.1:")
    assert "offline or the server is unreachable" in errors[1] and "fcn16s" in errors[1]
    assert not any(out.glob("*.caffemodel"))


def test_weights_command_unknown_name_and_list(tmp_path, capsys):
    assert main(["weights", "--only", "fcn4s", "--dir", str(tmp_path)]) == 2
    assert "no weights called 'fcn4s'" in capsys.readouterr().err
    (tmp_path / "fcn8s-heavy-pascal.pth").write_bytes(b"")
    assert main(["weights", "--list", "--dir", str(tmp_path)]) == 0
    listing = capsys.readouterr().out.splitlines()
    row = next(line for line in listing if line.startswith("fcn8s "))
    assert "c449ea74dd7d83751d1357d6a8c323fcf4038962" in row and "fcn8s-heavy-pascal.pth" in row and "65.5" in row
    assert "unknown" in next(line for line in listing if line.startswith("fcn32s "))


def test_weights_command_converts_the_v1_vgg16(golden, tmp_path, capsys):
    """The legacy V1 classifier (Caffe's golden width-reduced copy) goes through download and conversion."""
    import torch

    from reproduce.caffe.weights import read_weights

    source = golden / "vgg16-v1" / "weights.caffemodel"
    out = tmp_path / "weights"
    with FileServer() as server:
        server.files["VGG_ILSVRC_16_layers.caffemodel"] = source.read_bytes()
        assert main(["weights", "--only", "vgg16", "--dir", str(out), "--mirror", server.url, "--quiet"]) == 0
    expected = read_weights(source)
    state = torch.load(out / "VGG_ILSVRC_16_layers.pth", weights_only=True)
    assert len(state) == sum(len(blobs) for blobs in expected.values())
    np.testing.assert_array_equal(state["fc6.weight"].numpy(), expected["fc6"][0])
    assert "converted to" in capsys.readouterr().out

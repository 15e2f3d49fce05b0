"""Downloads of the official weights, against a local HTTP server (127.0.0.1) only.

The real servers are never contacted: files are generated here and served by
``http_fixture.FileServer`` — with Range support, an interrupted transfer, a server that
ignores Range — and the ``weights`` command is pointed at it with ``--mirror``. Also: the
manifest's facts against ``../shared`` (one entry per release folder, class counts from the
release's prototxts, the README's URLs and sha1s), the fallback over several URLs, and
``weights --from DIR`` (good, missing and corrupted files).
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
    assert [e.name for e in manifest.fcn_entries("PASCAL VOC")] == ["fcn32s", "fcn16s", "fcn8s", "fcn8s-atonce",
                                                                   "fcn-alexnet"]
    assert {n: manifest.entry(n).published_mean_iu for n in ("fcn32s", "fcn16s", "fcn8s", "fcn8s-atonce",
                                                               "fcn-alexnet")} == \
        {"fcn32s": 63.6, "fcn16s": 65.0, "fcn8s": 65.5, "fcn8s-atonce": 65.4, "fcn-alexnet": 48.0}
    assert manifest.entry("fcn8s").published["seg12test"]["mean_iu"] == 67.2
    assert manifest.entry("fcn8s").sha1 == "c449ea74dd7d83751d1357d6a8c323fcf4038962"
    for name in ("fcn32s", "fcn16s", "fcn8s-atonce", "fcn-alexnet", "vgg16"):
        assert manifest.entry(name).sha1 is None and manifest.entry(name).sha1_text == "unknown"
    t3 = {n: manifest.entry(n).paper_table2 for n in ("fcn32s", "fcn16s", "fcn8s")}
    assert [t3[n]["mean_iu"] for n in t3] == [59.4, 62.4, 62.7]
    assert [t3[n]["pixel_acc"] for n in t3] == [89.1, 90.0, 90.3]
    assert [t3[n]["mean_acc"] for n in t3] == [73.3, 75.7, 75.9]
    assert [t3[n]["fwavacc"] for n in t3] == [81.4, 83.0, 83.2]
    vgg = manifest.entry("VGG_ILSVRC_16_layers.caffemodel")
    assert vgg.name == "vgg16" and vgg.url.endswith("/very_deep/caffe/VGG_ILSVRC_16_layers.caffemodel")
    assert manifest.entry("fcn8s-heavy-pascal").pth == "fcn8s-heavy-pascal.pth"
    for e in manifest.fcn_entries("PASCAL VOC"):
        assert e.url == f"http://dl.caffe.berkeleyvision.org/{e.file}" and e.num_classes == 21
    with pytest.raises(KeyError, match="known: fcn32s"):
        manifest.entry("fcn4s")


def test_manifest_agrees_with_the_shared_readme(upstream):
    readme = (upstream.parent / "README.md").read_text()
    for e in manifest.MANIFEST.values():
        if e.name == "alexnet":  # bvlc_alexnet comes from Caffe's model zoo, not the FCN release
            continue
        if e.dataset in ("PASCAL VOC", "ILSVRC 2012"):
            assert e.url in readme, e.url
        else:  # the README names these files and gives their URL as http://dl.caffe.berkeleyvision.org/<file>
            assert (e.stem in readme) == e.released, e.stem
            if e.released:
                assert e.url == "http://dl.caffe.berkeleyvision.org/" + e.file
    for name in ("fcn8s", "googlenet"):
        assert manifest.entry(name).sha1 in readme


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

    # the server now has different bytes: a fresh download is held to the locked sha1 …
    other = _caffemodel_bytes(tmp_path, 2)[0]
    server.files["fcn32s-heavy-pascal.caffemodel"] = other
    (out / "fcn32s-heavy-pascal.caffemodel").rename(tmp_path / "kept.caffemodel")
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("error: fcn32s-heavy-pascal.caffemodel: sha1 ") and "does not match" in err[0]
    assert "--force" in err[0]
    assert not (out / "fcn32s-heavy-pascal.caffemodel").exists()
    # … and --force replaces the pin of first use, once the new file parsed and converted
    assert main(argv + ["--force"]) == 0
    assert "replaces the sha1 pinned" in capsys.readouterr().out
    lock = json.loads((out / manifest.LOCK_FILE).read_text())["files"]
    assert lock["fcn32s-heavy-pascal.caffemodel"]["sha1"] == hashlib.sha1(other).hexdigest()


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


# -- the other release nets and base nets --------------------------------------------------
def _release_folders(upstream: Path) -> list[str]:
    return sorted(p.name for p in upstream.iterdir() if p.is_dir() and p.name not in ("data", "demo", "ilsvrc"))


def _score_channels(prototxt: str) -> dict[str, int]:
    """``{layer: num_output}`` of the first-stage score layers (``score_fr*``) of a release prototxt."""
    import re

    found = {}
    for match in re.finditer(r'name:\s*"(score_fr\w*)"', prototxt):
        rest = prototxt[match.end():]
        found[match.group(1)] = int(re.search(r"num_output:\s*(\d+)", rest).group(1))
    return found


def test_every_release_folder_has_exactly_one_fcn_entry(upstream):
    folders = _release_folders(upstream)
    assert len(folders) == 15  # 5 VOC + 4 NYUDv2 + 3 SIFT Flow + 3 PASCAL-Context nets
    for folder in folders:
        matching = [e for e in manifest.MANIFEST.values() if e.folder == folder]
        assert len(matching) == 1 and matching[0].kind == "fcn", (folder, matching)
        e = matching[0]
        assert manifest.entry(folder) is e
        if not folder.startswith("voc-"):
            assert e.net == folder == e.name
        # the class count is the release's: the score layers of its test/val net
        net = next(upstream / folder / n for n in ("test.prototxt", "val.prototxt") if (upstream / folder / n).is_file())
        channels = set(_score_channels(net.read_text()).values())
        assert channels == set(e.head_classes.values()), (folder, channels, e.head_classes)
    assert sorted(e.folder for e in manifest.fcn_entries()) == folders  # no entry without a folder


def test_new_entries_facts():
    sift = manifest.entry("siftflow-fcn8s")
    assert sift.head_classes == {"semantic": 33, "geometric": 3} and sift.num_classes == 33
    assert {manifest.entry(n).num_classes for n in ("nyud-fcn32s-color", "nyud-fcn32s-hha",
                                                     "nyud-fcn32s-color-d", "nyud-fcn32s-color-hha")} == {40}
    assert manifest.entry("pascalcontext-fcn16s").num_classes == 60  # 59 classes + background
    for e in manifest.fcn_entries():
        assert e.file.endswith(".caffemodel"), e.name
        # of the FCN files, only fcn8s-heavy-pascal has a published sha1
        assert (e.sha1 is None) == (e.name != "fcn8s"), (e.name, e.sha1)
        if e.dataset != "PASCAL VOC":
            assert e.file == f"{e.folder}-heavy.caffemodel"
    # the release has no caffemodel-url for the early-fusion net
    color_d = manifest.entry("nyud-fcn32s-color-d")
    assert not color_d.released and color_d.urls == () and color_d.url is None
    assert all(e.released for e in manifest.MANIFEST.values() if e is not color_d)
    googlenet = manifest.entry("bvlc_googlenet.caffemodel")
    assert googlenet.name == "googlenet" and googlenet.kind == "base" and googlenet.net is None
    assert googlenet.sha1 == "405fc5acd08a3bb12de8ee5e23a96bec22f08204"
    assert googlenet.url == "http://dl.caffe.berkeleyvision.org/bvlc_googlenet.caffemodel"
    assert googlenet.urls[0] == googlenet.url and len(googlenet.urls) > 1
    # mirrors only where a published sha1 guards them
    for e in manifest.MANIFEST.values():
        assert e.mirrors == () or e.sha1 is not None, e.name


def test_published_scores_name_their_paper_and_table():
    import re

    source = re.compile(r"^(CVPR 2015 \(arXiv 1411\.4038\)|PAMI 2016 \(arXiv 1605\.06211\)) Table \d+")
    for e in manifest.fcn_entries():
        if e.dataset == "PASCAL VOC":
            assert e.published_mean_iu is not None and not e.scores
            continue
        assert e.published_mean_iu is None and e.published_note
        if not e.scores:
            assert e.published_text == "none published" and e.published_note.startswith("none published")
        for s in e.scores:
            assert source.match(s.source), s.source
            assert s.row and s.split and s.metrics
            assert all(0 < v < 100 for v in s.metrics.values())
            if "mean_iu" in s.metrics:
                assert s.metrics["mean_iu"] < s.metrics["pixel_acc"] and s.metrics["mean_iu"] < s.metrics["fwavacc"]
            assert f"{s.metrics.get('mean_iu', s.metrics.get('geom_acc')):.1f}" in e.published_text
    # the figures as printed (CVPR 2015 Tables 4, 5, 6)
    assert manifest.entry("nyud-fcn32s-color").scores[0].metrics["mean_iu"] == 29.2
    assert manifest.entry("nyud-fcn32s-color-hha").scores[0].row == "FCN-32s RGB-HHA"
    sift = {s.head: s.metrics for s in manifest.entry("siftflow-fcn16s").scores}
    assert sift["semantic"]["mean_iu"] == 39.5 and sift["geometric"]["geom_acc"] == 94.3
    context = [manifest.entry(f"pascalcontext-fcn{k}s").scores[0].metrics["mean_iu"] for k in (32, 16, 8)]
    assert context == sorted(context) and context[-1] == 35.1
    assert manifest.entry("googlenet").published_text.startswith("n/a")


# -- several URLs ---------------------------------------------------------------------------
def test_download_from_falls_back_after_a_404(server, tmp_path):
    from reproduce.weights.download import download_from

    server.files["b/blob.bin"] = server.files.pop("blob.bin")
    urls = [f"{server.url}/a/blob.bin", f"{server.url}/b/blob.bin"]
    result = download_from(urls, tmp_path / "blob.bin", sha1=PAYLOAD_SHA1, progress=False)
    assert [p for p, _ in server.log] == ["/a/blob.bin", "/b/blob.bin"]
    assert result.url == urls[1] and result.checked and (tmp_path / "blob.bin").read_bytes() == PAYLOAD


@pytest.mark.parametrize("sha1", [PAYLOAD_SHA1, None])
def test_download_from_falls_back_after_a_dropped_transfer(server, tmp_path, sha1):
    from reproduce.weights.download import download_from, source_path

    server.files["a/blob.bin"] = server.files["b/blob.bin"] = server.files.pop("blob.bin")
    server.cut["a/blob.bin"] = 50_000
    urls = [f"{server.url}/a/blob.bin", f"{server.url}/b/blob.bin"]
    result = download_from(urls, tmp_path / "blob.bin", sha1=sha1, retries=0, progress=False)
    assert result.url == urls[1] and (tmp_path / "blob.bin").read_bytes() == PAYLOAD
    # with a sha1 to check the result, the second URL resumes the first one's bytes; without one it starts over
    assert server.log[-1] == ("/b/blob.bin", "bytes=50000-" if sha1 else None)
    assert result.resumed_from == (50_000 if sha1 else 0)
    assert not part_path(tmp_path / "blob.bin").exists() and not source_path(tmp_path / "blob.bin").exists()


def test_download_from_skips_a_mirror_with_a_wrong_file(server, tmp_path):
    from reproduce.weights.download import download_from

    server.files["b/blob.bin"] = server.files.pop("blob.bin")
    server.files["a/blob.bin"] = b"<html>not the file</html>"
    urls = [f"{server.url}/a/blob.bin", f"{server.url}/b/blob.bin"]
    result = download_from(urls, tmp_path / "blob.bin", sha1=PAYLOAD_SHA1, progress=False)
    assert result.url == urls[1] and (tmp_path / "blob.bin").read_bytes() == PAYLOAD


def test_download_from_restarts_a_mirror_whose_resumed_prefix_was_wrong(server, tmp_path):
    """A broken-off wrong file from the first URL must not make the good second URL fail."""
    from reproduce.weights.download import download_from

    server.files["b/blob.bin"] = server.files.pop("blob.bin")
    server.files["a/blob.bin"] = bytes(len(PAYLOAD))
    server.cut["a/blob.bin"] = 1000
    urls = [f"{server.url}/a/blob.bin", f"{server.url}/b/blob.bin"]
    result = download_from(urls, tmp_path / "blob.bin", sha1=PAYLOAD_SHA1, retries=0, progress=False)
    assert server.log == [("/a/blob.bin", None), ("/b/blob.bin", "bytes=1000-"), ("/b/blob.bin", None)]
    assert result.url == urls[1] and result.resumed_from == 0 and (tmp_path / "blob.bin").read_bytes() == PAYLOAD


def test_download_from_names_every_url_when_all_fail(server, tmp_path):
    from reproduce.weights.download import AllURLsFailed, download_from

    server.files["c/blob.bin"] = b"wrong bytes"
    urls = [f"{server.url}/a/blob.bin", f"{closed_port_url()}/blob.bin", f"{server.url}/c/blob.bin"]
    with pytest.raises(AllURLsFailed) as info:
        download_from(urls, tmp_path / "blob.bin", sha1=PAYLOAD_SHA1, retries=0, progress=False)
    message = str(info.value)
    assert "\n" not in message and message.startswith("blob.bin: all 3 URLs failed")
    assert [url for url, _ in info.value.attempts] == urls
    for i, (url, why) in enumerate(zip(urls, ("HTTP 404", "unreachable", "does not match the expected")), 1):
        assert f"{i}) {url}: " in message and why in message.split(f"{i}) {url}: ")[1].split(f"{i + 1}) ")[0]
    assert not isinstance(info.value, ChecksumError)  # not every URL delivered a (wrong) file
    assert not (tmp_path / "blob.bin").exists()


def test_download_from_all_wrong_files_is_a_checksum_error(server, tmp_path):
    from reproduce.weights.download import download_from

    urls = [f"{server.url}/blob.bin", f"{server.url}/blob.bin?copy"]
    server.files["blob.bin?copy"] = PAYLOAD
    with pytest.raises(ChecksumError, match=r"all 2 URLs failed .*1\) .*does not match.*2\) .*does not match"):
        download_from(urls, tmp_path / "blob.bin", sha1="0" * 40, progress=False)
    with pytest.raises(DownloadError, match="HTTP 404"):  # one URL: its own error, unchanged
        download_from([f"{server.url}/nothing.bin"], tmp_path / "nothing.bin", progress=False)


def test_weights_command_tries_the_mirrors_in_order(server, tmp_path, capsys):
    data, _ = _caffemodel_bytes(tmp_path, 5)
    server.files["fcn32s-heavy-pascal.caffemodel"] = data
    out = tmp_path / "weights"
    argv = ["weights", "--only", "fcn32s", "--dir", str(out), "--quiet", "--retries", "0", "--no-convert",
            "--mirror", closed_port_url(), "--mirror", server.url]
    assert main(argv) == 0
    assert f"from {server.url}/fcn32s-heavy-pascal.caffemodel" in capsys.readouterr().out
    lock = json.loads((out / manifest.LOCK_FILE).read_text())["files"]["fcn32s-heavy-pascal.caffemodel"]
    assert lock["url"] == f"{server.url}/fcn32s-heavy-pascal.caffemodel"
    (out / "fcn32s-heavy-pascal.caffemodel").unlink()
    assert main(argv[:-2] + ["--mirror", f"{server.url}/nowhere"]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(err) == 1 and "all 2 URLs failed" in err[0] and f"{server.url}/nowhere/" in err[0]


def test_unreleased_entry_is_skipped_by_default_and_refused_by_name(tmp_path, capsys):
    assert main(["weights", "--only", "nyud-fcn32s-color-d", "--dir", str(tmp_path), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "nyud-fcn32s-color-d-heavy.caffemodel: not released" in err and "--from DIR" in err


# -- --from DIR -----------------------------------------------------------------------------
def test_weights_from_dir_imports_checks_and_converts(tmp_path, capsys):
    import torch

    src, out = tmp_path / "have", tmp_path / "weights"
    src.mkdir()
    data, weights = _caffemodel_bytes(tmp_path, 6)
    (src / "fcn32s-heavy-pascal.caffemodel").write_bytes(data)
    (src / "nyud-fcn32s-color-d-heavy.caffemodel").write_bytes(_caffemodel_bytes(tmp_path, 7)[0])
    argv = ["weights", "--from", str(src), "--dir", str(out), "--quiet"]
    assert main(argv + ["--only", "fcn32s", "nyud-fcn32s-color-d"]) == 0
    printed = capsys.readouterr().out
    assert f"imported {len(data):,} bytes from {src / 'fcn32s-heavy-pascal.caffemodel'}" in printed
    assert (out / "fcn32s-heavy-pascal.caffemodel").read_bytes() == data
    state = torch.load(out / "fcn32s-heavy-pascal.pth", weights_only=True)
    np.testing.assert_array_equal(state["conv1_1.weight"].numpy(), weights["conv1_1"][0])
    assert (out / "nyud-fcn32s-color-d-heavy.pth").is_file()  # the unreleased net can be imported
    lock = json.loads((out / manifest.LOCK_FILE).read_text())["files"]["fcn32s-heavy-pascal.caffemodel"]
    assert lock["sha1"] == hashlib.sha1(data).hexdigest() and lock["url"].startswith("file://")
    assert not list(out.glob("*.part"))

    # a different file of that name is now held to the lock: refused, naming the file in DIR
    (out / "fcn32s-heavy-pascal.caffemodel").unlink()
    (src / "fcn32s-heavy-pascal.caffemodel").write_bytes(_caffemodel_bytes(tmp_path, 8)[0])
    assert main(argv + ["--only", "fcn32s"]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(err) == 1 and err[0].startswith(f"error: {src / 'fcn32s-heavy-pascal.caffemodel'}: sha1 ")
    assert "does not match" in err[0] and manifest.LOCK_FILE in err[0]
    assert not (out / "fcn32s-heavy-pascal.caffemodel").exists() and not list(out.glob("*.part"))


def test_weights_from_dir_refuses_a_wrong_published_sha1(tmp_path, capsys):
    src, out = tmp_path / "have", tmp_path / "weights"
    src.mkdir()
    (src / "fcn8s-heavy-pascal.caffemodel").write_bytes(_caffemodel_bytes(tmp_path, 9)[0])
    assert main(["weights", "--from", str(src), "--dir", str(out), "--only", "fcn8s", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"{src / 'fcn8s-heavy-pascal.caffemodel'}: sha1 " in err
    assert "does not match the expected c449ea74dd7d83751d1357d6a8c323fcf4038962" in err
    assert not (out / "fcn8s-heavy-pascal.caffemodel").exists() and not (out / "fcn8s-heavy-pascal.pth").exists()


def test_weights_from_dir_reports_missing_files_by_name(tmp_path, capsys):
    src, out = tmp_path / "have", tmp_path / "weights"
    src.mkdir()
    # named with --only: a missing file is an error
    assert main(["weights", "--from", str(src), "--dir", str(out), "--only", "fcn16s", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"error: {src / 'fcn16s-heavy-pascal.caffemodel'}: not found" in err
    # all entries: what DIR has is imported, the rest listed by name
    (src / "siftflow-fcn16s-heavy.caffemodel").write_bytes(_caffemodel_bytes(tmp_path, 10)[0])
    assert main(["weights", "--from", str(src), "--dir", str(out), "--quiet", "--no-convert"]) == 0
    captured = capsys.readouterr()
    assert (out / "siftflow-fcn16s-heavy.caffemodel").is_file()
    skipped = next(line for line in captured.err.splitlines() if line.startswith(f"not in {src}"))
    assert "fcn16s-heavy-pascal.caffemodel" in skipped and "bvlc_googlenet.caffemodel" in skipped
    assert "siftflow-fcn16s-heavy.caffemodel" not in skipped
    # nothing there at all: an error
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["weights", "--from", str(empty), "--dir", str(tmp_path / "w2"), "--quiet"]) == 1
    assert f"error: {empty}: none of the release's files is there" in capsys.readouterr().err
    assert main(["weights", "--from", str(tmp_path / "absent"), "--dir", str(out)]) == 2


def test_weights_list_shows_the_new_entries(tmp_path, capsys):
    assert main(["weights", "--list", "--dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith("(paper rows") and "original training" in lines[-1]
    rows = {line.split()[0]: line for line in lines[1:-1]}
    assert set(rows) == set(manifest.MANIFEST)
    assert "SIFT Flow" in rows["siftflow-fcn16s"] and "33 + 3" in rows["siftflow-fcn16s"]
    assert "39.5" in rows["siftflow-fcn16s"] and "94.3" in rows["siftflow-fcn16s"]
    assert rows["siftflow-fcn32s"].endswith("none published")
    assert "(not released)" in rows["nyud-fcn32s-color-d"] and "NYUDv2" in rows["nyud-fcn32s-color-d"]
    assert "PASCAL-Context" in rows["pascalcontext-fcn8s"] and "35.1" in rows["pascalcontext-fcn8s"]
    assert "405fc5acd08a3bb12de8ee5e23a96bec22f08204" in rows["googlenet"]

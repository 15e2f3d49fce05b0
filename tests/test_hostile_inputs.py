"""Hostile inputs (issue 24): each generated bad file or fault gives the right result or one line.

Every case builds its bad input here — a gzip whose CRC is wrong but whose deflate stream
still decodes, a zip member with a flipped byte, an HTML page served as a caffemodel, a
snapshot cut at a layer boundary, a caffemodel whose parameter layer has no blobs (binary,
V1, HDF5), a convert into a net none of whose layers the source has, a symlink planted at an
output path, a temporary file left by a killed writer — and checks the refusal names the file
and that nothing wrong was moved into place, pinned or silently used. Downloads use the local
HTTP fixture (127.0.0.1 only). The whole file runs in a few seconds.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from http_fixture import FileServer
from reproduce.caffe import parse, write_caffemodel, write_hdf5
from reproduce.cli import main
from reproduce.data import fetch
from reproduce.net import Net, NetError

NET = """
name: "tiny"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 2 kernel_size: 3 } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "score" type: "Convolution" bottom: "conv" top: "score"
        convolution_param { num_output: 2 kernel_size: 1 } }
"""


def _weights(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"conv": [rng.standard_normal((2, 3, 3, 3)).astype(np.float32), rng.standard_normal(2).astype(np.float32)],
            "score": [rng.standard_normal((2, 2, 1, 1)).astype(np.float32), rng.standard_normal(2).astype(np.float32)]}


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and "Traceback" not in "\n".join(err)
    return err[0]


# -------------------------------------------------------------------- archives: checked whole


def _release(file: str, member_root: str) -> fetch.DatasetRelease:
    return fetch.DatasetRelease("toy", "toy", files=(fetch.Archive(file, (), members=((member_root, "toy"),)),),
                                splits=())


def _tar_gz_with_wrong_crc(tmp_path: Path) -> tuple[bytes, bytes]:
    """A .tgz whose deflate stream decodes (stored blocks) but carries bytes the CRC does not
    cover: a flipped byte in a member's body; and the intact archive."""
    payload = b"MARKER" + bytes(range(256)) * 8
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("root/file.bin")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    good = gzip.compress(raw.getvalue(), compresslevel=0)   # stored blocks: the body appears verbatim
    at = good.index(b"MARKER")
    bad = good[:at] + b"N" + good[at + 1:]
    return good, bad


def test_a_gzip_with_a_wrong_crc_is_refused_before_anything_is_placed_or_pinned(tmp_path):
    good, bad = _tar_gz_with_wrong_crc(tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    (src / "toy.tgz").write_bytes(bad)
    data = tmp_path / "data"
    with pytest.raises(fetch.DataFetchError) as err:
        list(fetch.fetch_dataset(_release("toy.tgz", "root"), data, str(src), progress=False))
    assert "toy.tgz: corrupt or truncated archive" in str(err.value) and "CRC" in str(err.value)
    assert len(str(err.value).splitlines()) == 1
    assert not (data / "toy").exists() and not (data / fetch.LOCK_FILE).exists()
    assert not list(data.glob(".extract-*"))
    # the right archive afterwards: extracted and pinned (nothing of the bad one was trusted)
    (data / "archives" / "toy.tgz").unlink()
    (src / "toy.tgz").write_bytes(good)
    lines = list(fetch.fetch_dataset(_release("toy.tgz", "root"), data, str(src), progress=False))
    assert (data / "toy" / "file.bin").read_bytes().startswith(b"MARKER")
    assert json.loads((data / fetch.LOCK_FILE).read_text())["files"]["toy.tgz"]["sha1"] == \
        hashlib.sha1(good).hexdigest(), lines


def test_a_zip_member_with_a_wrong_crc_is_refused_even_if_not_extracted(tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("root/wanted.txt", b"fine")
        zf.writestr("other/unwanted.bin", b"MARKER" * 10)
    data = buffer.getvalue()
    at = data.index(b"MARKER")
    src = tmp_path / "src"
    src.mkdir()
    (src / "toy.zip").write_bytes(data[:at] + b"N" + data[at + 1:])
    with pytest.raises(fetch.DataFetchError) as err:
        list(fetch.fetch_dataset(_release("toy.zip", "root"), tmp_path / "data", str(src), progress=False))
    assert "toy.zip: corrupt archive (member 'other/unwanted.bin' fails its CRC-32 check)" in str(err.value)
    assert not (tmp_path / "data" / "toy").exists()


def test_a_published_md5_is_held_to(tmp_path):
    good, _ = _tar_gz_with_wrong_crc(tmp_path)
    archive = fetch.Archive("toy.tgz", (), members=(("root", "toy"),), md5=hashlib.md5(b"other").hexdigest(),
                            md5_source="a catalogue")
    release = fetch.DatasetRelease("toy", "toy", files=(archive,), splits=())
    src = tmp_path / "src"
    src.mkdir()
    (src / "toy.tgz").write_bytes(good)
    with pytest.raises(Exception) as err:
        list(fetch.fetch_dataset(release, tmp_path / "data", str(src), progress=False))
    assert "md5" in str(err.value) and "a catalogue" in str(err.value) and "not imported" in str(err.value)
    assert not (tmp_path / "data" / "archives" / "toy.tgz").exists()


def test_real_published_md5s_name_their_source():
    real = fetch.datasets()
    sbd, voc = real["sbd"].files[0], real["voc2011"].files[0]
    assert sbd.md5 == "82b4d87ceb2ed10f6038a1cba92111cb" and "torchvision" in sbd.md5_source
    assert voc.md5 == "6c3384ef61512963050cb5d687e5bf1e" and "torchvision" in voc.md5_source
    assert sbd.urls[0].startswith("https://")


# -------------------------------------------------------------------- weights: trust on first use


def test_an_html_page_served_as_weights_is_not_pinned_and_force_recovers(tmp_path, capsys):
    from reproduce.weights import manifest

    good = tmp_path / "good.caffemodel"
    write_caffemodel(good, {"score_fr": [np.ones((21, 4, 1, 1), np.float32)]})
    out = tmp_path / "weights"
    argv = ["weights", "--only", "fcn32s", "--dir", str(out), "--quiet"]
    with FileServer() as server:
        server.files["fcn32s-heavy-pascal.caffemodel"] = b"<html><body>Service Unavailable</body></html>\n"
        assert main(argv + ["--mirror", server.url]) == 1
        line = _one_line(capsys)
        assert "fcn32s-heavy-pascal.caffemodel" in line and "sha1 was not recorded" in line and "--force" in line
        assert not (out / manifest.LOCK_FILE).exists() or "fcn32s-heavy-pascal.caffemodel" not in \
            json.loads((out / manifest.LOCK_FILE).read_text())["files"]
        server.files["fcn32s-heavy-pascal.caffemodel"] = good.read_bytes()
        assert main(argv + ["--mirror", server.url, "--force"]) == 0
    lock = json.loads((out / manifest.LOCK_FILE).read_text())["files"]
    assert lock["fcn32s-heavy-pascal.caffemodel"]["sha1"] == hashlib.sha1(good.read_bytes()).hexdigest()
    assert (out / "fcn32s-heavy-pascal.pth").is_file()


# -------------------------------------------------------------------- a parameter layer with no blobs


def _net():
    return parse(NET)


def test_a_binary_caffemodel_with_a_blobless_parameter_layer_is_refused(tmp_path):
    weights = _weights()
    path = tmp_path / "cut.caffemodel"
    write_caffemodel(path, {"conv": weights["conv"]}, _net())   # score written with no blobs
    with pytest.raises(NetError) as err:
        Net(_net(), phase="test").copy_from(path)
    assert str(err.value).startswith(f"{path}: Incompatible number of blobs for layer 'score'")


def test_a_v1_caffemodel_with_a_blobless_parameter_layer_is_refused(tmp_path):
    from reproduce.weights.legacy_v1 import downgrade_net, write_v1_caffemodel

    path = tmp_path / "v1.caffemodel"
    write_v1_caffemodel(path, {"score": _weights()["score"]}, downgrade_net(_net()))  # conv has none
    with pytest.raises(NetError) as err:
        Net(_net(), phase="test").copy_from(path)
    assert f"{path}: Incompatible number of blobs for layer 'conv'" in str(err.value)


def test_an_hdf5_caffemodel_with_a_blobless_parameter_layer_is_refused(tmp_path):
    path = tmp_path / "w.caffemodel.h5"
    write_hdf5(path, {"conv": _weights()["conv"]}, _net())   # /data/score: an empty group
    with pytest.raises(NetError) as err:
        Net(_net(), phase="test").copy_from(path)
    assert f"{path}: Incompatible number of blobs for layer 'score'" in str(err.value)


def test_blobless_layers_the_net_has_without_parameters_are_fine(tmp_path):
    path = tmp_path / "ok.caffemodel"
    write_caffemodel(path, _weights(), _net())   # data and relu stored without blobs, as Caffe writes them
    net = Net(_net(), phase="test")
    net.copy_from(path)
    np.testing.assert_array_equal(net.params["score"][1].detach().numpy(), _weights()["score"][1])


def test_solver_weights_dicts_are_named_by_their_file(tmp_path):
    from reproduce.caffe import read_weights

    path = tmp_path / "w.caffemodel"
    write_caffemodel(path, {"conv": [np.zeros((2, 3, 1, 1), np.float32)]})
    with pytest.raises(NetError) as err:
        Net(_net(), phase="test").copy_from(read_weights(path))   # a dict read from a file, not a path
    assert str(err.value).startswith(str(path)) and "<dict>" not in str(err.value)


def test_convert_refuses_a_blobless_parameter_layer_and_a_source_that_matches_nothing(tmp_path, capsys):
    prototxt = tmp_path / "net.prototxt"
    prototxt.write_text(NET)
    cut = tmp_path / "cut.caffemodel"
    write_caffemodel(cut, {"conv": _weights()["conv"]}, _net())
    assert main(["convert", str(cut), "-o", str(tmp_path / "a.pth"), "--quiet"]) != 0
    assert "Incompatible number of blobs for layer 'score'" in _one_line(capsys)
    assert main(["convert", str(cut), "-o", str(tmp_path / "b.caffemodel"), "--prototxt", str(prototxt),
                 "--quiet"]) != 0
    assert "Incompatible number of blobs for layer 'score'" in _one_line(capsys)
    other = tmp_path / "other.caffemodel"
    write_caffemodel(other, {"fc8": [np.ones((4, 4), np.float32)]})
    assert main(["convert", str(other), "-o", str(tmp_path / "c.caffemodel"), "--prototxt", str(prototxt),
                 "--quiet"]) != 0
    line = _one_line(capsys)
    assert str(other) in line and "no layer of it is a parameter layer" in line
    assert not list(tmp_path.glob("[abc].*"))


# -------------------------------------------------------------------- snapshots


def _snapshot(prefix: Path, iteration: int, seed: int) -> tuple[Path, Path]:
    from reproduce.solver import integrity
    from reproduce.solver.snapshot import write_solverstate

    weights = Path(f"{prefix}_iter_{iteration}.caffemodel")
    write_caffemodel(weights, _weights(seed), _net())
    state = Path(f"{prefix}_iter_{iteration}.solverstate.pt")
    write_solverstate(state, {"iter": iteration, "learned_net": str(weights),
                              "learned_net_record": integrity.record(weights)})
    return weights, state


def test_a_snapshot_cut_at_a_layer_boundary_falls_back_to_the_previous_good_one(tmp_path):
    from reproduce.caffe import read_caffemodel
    from reproduce.training.snapshots import resume_from

    prefix = tmp_path / "snapshot" / "train"
    prefix.parent.mkdir()
    _, older = _snapshot(prefix, 2, 1)
    latest_weights, _ = _snapshot(prefix, 4, 2)
    # cut exactly before the last layer record: the file still parses, "score" would stay zero
    data = latest_weights.read_bytes()
    layers = read_caffemodel(latest_weights).layer
    assert [l.name for l in layers][-1] == "score"
    from reproduce.caffe import encode, Message
    head = Message("NetParameter", name="tiny")
    head.layer = layers[:-1]
    cut = encode(head)
    assert data.startswith(cut[:8])
    latest_weights.write_bytes(cut)
    said = []
    assert resume_from(prefix, 10, said.append) == older
    assert len(said) == 1 and "falling back to" in said[0] and str(latest_weights) in said[0]
    # a flipped bit in the older one too: none is good, refused in one line
    raw = bytearray(Path(f"{prefix}_iter_2.caffemodel").read_bytes())
    raw[-3] ^= 0x01
    Path(f"{prefix}_iter_2.caffemodel").write_bytes(bytes(raw))
    with pytest.raises(RuntimeError) as err:
        resume_from(prefix, 10, said.append)
    assert "no good snapshot" in str(err.value) and "_iter_2.caffemodel" in str(err.value)
    assert len(str(err.value).splitlines()) == 1


def test_solver_restore_refuses_weights_that_differ_from_the_record(tmp_path):
    from reproduce.solver import integrity
    from reproduce.solver.snapshot import SolverStateError

    weights, _ = _snapshot(tmp_path / "s", 2, 1)
    record = integrity.record(weights)
    raw = bytearray(weights.read_bytes())
    raw[-3] ^= 0x10
    weights.write_bytes(bytes(raw))
    with pytest.raises(integrity.SnapshotDamaged) as err:
        integrity.verify(weights, record)
    assert str(weights) in str(err.value) and "sha256" in str(err.value)
    assert issubclass(SolverStateError, Exception)


def test_disk_full_during_a_snapshot_is_one_line_with_the_space_needed(tmp_path):
    import errno

    from reproduce.training.snapshots import take_snapshot

    def full():
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "train_iter_4.caffemodel"))

    with pytest.raises(RuntimeError) as err:
        take_snapshot(full, tmp_path, 3 * 2**20)
    text = str(err.value)
    assert "train_iter_4.caffemodel" in text and "3.0 MiB" in text and "previous snapshot is kept" in text


# -------------------------------------------------------------------- outputs


def test_a_symlink_planted_at_a_pth_output_is_replaced_not_followed(tmp_path):
    from reproduce.weights.convert import save_weights

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "w.pth"
    out.symlink_to(victim)
    save_weights(out, _weights())
    assert victim.read_text() == "keep me" and not out.is_symlink()
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask   # as every other output, not mkstemp's 0600


def test_a_temporary_left_by_a_killed_writer_is_removed_by_the_next_write(tmp_path):
    import subprocess
    import sys

    from reproduce.caffe.files import atomic_output

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    stale = tmp_path / f".out.png.{dead}-abcdef.tmp"
    stale.write_bytes(b"half")
    mine = tmp_path / f".out.png.{os.getpid()}-123456.tmp"   # a live writer's temporary stays
    mine.write_bytes(b"busy")
    with atomic_output(tmp_path / "out.png") as tmp:
        Path(tmp).write_bytes(b"png")
    assert not stale.exists() and mine.exists() and (tmp_path / "out.png").read_bytes() == b"png"


# -------------------------------------------------------------------- sizes checked before allocating


def _conv_net(params: str) -> str:
    return ('layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }\n'
            'layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" '
            f'convolution_param {{ {params} }} }}')


@pytest.mark.parametrize("params, expected", [
    ("num_output: 2147483647 kernel_size: 3", "more than Caffe's blob limit of 2^31 - 1"),
    ('num_output: 2 kernel_size: 3 weight_filler { type: "gaussian" std: nan }', "std is nan, not a finite number"),
    ("num_output: 2 kernel_size: 3 pad: 2000000000", "top blob 'conv' of shape 1×2×4000000006×4000000006"),
])
def test_absurd_net_parameters_are_refused_before_allocating(tmp_path, capsys, params, expected):
    prototxt = tmp_path / "net.prototxt"
    prototxt.write_text(_conv_net(params))
    inputs = tmp_path / "in.npz"
    np.savez(inputs, data=np.ones((1, 3, 8, 8), np.float32))
    assert main(["forward", "--prototxt", str(prototxt), "--input", str(inputs)]) == 2
    line = _one_line(capsys)
    assert "layer 'conv'" in line and expected in line


def _npz_with_header(path: Path, shape) -> None:
    from numpy.lib import format as npy

    header = io.BytesIO()
    npy.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("data.npy", header.getvalue() + b"\0" * 16)


@pytest.mark.parametrize("kind", ["truncated", "empty", "absurd header"])
def test_bad_npz_inputs_are_one_line(tmp_path, capsys, kind):
    prototxt = tmp_path / "net.prototxt"
    prototxt.write_text(_conv_net("num_output: 2 kernel_size: 3"))
    path = tmp_path / "in.npz"
    buffer = io.BytesIO()
    np.savez(buffer, data=np.ones((1, 3, 8, 8), np.float32))
    if kind == "truncated":
        path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        _npz_with_header(path, (30000, 30000, 30000))   # 109 TiB declared in 144 bytes
    assert main(["forward", "--prototxt", str(prototxt), "--input", str(path)]) == 2
    line = _one_line(capsys)
    assert str(path) in line
    assert {"truncated": "truncated?", "empty": "empty file", "absurd header": "declares a 30000×30000×30000"}[kind] in line


def test_forward_estimates_its_blobs_before_allocating(tmp_path, capsys, monkeypatch):
    from reproduce.evaluation import memory

    prototxt = tmp_path / "net.prototxt"
    prototxt.write_text(_conv_net("num_output: 2 kernel_size: 3"))
    inputs = tmp_path / "in.npz"
    np.savez(inputs, data=np.ones((1, 3, 64, 64), np.float32))
    monkeypatch.setattr(memory, "available_bytes", lambda device=None: 1000)
    assert main(["forward", "--prototxt", str(prototxt), "--input", str(inputs)]) == 2
    assert "needs about" in _one_line(capsys)


def test_hdf5_external_storage_and_forged_sizes_are_refused(tmp_path):
    import h5py

    from reproduce.caffe import WeightsError, read_weights

    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(8, dtype=np.float32).tobytes())
    external, forged = tmp_path / "external.h5", tmp_path / "forged.h5"
    with h5py.File(external, "w") as f:
        f.create_group("data/conv").create_dataset("0", shape=(8,), dtype="f4", external=[(str(secret), 0, 32)])
    with h5py.File(forged, "w") as f:
        f.create_group("data/conv").create_dataset("0", shape=(2**30,), dtype="f4")   # declared, never written
    with pytest.raises(WeightsError) as err:
        read_weights(external)
    assert str(err.value).startswith(f"{external}: /data/conv/0: stores its data in another file")
    with pytest.raises(WeightsError) as err:
        read_weights(forged)
    assert str(err.value).startswith(f"{forged}: /data/conv/0: declares 4,294,967,296 bytes")


# -------------------------------------------------------------------- downloads that trickle or fill the disk


def test_a_trickling_download_is_stopped_and_resumed_afterwards(tmp_path):
    from reproduce.weights.download import DownloadError, download

    body = bytes(range(256)) * 64
    dest = tmp_path / "file.bin"
    with FileServer() as server:
        server.files["file.bin"] = body
        server.trickle["file.bin"] = (4096, 0.05)   # then one byte every 50 ms, ~20 bytes/s
        with pytest.raises(DownloadError) as err:
            download(server.url + "/file.bin", dest, progress=False, retries=0, min_rate=1000, rate_window=0.5)
        text = str(err.value)
        assert "file.bin" in text and "too slow" in text and "run again to resume" in text
        kept = (tmp_path / "file.bin.part").stat().st_size
        assert kept >= 4096 and not dest.exists()
        result = download(server.url + "/file.bin", dest, progress=False, retries=0, min_rate=1000,
                          rate_window=0.5, sha1=hashlib.sha1(body).hexdigest())
    assert result.resumed_from == kept and dest.read_bytes() == body


def test_a_download_past_its_deadline_is_stopped(tmp_path):
    from reproduce.weights.download import DownloadError, download

    with FileServer() as server:
        server.files["file.bin"] = b"x" * 4000
        server.trickle["file.bin"] = (1000, 0.02)
        with pytest.raises(DownloadError) as err:
            download(server.url + "/file.bin", tmp_path / "file.bin", progress=False, retries=0, min_rate=0,
                     deadline=0.3)
    assert "passed its deadline" in str(err.value) and "file.bin.part" in str(err.value)


def test_a_planted_symlink_at_a_part_file_is_not_written_through(tmp_path):
    from reproduce.weights.download import DownloadError, download

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (tmp_path / "file.bin.part").symlink_to(victim)
    with FileServer() as server:
        server.files["file.bin"] = b"payload"
        with pytest.raises(DownloadError) as err:
            download(server.url + "/file.bin", tmp_path / "file.bin", progress=False, retries=0)
    assert "symbolic link" in str(err.value) and victim.read_text() == "keep me"


def test_disk_full_during_a_download_names_the_file_and_the_space_needed(tmp_path, monkeypatch):
    import errno

    from reproduce.weights import download as dl

    class Full:
        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(dl.DownloadError) as err:
        dl._write(Full(), b"abc", tmp_path / "big.caffemodel.part", 123456)
    text = str(err.value)
    assert "big.caffemodel.part: disk full" in text and "about 123,456 more bytes" in text and "resume" in text


# -------------------------------------------------------------------- the run lock


def test_deleting_the_lock_file_by_hand_does_not_let_a_second_run_in(tmp_path):
    import subprocess
    import sys

    from reproduce.training.lock import LOCK_NAME, hold_run_dir

    run_dir = tmp_path / "run"
    probe = ("import sys\nfrom reproduce.training.lock import acquire, RunDirBusy\n"
             "try:\n    acquire(sys.argv[1])\nexcept RunDirBusy as e:\n    print(e)\n    sys.exit(3)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]))
    with hold_run_dir(run_dir, what="stage fcn8s"):
        (run_dir / LOCK_NAME).unlink()   # by hand, while the run holds it
        done = subprocess.run([sys.executable, "-c", probe, str(run_dir)], capture_output=True, text=True,
                              env=env, timeout=60)
        assert done.returncode == 3, done.stdout + done.stderr
        assert str(run_dir) in done.stdout and len(done.stdout.strip().splitlines()) == 1
    done = subprocess.run([sys.executable, "-c", probe, str(run_dir)], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr   # free again once released


# -------------------------------------------------------------------- images


def test_an_image_over_pils_bomb_limit_is_read_when_it_fits_and_refused_when_not(tmp_path, monkeypatch):
    from PIL import Image

    from reproduce.evaluation import memory
    from reproduce.evaluation.infer import UnsupportedImageError, load_rgb

    path = tmp_path / "big.png"
    Image.fromarray(np.full((64, 96, 3), 7, np.uint8)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)   # 6,144 px: over twice PIL's limit, an error there
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path)
    assert load_rgb(path).size == (96, 64)                  # read: it fits in memory
    assert Image.MAX_IMAGE_PIXELS == 1000                   # PIL's guard restored for everyone else
    monkeypatch.setattr(memory, "available_bytes", lambda device=None: 10_000)
    with pytest.raises(UnsupportedImageError) as err:
        load_rgb(path)
    assert str(err.value).startswith(f"{path}: a 96×64 image") and "more than the" in str(err.value)


def test_label_pngs_replace_a_planted_symlink(tmp_path):
    from reproduce.evaluation.score import save_palette_png

    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "label.png"
    out.symlink_to(victim)
    save_palette_png(out, np.zeros((4, 4), np.uint8))
    assert victim.read_text() == "keep me" and not out.is_symlink() and out.read_bytes()[:4] == b"\x89PNG"


def test_export_replaces_a_planted_symlink(tmp_path):
    """The .pt2 writer (the .onnx one goes through the same ``atomic_output``; exporting a
    net to ONNX takes too long for this suite)."""
    import torch

    from reproduce.export import save_exported_program

    program = torch.export.export(torch.nn.Linear(2, 2), (torch.ones(1, 2),))
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "net.pt2"
    out.symlink_to(victim)
    save_exported_program(program, out)
    assert victim.read_text() == "keep me" and not out.is_symlink()
    assert torch.export.load(out).module()(torch.ones(1, 2)).shape == (1, 2)


# -------------------------------------------------------------------- pytorch-fcn's converted copies


def _pytorch_fcn_copy(path: Path) -> dict:
    """A file shaped like pytorch-fcn's fcn32s_from_caffe.pth (a plain state_dict under the
    release's layer names), at the tiny widths, non-zero."""
    import torch

    from reproduce.models import net_param

    net = Net(net_param("fcn32s", "deploy", num_classes=21, widths="tiny"), phase="test")
    rng = np.random.default_rng(3)
    state = {}
    for name, blobs in net.params.items():
        for i, blob in enumerate(blobs):
            state[f"{name}.{('weight', 'bias')[i]}"] = torch.from_numpy(
                rng.standard_normal(tuple(blob.shape)).astype(np.float32))
    torch.save(state, path)
    return state


def test_pytorch_fcn_converted_weights_are_accepted_checked_and_converted(tmp_path, capsys, monkeypatch):
    import dataclasses

    import torch

    from reproduce.weights import manifest

    src = tmp_path / "from"
    src.mkdir()
    state = _pytorch_fcn_copy(src / "fcn32s_from_caffe.pth")
    digest = hashlib.md5((src / "fcn32s_from_caffe.pth").read_bytes()).hexdigest()
    real = manifest.EQUIVALENTS["fcn32s"][0]
    assert real.md5s[0] == "d3eb467a80e7da0468a20dfcbc13e6c8" and "pytorch-fcn" in real.source
    argv = ["weights", "--only", "fcn32s", "--from", str(src), "--dir", str(tmp_path / "w"), "--quiet"]
    assert main(argv) == 1                                   # not one of the published md5s
    line = _one_line(capsys)
    assert "fcn32s_from_caffe.pth: md5" in line and "pytorch-fcn" in line
    monkeypatch.setitem(manifest.EQUIVALENTS, "fcn32s", (dataclasses.replace(real, md5s=(digest,)),))
    assert main(argv) == 0
    assert "pytorch-fcn's converted copy" in capsys.readouterr().out
    converted = torch.load(tmp_path / "w" / "fcn32s-heavy-pascal.pth", weights_only=True)
    assert sorted(converted) == sorted(state)
    assert all(torch.equal(converted[k], state[k]) for k in state)


def test_a_pytorch_fcn_copy_holding_code_is_never_run(tmp_path, capsys, monkeypatch):
    import dataclasses
    import pickle

    from reproduce.weights import manifest

    src = tmp_path / "from"
    src.mkdir()
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    (src / "fcn32s_from_caffe.pth").write_bytes(pickle.dumps({"conv1_1.weight": Payload()}))
    digest = hashlib.md5((src / "fcn32s_from_caffe.pth").read_bytes()).hexdigest()
    real = manifest.EQUIVALENTS["fcn32s"][0]
    monkeypatch.setitem(manifest.EQUIVALENTS, "fcn32s", (dataclasses.replace(real, md5s=(digest,)),))
    assert main(["weights", "--only", "fcn32s", "--from", str(src), "--dir", str(tmp_path / "w"), "--quiet"]) == 1
    line = _one_line(capsys)
    assert "fcn32s_from_caffe.pth" in line and not marker.exists()


def test_an_archive_expanding_past_the_free_space_stops_before_writing(tmp_path, monkeypatch):
    import collections
    import shutil

    good, _ = _tar_gz_with_wrong_crc(tmp_path)
    src = tmp_path / "src"
    src.mkdir()
    (src / "toy.tgz").write_bytes(good)
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(1 << 40, 1 << 40, 1 << 20))   # 1 MiB free
    with pytest.raises(fetch.DataFetchError) as err:
        list(fetch.fetch_dataset(_release("toy.tgz", "root"), tmp_path / "data", str(src), progress=False))
    assert "toy.tgz: extracting root/file.bin needs" in str(err.value) and "1 MiB are free" in str(err.value)
    assert not (tmp_path / "data" / "toy").exists()

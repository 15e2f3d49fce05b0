"""Caffe's data layers against the real Caffe: three SGD steps behind Data (LMDB, mean file,
scale), ImageData (resize, mean values, two passes; centred crops of images of varied sizes, one
a JPEG, under a root folder; grey reads, resized, cropped and mirrored; shuffled), WindowData
(context padding at the image borders, a mean file, the thresholds that drop windows) and
HDF5Data (two files), and 20 iterations of CaffeNet's train_val (1/8 width, no random
transformation) on an LMDB — the data layers' tops, the losses and the parameters at the solver
tolerance (1e-5 relative).

The fixtures (``tests/golden_data/*.npz``) come from ``benchmarks/golden_data_layers.py
--backend caffe`` on builds of BVLC Caffe 9b89154 (ImageData and WindowData from one with
OpenCV); this test runs the same script with this project's pycaffe shim, on inputs it writes
afresh, and compares. Caffe's random choices come from its Boost generator, which is not
emulated, so the fixtures avoid them or make them harmless:

* crops are centred (the nets' ``state { phase: TEST }``: Caffe's TRAIN crops are random);
* ImageData's mirror coins: each item of Caffe's batch must equal ours or its mirror image, and
  the net behind it (1×1 convolution, global average) is blind to flips, so the losses and
  parameters are still compared;
* WindowData's window draws: ``window_data`` has one foreground and one background window, so
  every draw gives the same batch (``mirror`` off); ``window_data_mirror`` draws from several
  windows with mirror, square crops and cached images, and each of Caffe's items must be one of
  our windows (of the right kind and label, bg items first), warped in one of its mirror states;
* ImageData's ``shuffle``: a batch is one whole pass over the list, so Caffe's batch must hold
  our batch's items (with their labels) in some order, and the losses and parameters, sums over
  the batch, are compared; ``rand_skip`` (a draw of Caffe's) is not compared here.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden_data"
NETS = ("data", "image_data", "hdf5_data", "caffenet", "image_data_crop", "image_data_grey",
        "image_data_shuffle", "window_data")
MIRRORED = ("image_data_grey",)        # Caffe mirrored items at random: ours or its mirror image
PERMUTED = ("image_data_shuffle",)     # Caffe shuffled each pass (a batch): ours, reordered
RANDOM_WINDOWS = "window_data_mirror"  # Caffe drew the windows: only the tops' structure

pytest.importorskip("lmdb", reason="the data extra (pip install 'reproduce[data]') reads LMDB")
pytest.importorskip("cv2", reason="opencv-python-headless<5 is a test dependency (make install)")


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    out, work = tmp_path_factory.mktemp("ours"), tmp_path_factory.mktemp("work")
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "golden_data_layers.py"),
                           "--backend", "reproduce", "--out", str(out), "--work", str(work),
                           "--only", ",".join(NETS + (RANDOM_WINDOWS,))],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, work


def _close(got: np.ndarray, want: np.ndarray, scale: float) -> bool:
    return got.shape == want.shape and float(np.abs(got - want).max()) <= 1e-5 * scale


@pytest.mark.parametrize("net", NETS)
def test_solver_steps_match_caffe(ours, net):
    want, got = np.load(GOLDEN / f"{net}.npz"), np.load(ours[0] / f"{net}.npz")
    assert sorted(want.files) == sorted(got.files)
    for key in want.files:
        a, b = got[key], want[key]
        if key.startswith("input/"):
            assert np.array_equal(a, b), (
                f"{key[6:]}: this OpenCV's JPEG encoder wrote other bytes than those Caffe decoded "
                "for the fixture; its pixels differ, so the comparison below would not be fair")
            continue
        scale = max(float(np.abs(b).max()), 1e-6)
        if net in PERMUTED and "/top/" in key:
            if key.endswith("/top/data"):   # labels go with their items
                labels = key.replace("/top/data", "/top/label")
                _assert_permutation(a, got[labels], b, want[labels], scale, f"{net} {key}")
            continue
        if net in MIRRORED and key.endswith("/top/data"):
            for i, (mine, caffes) in enumerate(zip(a, b)):
                # the check can tell the two states apart, and Caffe's item is one of them
                assert not _close(caffes[..., ::-1], caffes, scale), f"{net} {key} item {i} symmetric"
                assert _close(mine, caffes, scale) or _close(mine[..., ::-1], caffes, scale), \
                    f"{net} {key} item {i}: neither ours nor its mirror image"
            continue
        assert np.abs(a - b).max() <= 1e-5 * scale, f"{net} {key}"


def _assert_permutation(mine, my_labels, caffes, caffe_labels, scale, where):
    """Caffe's batch holds our batch's items (with their labels), each once, in its own order."""
    unused = list(range(len(mine)))
    for i, (item, label) in enumerate(zip(caffes, caffe_labels)):
        j = next((j for j in unused if my_labels[j] == label and _close(mine[j], item, scale)), None)
        assert j is not None, f"{where} item {i} (label {label}): not in our batch"
        unused.remove(j)


def test_shuffle_reorders_every_pass(ours):
    """Caffe's passes over ``crop.txt`` (labels 1 3 0 4 2 in the file) come in other orders, each
    pass its own (so the permutation check above is not a plain comparison), and so do ours."""
    for npz in (GOLDEN / "image_data_shuffle.npz", ours[0] / "image_data_shuffle.npz"):
        steps = np.load(npz)
        orders = [tuple(steps[f"step{k}/top/label"].astype(int)) for k in (1, 2, 3)]
        assert all(sorted(order) == [0, 1, 2, 3, 4] for order in orders), npz
        assert (1, 3, 0, 4, 2) not in orders and len(set(orders)) == 3, (npz, orders)


def test_window_data_random_windows_are_ours(ours, monkeypatch):
    """Each of Caffe's 18 items (3 batches of 3 background then 3 foreground windows drawn from 3
    and 4, mirrored at random) is one of our windows of that kind, in one of its mirror states."""
    import torch

    from reproduce.caffe import parse
    from reproduce.net import Net

    want = np.load(GOLDEN / f"{RANDOM_WINDOWS}.npz")
    monkeypatch.chdir(ours[1])   # the window file and images the script wrote
    net = Net(parse((ours[1] / f"{RANDOM_WINDOWS}.prototxt").read_text()), phase="TRAIN",
              generator=torch.Generator().manual_seed(0))
    layer = net.layer("d")
    assert (len(layer.bg), len(layer.fg)) == (3, 4)
    found = set()
    for k in (1, 2, 3):
        data, labels = want[f"step{k}/top/data"], want[f"step{k}/top/label"]
        assert data.shape == (6, 3, 10, 10)
        for i, (item, label) in enumerate(zip(data, labels)):
            pool = layer.bg if i < 3 else layer.fg
            scale = max(float(np.abs(item).max()), 1e-6)
            matches = [(w, flip) for w in pool for flip in (False, True)
                       if w[1] == label and _close(layer.window_item(w, flip), item, scale)]
            assert matches, f"batch {k} item {i} (label {label}): none of our windows"
            found.update(matches)
    # the fixture exercises both mirror states and most windows
    assert {flip for _, flip in found} == {False, True}
    assert len({w for w, _ in found}) >= 5

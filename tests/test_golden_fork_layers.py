"""The fork layers (Normalize, Permute, Interp, PriorBox, DetectionOutput) against a second Caffe.

The fixtures ``tests/golden_fork_layers/<case>.npz`` are written by ``tools/make_fork_goldens.py``
from pycaffe of PyPI's brocolli-caffe 9.0.2 (whose SSD layers are weiliu89/caffe's, checked
source against source; DeepLab v2's Interp added to its tree), in the format of the BVLC layer
goldens (``test_golden_layers``): the same prototxt runs in ``reproduce.Net`` with the same
values; forward blobs agree within 1e-5 and, for the layers with a backward in the forks
(Normalize, Permute, Interp), bottom and scale diffs within 1e-4. This complements the OpenCV 4.x
forward checks of ``test_fork_layers`` with an oracle that is the forks' own code, backward
included.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reproduce.caffe.text import parse
from reproduce.net import Net
from test_golden_layers import FORWARD, check_case

FIXTURES = Path(__file__).parent / "golden_fork_layers"
CASES = sorted(p.stem for p in FIXTURES.glob("*.npz"))
FORK_TYPES = {"Normalize", "Permute", "Interp", "PriorBox", "DetectionOutput"}


def _types(case):
    net = parse(str(np.load(FIXTURES / f"{case}.npz")["prototxt"]), "NetParameter")
    return {net.layer[i].type for i in range(len(net.layer))}


def test_the_fixtures_cover_every_fork_layer_with_and_without_backward():
    assert len(CASES) >= 40, f"only {len(CASES)} fixtures in {FIXTURES}"
    by_type = {t: [c for c in CASES if t in _types(c)] for t in FORK_TYPES}
    assert all(by_type.values()), {t: len(v) for t, v in by_type.items()}
    for t in ("Normalize", "Permute", "Interp"):
        assert all(int(np.load(FIXTURES / f"{c}.npz")["has_backward"]) for c in by_type[t])
    for t in ("PriorBox", "DetectionOutput"):
        assert not any(int(np.load(FIXTURES / f"{c}.npz")["has_backward"]) for c in by_type[t])


@pytest.mark.parametrize("case", CASES)
def test_fork_layer_matches_brocolli_caffe_forward_and_backward(case, tmp_path):
    check_case(case, tmp_path, FIXTURES)


@pytest.mark.parametrize("case", ["normalize_filler_default", "normalize_filler_constant"])
def test_normalize_scale_filler_fills_as_the_fork(case):
    """These two fixtures keep the scale the fork's filler gave (default constant 1; constant
    20 per channel): a freshly built net holds the same."""
    store = np.load(FIXTURES / f"{case}.npz")
    net = Net(parse(str(store["prototxt"]), "NetParameter"), phase="train")
    expected = store["param/L/0"]
    assert np.abs(expected).max() > 0
    got = net.params["L"][0].detach().numpy()
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= FORWARD * np.abs(expected).max()


def test_detection_output_fixtures_hold_detections_and_suppressions():
    """The cases are not vacuous: most keep several detections, NMS and keep_top_k drop some,
    and one keeps none (the fork's row of -1)."""
    rows = {c: np.load(FIXTURES / f"{c}.npz")["blob/y"].reshape(-1, 7)
            for c in CASES if c.startswith("detection_output_")}
    assert len(rows) >= 8
    assert sum(len(r) >= 5 for r in rows.values()) >= 6
    none = rows["detection_output_none_kept"]
    assert none.shape == (2, 7) and np.all(none[:, 0] == [0, 1]) and np.all(none[:, 1:] == -1)
    per_image = np.bincount(rows["detection_output_background_2"][:, 0].astype(int))
    assert per_image.max() == 5   # keep_top_k: 5 per image


def test_detection_output_refuses_what_the_fork_aborts_on():
    """background_label_id -1 with share_location: the fork skips the shared location label
    (-1) as background and then aborts ("Could not find location predictions for label -1");
    ours refuses in one line. Without share_location, -1 (no background) is a fixture above."""
    text = str(np.load(FIXTURES / "detection_output_center_size.npz")["prototxt"])
    assert "background_label_id" not in text
    text = text.replace("num_classes: 4", "num_classes: 4 background_label_id: -1")
    with pytest.raises(Exception, match="background_label_id -1 with share_location"):
        Net(parse(text, "NetParameter"), phase="train")

"""Every compute and loss layer of issue 23 against the real Caffe (BVLC 9b89154, CPU).

The fixtures ``tests/golden_layers/<case>.npz`` are written by ``tools/make_layer_goldens.py``
from pycaffe: one small net per case (see that script), with Caffe's parameter values, its
blobs after forward, the diffs it was given and the parameter diffs after backward (the data
bottoms are Parameter tops, so their diffs are the bottom diffs; a non-loss layer's tops meet
random diffs through an ``Eltwise PROD`` with a loss weight). Here the same prototxt runs
in ``reproduce.Net`` with the same values; forward blobs must agree within 1e-5 and diffs
within 1e-4, relative to each array's largest magnitude (``golden_compare``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from golden_compare import assert_all_close
from reproduce.caffe.blobs import blob_message
from reproduce.caffe.text import parse
from reproduce.caffe.wire import encode
from reproduce.net import Net

FIXTURES = Path(__file__).parent / "golden_layers"
CASES = sorted(p.stem for p in FIXTURES.glob("*.npz"))
FORWARD, BACKWARD = 1e-5, 1e-4


def load(case: str, tmp_path: Path, fixtures: Path = FIXTURES):
    store = dict(np.load(fixtures / f"{case}.npz"))
    text = str(store["prototxt"])
    for key in [k for k in store if k.startswith("file/")]:
        name = key.split("/", 1)[1]
        path = tmp_path / f"{name}.binaryproto"
        value = store[key]
        path.write_bytes(encode(blob_message(value.reshape((1, 1) + value.shape))))
        text = text.replace(f"@{name}@", str(path))
    net = Net(parse(text, "NetParameter"), phase="train")
    weights = {}
    for key, value in store.items():
        if key.startswith("param/"):
            _, layer, index = key.split("/")
            weights.setdefault(layer, {})[int(index)] = value
    with torch.no_grad():
        for layer, blobs in net.params.items():
            for i, blob in enumerate(blobs):
                blob.copy_(torch.from_numpy(weights[layer][i]).reshape(blob.shape))
    return net, store


def test_the_fixtures_cover_every_new_layer_type():
    types = set()
    for case in CASES:
        text = str(np.load(FIXTURES / f"{case}.npz")["prototxt"])
        types.update(parse(text, "NetParameter").layer[i].type
                     for i in range(len(parse(text, "NetParameter").layer)))
    assert {"AbsVal", "ArgMax", "BatchReindex", "BNLL", "Clip", "ELU", "Embed", "Exp", "Filter",
            "Im2col", "Log", "MVN", "Parameter", "PReLU", "Reduction", "SPP", "Swish",
            "Threshold", "Tile", "RNN", "LSTM", "LSTMUnit", "EuclideanLoss",
            "SigmoidCrossEntropyLoss", "HingeLoss", "InfogainLoss", "ContrastiveLoss",
            "MultinomialLogisticLoss"} <= types


def test_every_layer_type_of_the_caffe_build_is_registered():
    from reproduce.net import registered_types

    caffe_types = set((FIXTURES / "caffe_layer_types.txt").read_text().split())
    assert len(caffe_types) >= 50 and "LSTM" in caffe_types
    assert caffe_types <= set(registered_types())


@pytest.mark.parametrize("case", CASES)
def test_layer_matches_caffe_forward_and_backward(case, tmp_path):
    check_case(case, tmp_path)


def check_case(case: str, tmp_path: Path, fixtures: Path = FIXTURES):
    """Forward blobs within ``FORWARD``, then (where the fixture has a backward) the parameter
    and bottom diffs within ``BACKWARD``."""
    net, store = load(case, tmp_path, fixtures)
    net.forward()
    blobs = {k.split("/", 1)[1]: v for k, v in store.items() if k.startswith("blob/")}
    got = {name: net.blobs[name].detach().numpy() for name in blobs}
    assert any(np.abs(v).max() > 0 for v in blobs.values() if v.size)
    assert_all_close(got, blobs, FORWARD, f"{case} forward")
    if not int(store["has_backward"]):
        return
    for p in net.parameters():
        p.grad = None
    net.backward()
    expected = {k: v for k, v in store.items() if k.startswith("diff/")}
    got = {}
    for key in expected:
        _, layer, index = key.split("/")
        blob = net.params[layer][int(index)]
        got[key] = np.zeros(blob.shape, np.float32) if blob.grad is None else blob.grad.numpy()
    assert any(np.abs(v).max() > 0 for v in expected.values())
    assert_all_close(got, expected, BACKWARD, f"{case} backward")

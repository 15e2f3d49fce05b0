"""``infer --dense F``: FCN-32s scores from shift-and-stitch of its coarse net (CVPR 2015 Sec. 3.2).

With factor 1 the scorer is the net's own fixed bilinear upsampling wherever a pixel lies
between coarse cells (checks the coordinate mapping: cell ``k`` at ``32·k + c``); with a
larger factor it interpolates the shift-and-stitch grid, checked against numpy's ``interp``
of that grid at the positions the coordinate map gives.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from reproduce.cli import main
from reproduce.evaluation.dense import DenseError, DenseScorer
from reproduce.evaluation.infer import predict, preprocess

from nonzero import assert_varies, randomize


@pytest.fixture(scope="module")
def tiny_fcn32s(tmp_path_factory):
    """Random tiny FCN-32s (every blob random, ``tests/nonzero.py``; bilinear upscore, as the
    release's), its .pth and the net."""
    from reproduce.models import net_param
    from reproduce.net import Net
    from reproduce.weights import surgery
    from reproduce.weights.convert import save_weights

    net = randomize(Net(net_param("fcn32s", "deploy", num_classes=4, widths="tiny")), seed=8,
                    keep_fixed=True)  # upscore: zero off its diagonal, as the release's
    weights = net.weights_dict()
    surgery.interp(weights, ["upscore"])
    net.copy_from(weights)
    path = tmp_path_factory.mktemp("w32") / "tiny-fcn32s.pth"
    save_weights(path, weights)
    return path, net


def _image(seed=9, size=(70, 83)):
    return torch.from_numpy(np.random.default_rng(seed).normal(0, 60, (1, 3, *size)).astype(np.float32))


def test_factor_one_is_the_nets_bilinear_upsampling_between_cells(tiny_fcn32s):
    _, net = tiny_fcn32s
    x = _image()
    scorer = DenseScorer(net, 1)
    assert scorer.coarse_blob == "score_fr" and scorer.stride == (32, 32)
    assert scorer.centre == (12.5, 12.5)
    with torch.no_grad():
        ours = scorer(x)
        theirs = net.forward(data=x)["score"]
        cells = scorer.coarse_dense(x).shape[2:]
    assert ours.shape == theirs.shape
    inside = [slice(13, min(size, int(12.5 + 32 * (n - 1)))) for size, n in zip(x.shape[2:], cells)]
    assert all(s.stop - s.start > 40 for s in inside)
    assert_varies(theirs[..., inside[0], inside[1]], "FCN-32s scores")
    torch.testing.assert_close(ours[..., inside[0], inside[1]], theirs[..., inside[0], inside[1]])


def test_factor_two_interpolates_the_shift_and_stitch_grid(tiny_fcn32s):
    _, net = tiny_fcn32s
    x = _image(10, (61, 66))
    scorer = DenseScorer(net, 2)
    with torch.no_grad():
        grid = scorer.coarse_dense(x)[0].double().numpy()
        ours = scorer(x)[0].numpy()
        net.forward(data=x)
    coarse = net.blobs["score_fr"][0].double().numpy()
    aligned = grid[:, ::2, ::2]                       # shift 0: the coarse scores themselves
    assert_varies(coarse, "coarse scores")
    np.testing.assert_array_equal(aligned, coarse[:, :aligned.shape[1], :aligned.shape[2]])
    rows = (np.arange(x.shape[2]) - 12.5) / 16
    cols = (np.arange(x.shape[3]) - 12.5) / 16
    along_rows = np.stack([[np.interp(rows, np.arange(grid.shape[1]), grid[c, :, j])
                            for j in range(grid.shape[2])] for c in range(grid.shape[0])], 0)
    expected = np.stack([[np.interp(cols, np.arange(grid.shape[2]), along_rows[c, :, i])
                          for i in range(len(rows))] for c in range(grid.shape[0])], 0)
    assert_varies(ours, "dense scores")
    torch.testing.assert_close(torch.from_numpy(ours), torch.from_numpy(expected).float())


def test_infer_dense_command(tiny_fcn32s, tmp_path, capsys):
    path, net = tiny_fcn32s
    images = tmp_path / "images"
    images.mkdir()
    rgb = np.random.default_rng(11).integers(0, 256, (45, 50, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(images / "a.png")
    out = tmp_path / "out"
    assert main(["infer", "--net", "fcn32s", "--weights", str(path), str(images), "-o", str(out),
                 "--dense", "2", "--quiet", "--no-overlay"]) == 0
    label = np.array(Image.open(out / "a.png"))
    expected = predict(net, preprocess(Image.fromarray(rgb)), dense=DenseScorer(net, 2))
    assert len(np.unique(label)) > 1, "a label map of one class proves little"
    np.testing.assert_array_equal(label, expected)
    for flag, message in (("3", "the factor must divide the stride 32×32 of 'score_fr'"),
                          ("0", "factor must be a positive integer, got 0")):
        assert main(["infer", "--net", "fcn32s", "--weights", str(path), str(images), "-o", str(out),
                     "--dense", flag, "--quiet"]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1


def test_nets_with_skips_are_refused():
    from reproduce.models import net_param
    from reproduce.net import Net

    net = Net(net_param("fcn16s", "deploy", num_classes=4, widths="tiny"))
    with pytest.raises(DenseError, match=r"2 Deconvolution\(s\) \(upscore2, upscore16\); "
                                         r"its skips are fused after upsampling"):
        DenseScorer(net, 2)


def test_dense_and_tile_together_are_refused(tmp_path):
    from reproduce.evaluation.infer import infer_images

    with pytest.raises(ValueError, match="--dense and --tile cannot be combined"):
        infer_images(None, [], tmp_path, dense=2, tile=512, progress=False)

"""Inference as the reference infer.py/vis.py: preprocessing, palette PNGs, overlays, the demo image."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reproduce.cli import main
from reproduce.evaluation.infer import (INFER_MEAN_BGR, collect_images, color_seg, labels_from_rgb, palette_array,
                             preprocess, vis_seg)
from reproduce.evaluation.score import voc_palette
from reproduce.evaluation.legend import add_legend

from nonzero import assert_varies, randomize

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def reference_make_palette(num_classes):
    """vis.make_palette, literally."""
    palette = np.zeros((num_classes, 3), dtype=np.uint8)
    for k in range(num_classes):
        label, i = k, 0
        while label:
            palette[k, 0] |= (((label >> 0) & 1) << (7 - i))
            palette[k, 1] |= (((label >> 1) & 1) << (7 - i))
            palette[k, 2] |= (((label >> 2) & 1) << (7 - i))
            label >>= 3
            i += 1
    return palette


def test_preprocess_is_infer_py():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    out = preprocess(Image.fromarray(rgb))
    in_ = np.array(rgb, dtype=np.float32)[:, :, ::-1]
    in_ -= np.array((104.00698793, 116.66876762, 122.67891434))
    expected = in_.transpose((2, 0, 1))
    assert out.dtype == np.float32 and out.shape == (3, 5, 7) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, expected)
    assert out[0, 0, 0] == np.float32(rgb[0, 0, 2] - INFER_MEAN_BGR[0])  # channel 0 is blue


def test_palette_colour_seg_and_overlay_are_vis_py():
    np.testing.assert_array_equal(palette_array(21), reference_make_palette(21))
    seg = np.random.default_rng(1).integers(0, 21, (6, 9))
    np.testing.assert_array_equal(color_seg(seg), reference_make_palette(21)[seg.flat].reshape(6, 9, 3))
    image = np.random.default_rng(2).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    vis = np.array(image, dtype=np.float32)
    mask = seg > 0
    vis[mask] *= 0.5
    vis[mask] += 0.5 * reference_make_palette(21)[seg[mask].flat]
    np.testing.assert_array_equal(vis_seg(image, seg), vis.astype(np.uint8))
    assert (vis_seg(image, seg)[~mask] == image[~mask]).all()


def test_labels_from_rgb_inverts_the_palette():
    seg = np.arange(256).reshape(16, 16)
    np.testing.assert_array_equal(labels_from_rgb(color_seg(seg)), seg)
    bad = color_seg(seg[:2, :2]).copy()
    bad[0, 0] = (1, 2, 3)
    with pytest.raises(ValueError, match="#010203"):
        labels_from_rgb(bad)


@pytest.fixture(scope="module")
def tiny_fcn8s(tmp_path_factory):
    """Random tiny FCN-8s weights (every learned blob random, ``tests/nonzero.py``; bilinear
    upsampling) saved as .pth; and the dict."""
    from reproduce.weights import surgery
    from reproduce.weights.convert import save_weights
    from reproduce.models import net_param
    from reproduce.net import Net

    net = randomize(Net(net_param("fcn8s", "deploy", widths="tiny")), seed=5, keep_fixed=True)
    weights = net.weights_dict()
    surgery.interp(weights, [k for k in weights if "up" in k])
    path = tmp_path_factory.mktemp("w") / "tiny-fcn8s.pth"
    save_weights(path, weights)
    return path, weights


def _images(folder: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    folder.mkdir()
    arrays = {"a.jpg": rng.integers(0, 256, (40, 52, 3), dtype=np.uint8),
              "b.png": rng.integers(0, 256, (37, 29, 3), dtype=np.uint8),
              "grey.png": rng.integers(0, 256, (33, 45), dtype=np.uint8)}
    for name, array in arrays.items():
        Image.fromarray(array).save(folder / name, quality=95)
    (folder / "notes.txt").write_text("not an image")
    return arrays


def test_infer_command_end_to_end(tiny_fcn8s, tmp_path, capsys):
    from reproduce.models import FCN8s

    weights_path, weights = tiny_fcn8s
    images = tmp_path / "images"
    arrays = _images(images)
    out = tmp_path / "out"
    assert main(["infer", "--net", "fcn8s", "--weights", str(weights_path), str(images), "-o", str(out),
                 "--quiet"]) == 0
    assert "segmented 3 image(s)" in capsys.readouterr().out
    model = FCN8s(widths="tiny", weights=weights).eval()  # the idiomatic module, an independent path
    for name in arrays:
        stem = Path(name).stem
        with Image.open(images / name) as im:
            rgb = im.convert("RGB")
        with Image.open(out / f"{stem}.png") as png:
            assert png.mode == "P" and png.size == rgb.size
            assert png.getpalette()[:63] == voc_palette()[:63]
            label = np.array(png)
        with torch.no_grad():
            scores = model(torch.from_numpy(preprocess(rgb))[None])[0].numpy()
        assert_varies(scores, f"scores of {name}")
        expected = scores.argmax(0)
        assert len(np.unique(expected)) > 1, f"{name}: one class everywhere proves little"
        np.testing.assert_array_equal(label, expected)
        overlay = np.array(Image.open(out / f"{stem}_overlay.png"))
        h, w = label.shape
        np.testing.assert_array_equal(overlay[:h, :w], vis_seg(rgb, label))   # the picture: vis.py's
        np.testing.assert_array_equal(overlay, add_legend(vis_seg(rgb, label), np.unique(label)))  # + the key
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{Path(n).stem}.png" for n in arrays] + [f"{Path(n).stem}_overlay.png" for n in arrays])


def test_infer_command_errors_are_one_line(tiny_fcn8s, tmp_path, capsys):
    weights_path, _ = tiny_fcn8s
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["infer", "--weights", str(weights_path), str(empty), "-o", str(tmp_path / "o")]) == 2
    assert "no image files" in capsys.readouterr().err
    assert main(["infer", "--weights", str(weights_path), str(tmp_path / "nope.jpg"), "-o", str(tmp_path / "o")]) == 2
    assert "nope.jpg: no such image or folder" in capsys.readouterr().err
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(image)
    # FCN-8s weights do not fit FCN-AlexNet: the error names the weights file
    assert main(["infer", "--net", "fcn-alexnet", "--weights", str(weights_path), str(image), "-o",
                 str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(weights_path) in err and len(err.strip().splitlines()) == 1
    assert main(["infer", "--net", "fcn4s", "--weights", str(weights_path), str(image), "-o", str(tmp_path / "o")]) == 2


@pytest.mark.parametrize("array", [np.full((20, 30), 1000, np.uint16),
                                   np.full((20, 30), 0.5, np.float32)], ids=["16-bit", "float"])
def test_images_of_more_than_8_bits_are_refused_not_clipped(tiny_fcn8s, tmp_path, capsys, array):
    weights_path, _ = tiny_fcn8s
    image = tmp_path / ("wide.png" if array.dtype == np.uint16 else "wide.tiff")
    Image.fromarray(array).save(image)
    assert main(["infer", "--weights", str(weights_path), str(image), "-o", str(tmp_path / "o"),
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{image}: a " in err[0] and "more than 8 bits per channel" in err[0]
    assert not (tmp_path / "o" / "wide.png").exists()
    grey = tmp_path / "grey.png"  # 8-bit images of other modes are converted, as before
    Image.fromarray(np.full((20, 30), 7, np.uint8)).save(grey)
    assert main(["infer", "--weights", str(weights_path), str(grey), "-o", str(tmp_path / "o"),
                 "--quiet"]) == 0
    assert (tmp_path / "o" / "grey.png").exists()


def test_collect_images_keeps_order_and_rejects_clashes(tmp_path):
    from reproduce.evaluation.infer import infer_images

    folder = tmp_path / "f"
    _images(folder)
    found = collect_images([folder])
    assert [p.name for p in found] == ["a.jpg", "b.png", "grey.png"]
    with pytest.raises(ValueError, match="would both write"):
        infer_images(None, [folder / "a.jpg", tmp_path / "a.png"], tmp_path / "o", progress=False)


def _official_fcn8s() -> Path | None:
    for name in ("fcn8s-heavy-pascal.pth", "fcn8s-heavy-pascal.caffemodel"):
        path = PROJECT_ROOT / "weights" / name
        if path.is_file():
            return path
    return None


def test_official_fcn8s_reproduces_demo_output(upstream, tmp_path):
    """The released FCN-8s on demo/image.jpg gives exactly the label map drawn in demo/output.png."""
    weights = _official_fcn8s()
    if weights is None:
        pytest.skip("official weights absent: weights/fcn8s-heavy-pascal.caffemodel (or .pth) — "
                    "get them with `make weights` (python -m reproduce weights --only fcn8s)")
    out = tmp_path / "out"
    assert main(["infer", "--net", "fcn8s", "--weights", str(weights), str(upstream / "demo" / "image.jpg"),
                 "-o", str(out), "--quiet"]) == 0
    with Image.open(upstream / "demo" / "output.png") as png:
        expected = labels_from_rgb(np.array(png.convert("RGB")))
    with Image.open(out / "image.png") as png:
        got = np.array(png)
    assert got.shape == expected.shape
    mismatched = int((got != expected).sum())
    assert mismatched == 0, f"{mismatched} of {got.size} pixels differ from demo/output.png"

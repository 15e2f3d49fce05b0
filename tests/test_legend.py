"""Legends on segmentation pictures: the classes present, each colour beside its name.

The legend strip sits right of the picture, which stays untouched; each present class has a
swatch of its colour at the box ``legend_layout`` gives, near-black colours (VOC's background)
an outline, and the name's text beside it. ``infer``'s overlays and the demo's
``predictions.png`` carry one.
"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from reproduce.cli import main
from reproduce.evaluation.infer import palette_array, vis_seg
from reproduce.evaluation.legend import (GROUND, OUTLINE, add_legend, entries, legend_handles, legend_layout,
                                         needs_outline)


def test_entries_default_to_vocs_names_and_colours():
    rows = entries([15, 0, 255, 8])
    assert [(r.index, r.name) for r in rows] == [(0, "background"), (8, "cat"), (15, "person"), (255, "void")]
    assert rows[0].rgb == (0, 0, 0) and rows[1].rgb == (64, 0, 0) and rows[2].rgb == (192, 128, 128)
    assert [r.outlined for r in rows] == [True, True, False, False]
    assert needs_outline((0, 0, 0)) and not needs_outline((128, 128, 128))
    own = entries([0, 2], names=["sky", "tree", "road"], colors=[[255, 0, 0], [0, 255, 0], [9, 9, 9]])
    assert [(r.name, r.rgb, r.outlined) for r in own] == [("sky", (255, 0, 0), False), ("road", (9, 9, 9), True)]
    assert entries([30])[0].name == "class 30"


def test_the_legend_has_each_swatch_in_its_box_and_leaves_the_picture():
    picture = np.full((30, 40, 3), 200, np.uint8)
    classes = [0, 12, 15]
    out = add_legend(picture, classes)
    rows = entries(classes)
    width, height, boxes = legend_layout(rows, 30)
    assert out.shape == (height, 40 + width, 3) and height > 30      # taller than the picture: grown
    np.testing.assert_array_equal(out[:30, :40], picture)
    for row, (x0, y0, x1, y1) in zip(rows, boxes):
        inner = out[y0 + 2:y1 - 2, 40 + x0 + 2:40 + x1 - 2]
        assert (inner == row.rgb).all(), row
        edge = out[y0, 40 + x0 + 3]
        assert tuple(edge) == (OUTLINE if row.outlined else row.rgb), row
        text = out[y0:y1, 40 + x1 + 2:]
        assert (text != GROUND).any(axis=-1).sum() > 10, f"no text for {row.name}"
    assert "dog" in [r.name for r in rows] and "person" in [r.name for r in rows]


def test_an_infer_overlay_carries_the_legend_in_a_known_box(tmp_path, capsys):
    """The overlay with and without the legend: the picture the same, the legend's box differs."""
    import torch

    from reproduce.models import net_param
    from reproduce.net import Net

    net = Net(net_param("fcn32s", "deploy", widths="tiny"), phase="test")
    rng = np.random.default_rng(0)
    weights = {name: [rng.normal(0, 0.2, tuple(p.shape)).astype(np.float32) for p in blobs]
               for name, blobs in net.params.items()}
    from reproduce.weights.convert import save_weights

    save_weights(tmp_path / "w.pth", weights)
    image = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "a.png")
    common = ["infer", "--net", "fcn32s", "--weights", str(tmp_path / "w.pth"), str(tmp_path / "a.png"),
              "--quiet", "--device", "cpu"]
    assert main(common + ["-o", str(tmp_path / "with")]) == 0
    assert main(common + ["-o", str(tmp_path / "without"), "--no-legend"]) == 0
    plain = np.array(Image.open(tmp_path / "without" / "a_overlay.png"))
    keyed = np.array(Image.open(tmp_path / "with" / "a_overlay.png"))
    label = np.array(Image.open(tmp_path / "with" / "a.png"))
    present = np.unique(label)
    assert len(present) >= 2, present        # the random net labels more than one class
    np.testing.assert_array_equal(plain, vis_seg(image, label))
    np.testing.assert_array_equal(keyed[:48, :64], plain)
    width, height, boxes = legend_layout(entries(present), 48)
    assert keyed.shape == (height, 64 + width, 3)
    palette = palette_array()
    for c, (x0, y0, x1, y1) in zip(present, boxes):
        box = keyed[y0 + 2:y1 - 2, 64 + x0 + 2:64 + x1 - 2]
        assert (box == palette[c]).all(), c
    legend_box = keyed[:min(height, 48), 64:]
    assert (legend_box != GROUND).any(axis=-1).mean() > 0.05


def test_matplotlib_handles_outline_the_near_black_classes():
    handles = legend_handles([0, 15])
    assert [h.get_label() for h in handles] == ["0 background", "15 person"]
    assert handles[0].get_edgecolor()[:3] != handles[0].get_facecolor()[:3]
    assert handles[1].get_edgecolor()[:3] == pytest.approx(handles[1].get_facecolor()[:3])


def test_the_demo_predictions_figure_has_a_legend_of_the_classes_shown(tmp_path):
    import matplotlib.pyplot as plt

    from reproduce.data import VOCSegmentation, make_synthetic_dataset
    from reproduce.demo.pipeline import panel_figure
    from reproduce.models import net_param
    from reproduce.net import Net
    from reproduce.weights.convert import save_weights

    data = make_synthetic_dataset(tmp_path / "data", 1, 2, seed=4, sides=(64, 80))
    net = Net(net_param("fcn32s", "deploy", widths="tiny"), phase="test")
    rng = np.random.default_rng(1)
    save_weights(tmp_path / "w.pth", {name: [rng.normal(0, 0.2, tuple(p.shape)).astype(np.float32) for p in blobs]
                                      for name, blobs in net.params.items()})
    fig = panel_figure(data.voc_dir, [{"stage": "fcn32s", "weights": tmp_path / "w.pth"}], 2)
    (legend,) = fig.legends
    labels = [t.get_text() for t in legend.get_texts()]
    dataset = VOCSegmentation(data.voc_dir, "seg11valid")
    truth = set()
    for sample_id in dataset.ids[:2]:
        truth |= set(np.unique(dataset.load(sample_id)[1]).tolist())
    expected = {r.index: f"{r.index} {r.name}" for r in entries(truth)}
    assert set(expected.values()) <= set(labels), (labels, expected)
    assert "0 background" in labels
    background = legend.legend_handles[labels.index("0 background")]
    assert tuple(background.get_edgecolor()[:3]) != tuple(background.get_facecolor()[:3])   # outlined
    plt.close(fig)

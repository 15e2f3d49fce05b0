"""Scoring: hand-computed confusion matrices and the reference score.py formulas."""
from __future__ import annotations

import warnings
from datetime import datetime

import numpy as np
import pytest
from PIL import Image

from reproduce.evaluation.score import (SegScore, fast_hist, metrics, pixel_accuracy, present_classes,
                                        read_class_names, save_palette_png, seg_test_lines, voc_palette)


# -- the reference formulas, written out literally (score.py's fast_hist and do_seg_tests) --
def reference_fast_hist(a, b, n):
    k = (a >= 0) & (a < n)
    return np.bincount(n * a[k].astype(int) + b[k], minlength=n ** 2).reshape(n, n)


def reference_metrics(hist):
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        acc = np.diag(hist).sum() / hist.sum()
        class_acc = np.diag(hist) / hist.sum(1)
        iu = np.diag(hist) / (hist.sum(1) + hist.sum(0) - np.diag(hist))
        freq = hist.sum(1) / hist.sum()
        return acc, np.nanmean(class_acc), np.nanmean(iu), (freq[freq > 0] * iu[freq > 0]).sum()


def same(a, b):
    return np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)


def test_fast_hist_by_hand_with_void():
    label = np.array([[0, 1], [1, 255]], dtype=np.uint8)
    pred = np.array([[0, 1], [0, 2]])
    expected = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0]])
    assert same(fast_hist(label, pred, 3), expected)


def test_fast_hist_ignores_negative_and_out_of_range_float_labels():
    label = np.array([-1.0, 0.0, 2.0, 3.0, 255.0], dtype=np.float32)  # as a Caffe blob holds it
    pred = np.array([1, 0, 2, 1, 0])
    assert same(fast_hist(label, pred, 3), [[1, 0, 0], [0, 0, 0], [0, 0, 1]])


def test_fast_hist_rejects_predictions_outside_the_classes():
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        fast_hist(np.array([0, 1]), np.array([0, 3]), 3)
    with pytest.raises(ValueError, match="pixels"):
        fast_hist(np.array([0, 1]), np.array([0]), 3)


def test_metrics_by_hand_class_absent_from_both():
    hist = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0]], dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = metrics(hist)
    assert m["overall_acc"] == pytest.approx(2 / 3)
    assert same(m["per_class_acc"], [1.0, 0.5, np.nan])
    assert m["mean_acc"] == pytest.approx(0.75)
    assert same(m["per_class_iu"], [0.5, 0.5, np.nan])  # class 2 absent from both: NaN, skipped
    assert m["mean_iu"] == pytest.approx(0.5)
    assert m["fwavacc"] == pytest.approx(1 / 3 * 0.5 + 2 / 3 * 0.5)


def test_metrics_class_predicted_but_absent_from_ground_truth_counts_as_zero_iu():
    hist = fast_hist(np.array([0, 0]), np.array([0, 2]), 3).astype(float)
    m = metrics(hist)
    assert same(m["per_class_iu"], [0.5, np.nan, 0.0])
    assert m["mean_iu"] == pytest.approx(0.25)
    assert same(m["per_class_acc"], [0.5, np.nan, np.nan])
    assert m["mean_acc"] == pytest.approx(0.5)
    assert m["fwavacc"] == pytest.approx(0.5)  # only classes with ground-truth pixels


def test_classes_present_only_drops_a_predicted_class_missing_from_the_ground_truth():
    # class 2 is predicted once but never in the ground truth (SIFT Flow's missing classes)
    hist = fast_hist(np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1]), 3).astype(float)
    plain = metrics(hist)
    present = metrics(hist, classes_present_only=True)
    assert same(present_classes(hist), [True, True, False])
    assert plain["mean_iu"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)      # score.py: IU 0 counted
    assert present["mean_iu"] == pytest.approx((0.5 + 1.0) / 2)          # present classes only
    assert present["mean_iu_all"] == pytest.approx(plain["mean_iu"])
    assert present["n_present"] == 2
    assert same(present["per_class_iu"], [0.5, 1.0, np.nan])
    for key in ("overall_acc", "mean_acc", "fwavacc"):                    # unchanged by the option
        assert present[key] == pytest.approx(plain[key])
    score = SegScore(3)
    score.hist += hist
    score.count = 1
    assert score.metrics(classes_present_only=True)["mean_iu"] == pytest.approx(0.75)


def test_pixel_accuracy_counts_every_non_void_pixel():
    hist = fast_hist(np.array([0, 1, 2, 2, 255]), np.array([0, 1, 1, 2, 0]), 3)
    assert pixel_accuracy(hist) == pytest.approx(3 / 4)
    assert pixel_accuracy(hist) == pytest.approx(metrics(hist)["overall_acc"])
    assert np.isnan(pixel_accuracy(np.zeros((3, 3))))


def test_metrics_of_an_empty_histogram_are_nan_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = metrics(np.zeros((4, 4)))
    assert all(np.isnan(m[key]) for key in ("overall_acc", "mean_acc", "mean_iu"))
    assert m["fwavacc"] == 0.0  # the reference sums an empty selection


@pytest.mark.parametrize("seed", range(5))
def test_equal_to_literal_reference_on_random_data(seed):
    rng = np.random.default_rng(seed)
    n = 21
    hist = np.zeros((n, n))
    total = SegScore(n)
    for _ in range(4):
        shape = tuple(rng.integers(5, 40, size=2))
        label = rng.choice(np.r_[np.arange(0, n, 3), 255], size=shape).astype(np.uint8)
        pred = rng.integers(0, n - 4, size=shape)
        hist += reference_fast_hist(label.flatten(), pred.flatten(), n)
        total.update(label, pred, loss=1.5)
        assert same(fast_hist(label, pred, n), reference_fast_hist(label.flatten(), pred.flatten(), n))
    m = total.metrics()
    assert same(total.hist, hist)
    assert same((m["overall_acc"], m["mean_acc"], m["mean_iu"], m["fwavacc"]), reference_metrics(hist))
    assert m["loss"] == 1.5 and m["count"] == 4


def test_seg_score_merge_and_vector_round_trip():
    rng = np.random.default_rng(0)
    samples = [(rng.integers(0, 4, (6, 7)), rng.integers(0, 4, (6, 7)), float(i)) for i in range(6)]
    whole, part_a, part_b = SegScore(4), SegScore(4), SegScore(4)
    for i, (label, pred, loss) in enumerate(samples):
        whole.update(label, pred, loss)
        (part_a if i % 2 else part_b).update(label, pred, loss)
    merged = SegScore.from_vector(part_a.to_vector() + part_b.to_vector(), 4)
    assert same(merged.hist, whole.hist) and merged.count == 6
    assert merged.mean_loss == whole.mean_loss == pytest.approx(2.5)
    assert same(part_a.merge(part_b).hist, whole.hist)
    with pytest.raises(ValueError):
        whole.merge(SegScore(5))


def test_update_scores_takes_the_argmax():
    scores = np.zeros((3, 2, 2))
    scores[2, 0, 0] = scores[1, 1, 1] = 1
    score = SegScore(3)
    score.update_scores(np.array([[2, 0], [0, 1]]), scores)
    assert np.trace(score.hist) == 4


def test_seg_test_lines_use_the_reference_wording():
    lines = seg_test_lines(4000, {"loss": 1.0, "overall_acc": 0.9, "mean_acc": 0.8, "mean_iu": 0.7,
                                  "fwavacc": 0.6}, now=datetime(2016, 1, 1))
    assert lines[0] == ">>> 2016-01-01 00:00:00 Iteration 4000 loss 1.0"
    assert [line.split(" Iteration 4000 ")[1] for line in lines[1:]] == [
        "overall accuracy 0.9", "mean accuracy 0.8", "mean IU 0.7", "fwavacc 0.6"]


def test_voc_palette_standard_entries():
    palette = np.array(voc_palette()).reshape(256, 3)
    assert palette.shape == (256, 3)
    assert same(palette[[0, 1, 2, 3, 15, 20, 255]],
                [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [192, 128, 128],
                 [0, 64, 128], [224, 224, 192]])


def test_voc_palette_equals_the_upstream_ground_truth_png(upstream):
    with Image.open(upstream / "demo" / "label.png") as image:
        assert image.getpalette() == voc_palette()


def test_save_palette_png_round_trip(tmp_path):
    label = np.arange(256, dtype=np.uint8).reshape(16, 16)
    path = tmp_path / "pred.png"
    save_palette_png(path, label[np.newaxis])
    with Image.open(path) as image:
        assert image.mode == "P"
        assert image.getpalette() == voc_palette()
        assert same(np.array(image), label)
    with pytest.raises(ValueError, match="H × W"):
        save_palette_png(path, np.zeros((2, 3, 4)))


def test_read_class_names_of_the_upstream_file(upstream):
    names = read_class_names(upstream / "data" / "pascal" / "classes.txt")
    assert len(names) == 21 and names[0] == "background" and names[-1] == "tvmonitor"


def test_read_class_names_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        read_class_names(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(ValueError, match="empty.txt"):
        read_class_names(tmp_path / "empty.txt")

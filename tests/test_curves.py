"""Learning curves readable at a glance (``reproduce.training.curves``): the raw loss faint with
its moving mean bold, mean IU on its own axis, iterations below and wall time on top."""
from __future__ import annotations

import numpy as np
import pytest

from reproduce.training.curves import draw, moving_mean, plot


def records():
    rows = [{"kind": "train", "iter": i, "loss": 3.0 - i / 100 + (i % 40 == 0), "elapsed_s": 2.0 * i}
            for i in range(0, 200, 10)]
    rows += [{"kind": "test", "iter": 100, "mean_iu": 0.2}, {"kind": "test", "iter": 200, "mean_iu": 0.35}]
    return rows


def test_moving_mean_is_the_trailing_mean():
    np.testing.assert_allclose(moving_mean([1, 2, 3, 4, 10], 2), [1, 1.5, 2.5, 3.5, 7])
    np.testing.assert_allclose(moving_mean([1, 2, 3], 1), [1, 2, 3])


def test_the_panels_show_raw_and_smoothed_loss_mean_iu_and_wall_time(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (loss_ax, iu_ax) = plt.subplots(2, 1, sharex=True)
    draw(records(), loss_ax, iu_ax, "fcn32s")
    raw, mean = loss_ax.get_lines()
    assert raw.get_alpha() < 0.5 and (mean.get_alpha() or 1.0) == 1.0 and mean.get_linewidth() > raw.get_linewidth()
    np.testing.assert_allclose(mean.get_ydata(), moving_mean(raw.get_ydata(), 5))
    assert loss_ax.get_yscale() == "log"
    (iu,) = iu_ax.get_lines()
    assert list(iu.get_xdata()) == [100, 200] and list(iu.get_ydata()) == pytest.approx([20.0, 35.0])
    assert iu_ax.get_ylabel() == "val mean IU (%)" and iu_ax.get_xlabel() == "iteration"
    assert [c.get_xlabel() for c in loss_ax.child_axes] == ["wall time (min)"]
    assert any(t.get_text() == "35.0" for t in iu_ax.texts)
    plt.close(fig)
    out = plot(records(), tmp_path / "curve.png", "fcn32s")
    from PIL import Image

    assert Image.open(out).size[1] > Image.open(out).size[0] * 0.6

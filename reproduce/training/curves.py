"""Learning curves readable at a glance: ``curve.png`` of a stage, the demo's ``curves.png``.

Two panels over the same iterations: the training loss — each displayed value faint, a moving
mean of them bold, log scale when positive — and the validation mean IU (%) on its own axis
below, every test a point with the last value written beside it (one line per head for nets
with several, SIFT Flow's). The loss panel's top axis reads the wall time the run had spent at
those iterations (``elapsed_s`` of the records), so a reader sees both how far and how long.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

HEAD_COLUMN = "head"
COLORS = ("tab:red", "tab:orange", "tab:purple", "tab:brown")


def moving_mean(values, window: int) -> np.ndarray:
    """The trailing mean of ``values`` over ``window`` points (fewer at the start)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0 or window <= 1:
        return values
    sums = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, values.size + 1), window)
    return (sums[1:] - sums[np.arange(1, values.size + 1) - counts]) / counts


def draw(records: list[dict], loss_ax, iu_ax, title: str = "") -> None:
    """Draw ``records`` (``log.jsonl``'s) on a loss axis and a mean-IU axis below it."""
    train = [r for r in records if r.get("kind") == "train" and r.get("loss") is not None]
    test = [r for r in records if r.get("kind") == "test" and r.get("mean_iu") is not None]
    if train:
        iters = np.array([r["iter"] for r in train], dtype=np.float64)
        raw = np.array([r["loss"] for r in train], dtype=np.float64)
        window = max(5, len(train) // 25)
        loss_ax.plot(iters, raw, color="tab:blue", alpha=0.25, linewidth=0.8, label="loss (each display)")
        loss_ax.plot(iters, moving_mean(raw, window), color="tab:blue", linewidth=2.0,
                     label=f"loss (mean of {window})")
        if np.all(raw > 0):
            from matplotlib.ticker import FormatStrFormatter

            loss_ax.set_yscale("log")
            loss_ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
            loss_ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
            loss_ax.tick_params(axis="y", which="minor", labelsize=7)
        loss_ax.legend(loc="upper right", fontsize=7, frameon=False)
        _wall_time_axis(loss_ax, train)
    loss_ax.set_ylabel("training loss")
    loss_ax.grid(True, alpha=0.3)
    if title:
        loss_ax.set_title(title, fontsize=10, pad=18 if train else 6)
    heads = list(dict.fromkeys(r.get(HEAD_COLUMN) for r in test))
    top = 10.0
    for head, color in zip(heads, COLORS):
        rows = [r for r in test if r.get(HEAD_COLUMN) == head]
        x = [r["iter"] for r in rows]
        y = [100 * r["mean_iu"] for r in rows]
        iu_ax.plot(x, y, "o-", color=color, label=f"mean IU {head}" if head else "mean IU")
        iu_ax.annotate(f"{y[-1]:.1f}", (x[-1], y[-1]), textcoords="offset points", xytext=(-4, 6),
                       ha="right", fontsize=8, color=color)
        top = max(top, max(y))
    iu_ax.set_ylim(0, min(100.0, top * 1.2 + 2))
    iu_ax.set_ylabel("val mean IU (%)")
    iu_ax.set_xlabel("iteration")
    iu_ax.grid(True, alpha=0.3)
    if len(heads) > 1:
        iu_ax.legend(loc="lower right", fontsize=7, frameon=False)
    if not test:
        iu_ax.text(0.5, 0.5, "no test yet", transform=iu_ax.transAxes, ha="center", va="center", color="grey")


def _wall_time_axis(ax, train: list[dict]) -> None:
    """A top axis of wall-clock minutes, interpolated from the records' ``elapsed_s``."""
    pairs = [(float(r["iter"]), float(r["elapsed_s"])) for r in train if r.get("elapsed_s") is not None]
    if len(pairs) < 2:
        return
    iters, seconds = (np.array(v) for v in zip(*pairs))
    if np.any(np.diff(iters) <= 0) or np.any(np.diff(seconds) < 0):
        return
    minutes = seconds / 60.0
    if minutes[-1] <= minutes[0]:
        return
    axis = ax.secondary_xaxis("top", functions=(lambda i: np.interp(i, iters, minutes),
                                                lambda m: np.interp(m, minutes, iters)))
    axis.set_xlabel("wall time (min)", fontsize=8)
    axis.tick_params(labelsize=7)


def plot(records: list[dict], out: str | Path, title: str = "") -> Path:
    """``records`` as a two-panel PNG at ``out`` (written atomically)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from reproduce.caffe.files import atomic_output

    out = Path(out)
    fig, (loss_ax, iu_ax) = plt.subplots(2, 1, figsize=(7, 5.2), dpi=100, sharex=True,
                                         gridspec_kw={"height_ratios": (3, 2)})
    draw(records, loss_ax, iu_ax, title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(out) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return out

"""``verify --dataset DIR --runs R``: the stages trained on a user's dataset, scored on its val split.

Each stage under ``R/<stage>/`` (``final.pth``/``final.caffemodel``, else its last snapshot) is
scored as the stage's seg_tests score it — score.py's procedure through
``reproduce.evaluation.evaluate``: the val net, every val image in file order at its own size,
the histogram over the dataset's K classes, the ignore label left out — and reported with
score.py's four numbers and a per-class IU table with the dataset's class names. There is no
published number for a user's dataset, so nothing is judged: every row is MEASURED, and the
report says so. A confusion-matrix picture (rows: ground truth, columns: prediction,
normalised per row) is written to ``R/<stage>/confusion_val.png`` and the numbers to the JSON
report (default ``R/verify_dataset.json``). Exit status 1 only when a stage's weights cannot
be scored.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

DATASET_STAGES = ("fcn32s", "fcn16s", "fcn8s", "fcn8s-atonce", "fcn-alexnet", "fcn-googlenet")


def _run_config(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def verify_dataset(dataset_dir: str | Path, runs: str | Path, *, stages: Sequence[str] | None = None,
                   ignore_label: int = 255, num_classes: int | None = None, device: str = "cpu",
                   widths: str = "auto", limit: int | None = None, progress: bool = True,
                   report: str | Path | None = None, log: Callable[[str], None] = print) -> int:
    from reproduce.data.folder import describe_folder
    from reproduce.data.validation import VerifyPlaces
    from reproduce.evaluation.evaluate import evaluate
    from reproduce.evaluation.verify import _Limited, find_trained
    from reproduce.weights.pretrained import load_net

    runs = Path(runs)
    root = Path(dataset_dir).resolve()
    configs = {s: _run_config(runs / s) for s in (stages or DATASET_STAGES)}
    if num_classes is None:   # a run knows its K (classes.txt, if any, is checked against it)
        num_classes = next((c.get("num_classes") for c in configs.values() if c.get("num_classes")), None)
    if (root / "classes.txt").is_file():
        num_classes = None
    description = describe_folder(root, num_classes=num_classes, ignore_label=ignore_label,
                                  split_dir=runs / "splits", log=log)
    validation = description.validation_data()   # reproduce.data.folder.FolderValidation
    where = VerifyPlaces(runs_dir=str(runs), dataset_dir=str(dataset_dir))
    dataset = validation.read("val")
    val = dataset if limit is None else _Limited(dataset, limit)
    names = description.classes
    log(f"{description.title}: {description.num_classes} classes, {len(val)} val images")
    rows, failed = [], 0
    for stage in (stages or DATASET_STAGES):
        config = configs.get(stage) or _run_config(runs / stage)
        weights, note = find_trained(stage, runs)
        if weights is None:
            if stages:
                log(f"{stage}: SKIPPED: nothing under {runs / stage} (train it with "
                    f"`{validation.stage_command(stage, where)}`)")
            continue
        if config.get("dataset") and Path(config["dataset"]) != root:
            log(f"{stage}: SKIPPED: {runs / stage} was trained on {config['dataset']}, not {root}")
            continue
        try:
            net = load_net(stage, weights, split="val", widths=widths, device=device)
            result = evaluate(net, val, class_names=names, n_classes=description.num_classes,
                              progress=progress, description=f"{stage} on {description.name} val")
        except (OSError, ValueError, KeyError, RuntimeError) as err:
            failed += 1
            log(f"{stage}: ERROR: {' '.join(f'{type(err).__name__}: {err}'.split())}")
            continue
        picture = runs / stage / "confusion_val.png"
        confusion_png(result.hist, names, picture, title=f"{stage} on {description.name} val "
                                                          f"({result.count} images)")
        rows.append({"stage": stage, "weights": str(weights), "note": note, "status": "MEASURED",
                     "confusion_png": str(picture), **result.to_dict()})
        for line in format_result(stage, weights, note, result, names):
            log(line)
    log(f"no published number exists for {description.name}: the rows are MEASURED, not judged "
        f"(no PASS/FAIL); compare stages with one another and with a baseline of your own")
    path = Path(report) if report is not None else runs / "verify_dataset.json"
    from reproduce.caffe.files import atomic_output

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        Path(tmp).write_text(json.dumps({"dataset": str(root), "classes": list(names), "rows": rows},
                                        indent=2) + "\n")
    log(f"report: {path}")
    if not rows and not failed:
        log(f"nothing scored: no stage trained on {root} under {runs}")
    return 1 if failed else 0


def format_result(stage: str, weights, note: str, result, names: Sequence[str]) -> list[str]:
    lines = [f"{stage} ({weights}{', ' + note if note and note != 'final' else ''}): MEASURED — "
             f"overall acc {100 * result.overall_acc:.2f}, mean acc {100 * result.mean_acc:.2f}, "
             f"mean IU {100 * result.mean_iu:.2f}, fwavacc {100 * result.fwavacc:.2f} (percent)"]
    width = max(len("class"), *(len(n) for n in names))
    gt = result.hist.sum(1)
    lines.append(f"  {'class':<{width}}  {'IU':>6}  {'acc':>6}  {'val pixels':>10}")
    for name, iu, acc, pixels in zip(names, result.per_class_iu, result.per_class_acc, gt):
        fmt = lambda v: "     -" if not np.isfinite(v) else f"{100 * v:6.2f}"
        lines.append(f"  {name:<{width}}  {fmt(iu)}  {fmt(acc)}  {int(pixels):>10}")
    return lines


def confusion_png(hist: np.ndarray, names: Sequence[str], path: str | Path, title: str = "") -> Path:
    """The confusion matrix, each ground-truth row normalised to 1, as a picture."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from reproduce.caffe.files import atomic_output

    hist = np.asarray(hist, dtype=np.float64)
    rows = hist.sum(1, keepdims=True)
    norm = np.divide(hist, rows, out=np.zeros_like(hist), where=rows > 0)
    k = len(names)
    size = min(4 + 0.35 * k, 30)
    fig, ax = plt.subplots(figsize=(size, size))
    image = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), labels=names, rotation=90)
    ax.set_yticks(range(k), labels=names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    if k <= 30:
        for i in range(k):
            for j in range(k):
                if norm[i, j] >= 0.005:
                    ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black")
    if title:
        ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path

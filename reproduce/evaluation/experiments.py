"""Every experiment of the CVPR 2015 paper the suite reruns: a command and its published figure.

The release reproduces the "heavy" models (PAMI 2016); the paper's own tables were trained
otherwise — the regime of Sec. 4.3 ("Optimization": minibatch 20, momentum 0.9, fixed lr
1e-3/1e-4/5e-5) — and compared settings the release has no switch for. Each ``Experiment``
here is one row of a table or one curve of a figure: the stage it runs and with which options
(``reproduce.training.ablations``), where its run lives (``<runs>/paper/<key>/<stage>/``), what
it starts from, and what the paper reports. ``python -m reproduce paper`` (``make paper``)
prints them; ``verify`` scores each whose run exists on seg11valid — judged like a re-trained
stage (−2/+2 mean IU points) where the paper gives a number, MEASURED with the paper's finding
where it gives none — and ``fig5`` plots the loss-sampling runs as the paper's Fig. 5.

All are PASCAL VOC, scored on seg11valid (the paper's "subset of PASCAL VOC 2011 val",
footnote 7); Table 1 trains on VOC2011 ``train`` (1,112 images, Sec. 4.3 "More training
data"), everything else on SBD ``train`` (8,498).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

PAPER = "CVPR 2015"
TABLE1 = ("--recipe", "paper", "--train-set", "voc2011")
PAPER_SBD = ("--recipe", "paper")


@dataclass(frozen=True)
class Experiment:
    """One experiment (see the module docstring). ``init``: ``"base"`` (the stage's ILSVRC
    classifier from the weights folder) or the key of the experiment whose final weights it
    starts from; ``published``: mean IU in percent, or None with ``finding`` saying what the
    paper found instead."""

    key: str
    where: str
    what: str
    stage: str
    flags: tuple[str, ...]
    published: float | None = None
    init: str = "base"
    finding: str = ""

    def run_dir(self, runs: str | os.PathLike) -> Path:
        return Path(runs) / "paper" / self.key / self.stage

    def runs(self, runs: str | os.PathLike) -> Path:
        """The ``--runs`` folder of its stage."""
        return Path(runs) / "paper" / self.key

    def init_path(self, runs: str | os.PathLike, weights_dir: str | os.PathLike) -> Path:
        if self.init == "base":
            from reproduce.models import model
            from reproduce.weights.manifest import entry

            return Path(weights_dir) / entry(model(self.stage).base_net).file
        return experiment(self.init).run_dir(runs) / "final.caffemodel"

    def command(self, runs: str | os.PathLike = "runs", weights_dir: str | os.PathLike = "weights",
                data_dir: str | os.PathLike = "data") -> str:
        parts = ["python -m reproduce stage", self.stage, *self.flags,
                 "--init", str(self.init_path(runs, weights_dir)), "--runs", str(self.runs(runs))]
        if os.path.normpath(str(data_dir)) != "data":
            parts += ["--data-dir", str(data_dir)]
        command = " ".join(parts)
        if self.init != "base":
            command += f"  (after {self.init})"
        return command

    @property
    def context(self) -> str:
        number = f"{self.published:.1f} mean IU" if self.published is not None else self.finding
        return f"{PAPER} {self.where}: {number}"


EXPERIMENTS: tuple[Experiment, ...] = (
    # Table 1: three classifiers adapted, the paper's regime, VOC2011 train
    Experiment("table1-alexnet", "Table 1", "FCN-AlexNet", "fcn-alexnet", TABLE1, 39.8),
    Experiment("table1-vgg16", "Table 1", "FCN-VGG16 (FCN-32s)", "fcn32s", TABLE1, 56.0),
    Experiment("table1-googlenet", "Table 1", "FCN-GoogLeNet (never released)", "fcn-googlenet", TABLE1, 42.5),
    # Table 2: the skip nets, SBD train (Sec. 4.3 "More training data": 59.4)
    Experiment("table2-fcn32s-fixed", "Table 2", "FCN-32s-fixed: only the score layer learns",
               "fcn32s", (*PAPER_SBD, "--fixed"), 45.4),
    Experiment("table2-fcn32s", "Table 2", "FCN-32s", "fcn32s", PAPER_SBD, 59.4),
    Experiment("table2-fcn16s", "Table 2", "FCN-16s, from FCN-32s", "fcn16s", PAPER_SBD, 62.4,
               init="table2-fcn32s"),
    Experiment("table2-fcn8s", "Table 2", "FCN-8s, from FCN-16s", "fcn8s", PAPER_SBD, 62.7,
               init="table2-fcn16s"),
    # Sec. 4.3: the ablations, each against table2-fcn32s
    Experiment("fig5-sampled-0.5", "Fig. 5", "FCN-32s, loss sampled at p = 0.5 (batch ×2)",
               "fcn32s", (*PAPER_SBD, "--loss-sampling", "0.5"),
               finding="as fast per iteration as whole images, slower in wall time"),
    Experiment("fig5-sampled-0.25", "Fig. 5", "FCN-32s, loss sampled at p = 0.25 (batch ×4)",
               "fcn32s", (*PAPER_SBD, "--loss-sampling", "0.25"),
               finding="as fast per iteration as whole images, slower in wall time"),
    Experiment("sec4.3-class-balancing", "Sec. 4.3", "FCN-32s, median-frequency class weights",
               "fcn32s", (*PAPER_SBD, "--class-weights", "median-frequency"),
               finding="class balancing unnecessary (no number)"),
    Experiment("sec4.3-augmentation", "Sec. 4.3", "FCN-32s, random mirroring and 32 px jitter",
               "fcn32s", (*PAPER_SBD, "--mirror", "--jitter", "32"),
               finding="no noticeable improvement (no number)"),
    Experiment("sec4.3-learned-upsampling", "Sec. 4.3", "FCN-32s, the final upsampling learned",
               "fcn32s", (*PAPER_SBD, "--learn-upsampling"),
               finding="the paper fixes it to bilinear (no number)"),
)

FIG5 = ("table2-fcn32s", "fig5-sampled-0.5", "fig5-sampled-0.25")   # whole image, p = 0.5, 0.25


def experiment(key: str) -> Experiment:
    for e in EXPERIMENTS:
        if e.key == key:
            return e
    raise KeyError(f"unknown experiment {key!r} (experiments: {', '.join(e.key for e in EXPERIMENTS)})")


def find_run(e: Experiment, runs: str | os.PathLike) -> tuple[Path | None, str]:
    """The experiment's weights (final, else the last snapshot) and a note, as ``verify`` finds
    a stage's."""
    from reproduce.evaluation.verify import find_run_of

    return find_run_of(e, runs)


def format_table(runs: str | os.PathLike = "runs", weights_dir: str | os.PathLike = "weights",
                 data_dir: str | os.PathLike = "data",
                 experiments: Sequence[Experiment] = EXPERIMENTS) -> str:
    """A Markdown table: experiment, where in the paper, what, published figure, run state;
    then the command of each."""
    lines = ["| experiment | paper | what | published (seg11valid) | run |",
             "| --- | --- | --- | --- | --- |"]
    for e in experiments:
        path, note = find_run(e, runs)
        state = "absent" if path is None else ("done" if note == "final" else note)
        published = f"{e.published:.1f} mean IU" if e.published is not None else e.finding
        lines.append(f"| {e.key} | {PAPER} {e.where} | {e.what} | {published} | {state} |")
    lines.append("")
    lines.append("Commands (each run lives in <runs>/paper/<experiment>/<stage>/; `make verify` scores them):")
    lines += [f"  {e.key}: {e.command(runs, weights_dir, data_dir)}" for e in experiments]
    return "\n".join(lines)


def fig5(runs: str | os.PathLike, out: str | os.PathLike) -> Path | None:
    """The paper's Fig. 5 from the runs found: training loss against iterations (left) and
    against wall time (right) for whole-image training and loss sampling. The paper's regime
    normalizes the loss per kept term, so the curves are comparable as logged. None when no
    run of ``FIG5`` has logged anything."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from reproduce.caffe.files import atomic_output
    from reproduce.training.stagelog import read_records

    curves = []
    for key in FIG5:
        e = experiment(key)
        train = [r for r in read_records(e.run_dir(runs) / "log.jsonl")
                 if r.get("kind") == "train" and r.get("loss") is not None]
        if train:
            label = "whole image" if key == "table2-fcn32s" else e.what.split(", ", 1)[1]
            curves.append((label, train))
    if not curves:
        return None
    fig, (by_iter, by_time) = plt.subplots(1, 2, figsize=(11, 4), dpi=100, sharey=True)
    for label, train in curves:
        loss = [r.get("smoothed_loss", r["loss"]) for r in train]
        by_iter.plot([r["iter"] for r in train], loss, label=label)
        by_time.plot([r.get("elapsed_s") or 0.0 for r in train], loss, label=label)
    by_iter.set_xlabel("iteration")
    by_time.set_xlabel("wall time (s)")
    by_iter.set_ylabel("training loss (smoothed)")
    by_iter.legend()
    fig.suptitle(f"{PAPER} Fig. 5: whole-image training vs loss sampling (FCN-32s, the paper's regime)")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(out) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return out

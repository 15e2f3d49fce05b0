"""Score every stage whose weights are present on VOC2011 seg11valid and compare to the published mean IU.

The release's claim this checks: "FCN-32s 63.6, FCN-16s 65.0, FCN-8s 65.5, FCN-8s at-once
65.4, FCN-AlexNet 48.0 mean IU on seg11valid" (``reproduce.weights.manifest``). Each stage is
scored with ``reproduce.evaluation.evaluate`` — the reference ``score.py`` procedure: the ``val`` net of
the stage (``VOCSegDataLayer`` inputs, the loss), every image of the split in file order at
its native size — from up to two sources:

* ``official``: the released caffemodel, converted by ``python -m reproduce weights`` into
  ``<weights dir>/<name>.pth`` (the ``.caffemodel`` itself is used when there is no ``.pth``);
* ``trained``: the user's stage under ``<runs>/<stage>/``: ``final.pth``, else
  ``final.caffemodel``, else the snapshot ``snapshot/train_iter_<N>.caffemodel`` with the
  largest ``N`` (reported as such: a stage cut short is scored, but says so).

Tolerances (mean IU, percentage points, measured − published):

* official weights: ±0.1. The port computes what Caffe computes (forward blobs agree with
  Caffe's to ~1e-6 relative), so the argmax maps — and the histogram — can differ only at
  exact ties; the published figures are rounded to one decimal, so the measured value must
  round to them: ±0.1 allows the rounding and nothing else.
* re-trained stages: from −2.0 to +2.0. A re-run cannot retrace the original trajectory bit
  for bit (the released models were trained on GPUs with cuDNN's summation order, and the
  unnormalized loss with momentum 0.99 amplifies rounding differences over 100k
  iterations); the authors' own runs of one configuration spread by about a point (FCN-32s
  "heavy" vs the paper's 59.4 shows how much the schedule alone moves it), so a faithful
  re-training lands within about two points. More than two points *above* the release is
  flagged too: it usually means validation images leaked into training (seg11valid is the
  part of VOC2011 val that does not intersect SBD train for exactly this reason).

The CVPR 2015 Table 2 figures (59.4 / 62.4 / 62.7 for 32s/16s/8s; original, non-"heavy"
training) are shown for context and never judged.

FCN-GoogLeNet (``fcn-googlenet``, CVPR 2015 Table 1) was never released: its official row is
SKIPPED saying so, and a trained stage is MEASURED with the paper's 42.5 mean IU beside it as
context (``UNRELEASED_CONTEXT``) — the paper trained it with its own recipe (Sec. 4.1), not the
release-style solver of ``make stage-googlenet``, so no band around that figure would be honest.

The other datasets of the release (NYUDv2, SIFT Flow, PASCAL-Context): each net is scored on
its own test split (``test`` for NYUDv2 and SIFT Flow, ``val`` for Context), read by its own
data layer from ``data_dir`` (the release's ``data/`` folder, ``reproduce.models.build.
data_directories``), one row per head (SIFT Flow: ``score_sem`` on ``sem``, ``score_geo`` on
``geo``), each judged by nothing: MEASURED, with the metric the papers score that head by
(``Head.metric``: mean IU; SIFT Flow semantic over the classes present, geometric pixel
accuracy) and the paper's figure as context (``WeightsEntry.scores``: CVPR 2015 Tables 4–6,
original training) — or "none published for the heavy model". The papers' rows come from a
different (original, non-heavy) training than the released files, so no band around them
would be honest; the table shows both numbers side by side.

Which is which is not known here by dataset: each stage's dataset description
(``reproduce.data.description``; ``validation_data()``, ``reproduce.data.validation``) gives
the split its nets are scored on (VOC's from ``voc_dir``/``split``/``split_file``, the others'
from ``data_dir``), the commands that get a missing split or train a missing stage, and
whether its rows are judged (``published``: PASS/FAIL) or MEASURED.

A row is PASS, FAIL, ERROR (the weights could not be loaded or scored), SKIPPED (weights
or validation data absent; the row names the command that gets them) or MEASURED (no
published number to compare with — e.g. ``--demo`` on generated data — or ``--limit``
scored only part of the split). Exit status (``Report.exit_status``): 1 if any row is FAIL
or ERROR, otherwise 0 — in particular 0 when everything is SKIPPED (nothing present is not
a failure of the reproduction; the table says what to fetch). The JSON report is written
atomically; metrics in it are fractions as score.py prints them, published numbers and
deltas in percentage points.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Mapping, Sequence

__all__ = ["OFFICIAL_TOLERANCE", "TRAINED_BELOW", "TRAINED_ABOVE", "Expectation", "Row", "Report",
           "find_official", "find_trained", "load_published", "stage_command", "validation_set",
           "verify", "format_table", "write_report", "DEFAULT_STAGES", "DEMO_STAGES", "OTHER_STAGES",
           "ALL_STAGES"]

OFFICIAL_TOLERANCE = 0.1
TRAINED_BELOW = 2.0
TRAINED_ABOVE = 2.0
DEFAULT_STAGES = ("fcn32s", "fcn16s", "fcn8s", "fcn8s-atonce", "fcn-alexnet", "fcn-googlenet")
DEMO_STAGES = ("fcn32s", "fcn16s", "fcn8s")
# the release's nets of the other datasets, scored on their own test splits (MEASURED rows)
OTHER_STAGES = ("nyud-fcn32s-color", "nyud-fcn32s-hha", "nyud-fcn32s-color-d", "nyud-fcn32s-color-hha",
                "siftflow-fcn32s", "siftflow-fcn16s", "siftflow-fcn8s",
                "pascalcontext-fcn32s", "pascalcontext-fcn16s", "pascalcontext-fcn8s")
ALL_STAGES = DEFAULT_STAGES + OTHER_STAGES
SOURCES = ("official", "trained")
_SNAPSHOT = re.compile(r"^train_iter_(\d+)\.(caffemodel|pth)$")
# the paper's figure for a VOC net the release never published (shown, not judged)
UNRELEASED_CONTEXT = {"fcn-googlenet": "CVPR 2015 Table 1 FCN-GoogLeNet 42.5 mean IU (the paper's own "
                                       "recipe, Sec. 4.1; context, not judged)"}


@dataclass(frozen=True)
class Expectation:
    """What a row is judged against: mean IU in percent and the allowed band around it."""

    mean_iu: float | None
    below: float
    above: float
    origin: str                     # "release (seg11valid)", a JSON file, or "none"
    paper: Mapping[str, float] | None = None

    def judge(self, measured_percent: float) -> tuple[str, float | None]:
        if self.mean_iu is None:
            return "MEASURED", None
        delta = measured_percent - self.mean_iu
        if not math.isfinite(delta):
            return "FAIL", None
        ok = -self.below - 1e-9 <= delta <= self.above + 1e-9
        return ("PASS" if ok else "FAIL"), delta


@dataclass
class Row:
    stage: str
    source: str
    status: str
    weights: str | None = None
    note: str = ""
    expectation: Expectation | None = None
    result: dict | None = None      # reproduce.evaluation.evaluate.EvalResult.to_dict()
    delta: float | None = None      # measured − published mean IU, percentage points
    reason: str = ""
    command: str = ""
    head: str = ""                  # the score blob of a net with several heads (SIFT Flow)
    metric: str = "mean_iu"         # what the papers score this row by (Head.metric)
    context: str = ""               # the paper's figure for it, or why there is none

    def to_dict(self) -> dict:
        data = asdict(self)
        if self.expectation is not None:
            data["expectation"] = {**asdict(self.expectation),
                                   "paper": dict(self.expectation.paper) if self.expectation.paper else None}
        return data


@dataclass
class Report:
    rows: list[Row]
    voc_dir: str
    split: str
    data_problem: str = ""
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).replace(microsecond=0).isoformat())

    @property
    def exit_status(self) -> int:
        return 1 if any(r.status in ("FAIL", "ERROR") for r in self.rows) else 0

    def counts(self) -> dict:
        statuses = ("PASS", "FAIL", "ERROR", "MEASURED", "SKIPPED")
        return {s.lower(): sum(r.status == s for r in self.rows) for s in statuses}

    def to_dict(self) -> dict:
        return {"created": self.created, "voc_dir": self.voc_dir, "split": self.split,
                "data_problem": self.data_problem or None, "summary": self.counts(),
                "exit_status": self.exit_status, "rows": [r.to_dict() for r in self.rows]}


# -- where the weights are -----------------------------------------------------------------
def find_official(stage: str, weights_dir: str | os.PathLike) -> Path | None:
    """The converted release weights of ``stage`` (``.pth``, else the ``.caffemodel``), or None."""
    from reproduce.weights.manifest import entry_for_net

    e = entry_for_net(stage)
    if e is None:
        return None
    for name in (e.pth, e.file):
        path = Path(weights_dir) / name
        if path.is_file():
            return path
    return None


def find_trained(stage: str, runs_dir: str | os.PathLike) -> tuple[Path | None, str]:
    """``runs/<stage>/final.{pth,caffemodel}`` or its last snapshot, with a note saying which."""
    run = Path(runs_dir) / stage
    for name in ("final.pth", "final.caffemodel"):
        if (run / name).is_file():
            return run / name, "final"
    best: tuple[int, int, Path] | None = None
    snapshots = run / "snapshot"
    if snapshots.is_dir():
        for path in snapshots.iterdir():
            match = _SNAPSHOT.match(path.name)
            if match and path.is_file():
                key = (int(match.group(1)), match.group(2) == "pth", path)  # .pth wins a tie
                best = max(best, key) if best else key
    if best:
        return best[2], f"snapshot iter {best[0]} (no final weights yet)"
    return None, ""


def stage_command(stage: str, voc_dir: str, runs_dir: str, weights_dir: str, data_dir: str = "data") -> str:
    """The command that trains ``stage`` (with the paths this run used), as the description of
    its dataset gives it (``reproduce.data.validation``)."""
    from reproduce.data.validation import VerifyPlaces

    where = VerifyPlaces(str(runs_dir), str(weights_dir), str(data_dir), str(voc_dir))
    return _description_of(stage).validation_data().stage_command(stage, where)


def _description_of(stage: str):
    """The ``DatasetDescription`` of the dataset ``stage`` is trained and scored on."""
    from reproduce.data.description import release_description
    from reproduce.models.build import model

    return release_description(model(stage).dataset)


# -- what to compare with ------------------------------------------------------------------
def load_published(path: str | os.PathLike) -> dict[str, dict]:
    """Expectations from a JSON file: ``{stage: {"mean_iu": percent, "tolerance_below": …,
    "tolerance_above": …}}`` (optionally wrapped in ``{"stages": …}``); tolerances optional."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as err:
        raise FileNotFoundError(f"{path}: cannot read the published numbers ({err.strerror})") from None
    except ValueError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if isinstance(data, dict) and isinstance(data.get("stages"), dict):
        data = data["stages"]
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object of stages")
    for stage, spec in data.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("mean_iu", 0), (int, float)):
            raise ValueError(f"{path}: stage {stage!r}: expected {{\"mean_iu\": percent, …}}")
        for key in ("tolerance_below", "tolerance_above"):
            if key in spec and not (isinstance(spec[key], (int, float)) and spec[key] >= 0):
                raise ValueError(f"{path}: stage {stage!r}: {key} must be a non-negative number")
    return data


def expectation(stage: str, source: str, published: Mapping[str, dict] | None, use_release: bool,
                official_tol: float = OFFICIAL_TOLERANCE, below: float = TRAINED_BELOW,
                above: float = TRAINED_ABOVE, published_origin: str = "") -> Expectation:
    from reproduce.weights.manifest import entry_for_net

    e = entry_for_net(stage)
    paper = e.paper_table2 if e and use_release else None
    default_below, default_above = (official_tol, official_tol) if source == "official" else (below, above)
    if published is not None:
        spec = published.get(stage)
        if spec is None or spec.get("mean_iu") is None:
            return Expectation(None, default_below, default_above, "none", paper)
        return Expectation(float(spec["mean_iu"]), float(spec.get("tolerance_below", default_below)),
                           float(spec.get("tolerance_above", default_above)), published_origin, paper)
    if use_release and e is not None and e.published_mean_iu is not None:
        return Expectation(e.published_mean_iu, default_below, default_above, "release (seg11valid)", paper)
    return Expectation(None, default_below, default_above, "none", paper)


# -- the validation data -------------------------------------------------------------------
def validation_set(voc_dir: str | os.PathLike, split: str = "seg11valid",
                   split_file: str | os.PathLike | None = None):
    """``(dataset, "")`` or ``(None, why not)`` for VOC ``split`` (or the ids in ``split_file``):
    the VOC nets' validation set, as their description reads it."""
    from reproduce.data.validation import voc_validation_set

    return voc_validation_set(voc_dir, split, split_file)


def _context(stage: str, metric: str, head_index: int, n_heads: int) -> str:
    """The paper's figure for this row (``WeightsEntry.scores``), or why there is none."""
    from reproduce.weights.manifest import entry_for_net

    e = entry_for_net(stage)
    wanted = "" if n_heads == 1 else ("semantic", "geometric")[head_index]
    key = {"overall_acc": "geom_acc" if wanted == "geometric" else "pixel_acc",
           "mean_iu_present": "mean_iu"}.get(metric, metric)
    for score in (e.scores if e else ()):
        if score.head == wanted and key in score.metrics:
            return f"{score.source} {score.row}: {score.metrics[key]:.1f} ({score.training} training)"
    return "none published for the heavy model" + (f" ({e.published_note})" if e and e.published_note else "")


def _other_rows(stage: str, source: str, path, note: str, command: str) -> list[Row]:
    from reproduce.models.build import model

    heads = model(stage).heads
    return [Row(stage, source, "SKIPPED", str(path) if path else None, note,
                Expectation(None, 0.0, 0.0, "none"), command=command,
                head=h.score if len(heads) > 1 else "", metric=h.metric,
                context=_context(stage, h.metric, i, len(heads))) for i, h in enumerate(heads)]


# -- the run -------------------------------------------------------------------------------
def verify(*, voc_dir: str | os.PathLike, runs_dir: str | os.PathLike, weights_dir: str | os.PathLike,
           split: str = "seg11valid", split_file: str | os.PathLike | None = None,
           stages: Sequence[str] = DEFAULT_STAGES, sources: Sequence[str] = SOURCES,
           published: Mapping[str, dict] | None = None, published_origin: str = "",
           use_release: bool = True, widths: str = "auto", device: str = "cpu",
           official_tol: float = OFFICIAL_TOLERANCE, trained_below: float = TRAINED_BELOW,
           trained_above: float = TRAINED_ABOVE, limit: int | None = None, progress: bool = True,
           save_dir: str | os.PathLike | None = None, data_dir: str | os.PathLike = "data",
           experiments: Sequence = (),
           log: Callable[[str], object] = lambda line: None) -> Report:
    """Score what is present (see the module docstring); returns the report (not yet written).

    ``experiments``: the paper's experiments (``reproduce.evaluation.experiments``) to score
    too, each from its run under ``<runs>/paper/<key>/``: judged against the paper's figure
    with the re-trained band where it gives one, MEASURED with its finding otherwise."""
    from reproduce.data.validation import VerifyPlaces

    voc_dir, runs_dir, weights_dir, data_dir = str(voc_dir), str(runs_dir), str(weights_dir), str(data_dir)
    where = VerifyPlaces(runs_dir, weights_dir, data_dir, voc_dir, split, split_file)
    asked: dict[str, tuple] = {}     # dataset → (its description, what verify asks it), once per run

    def ask(stage: str):
        description = _description_of(stage)
        if description.name not in asked:
            asked[description.name] = (description, description.validation_data())
        return asked[description.name]

    candidates = []
    for stage in stages:
        description, validation = ask(stage)
        for source in sources:
            if source == "official":
                path, note = find_official(stage, weights_dir), "release"
                command = f"make weights  (or: python -m reproduce weights --only {stage} --dir {weights_dir})"
                if _never_released(stage):
                    command = (f"none: the release never published {stage}'s weights; train it: "
                               + validation.stage_command(stage, where))
            else:
                path, note = find_trained(stage, runs_dir)
                command = validation.stage_command(stage, where)
            if not description.judged:   # nothing to judge against: MEASURED, one row per head
                candidates.extend(_other_rows(stage, source, path, note, command))
                continue
            exp = expectation(stage, source, published, use_release, official_tol, trained_below,
                              trained_above, published_origin)
            candidates.append(Row(stage, source, "SKIPPED", str(path) if path else None, note, exp,
                                  command=command, context=UNRELEASED_CONTEXT.get(stage, "")))
    for e in experiments:
        path, note = find_run_of(e, runs_dir)
        exp = Expectation(e.published, trained_below, trained_above, f"CVPR 2015 {e.where}")
        candidates.append(Row(e.stage, f"paper:{e.key}", "SKIPPED", str(path) if path else None, note,
                              exp, command=e.command(runs_dir, weights_dir, data_dir), context=e.context,
                              reason="" if path else f"no weights ({e.run_dir(runs_dir) / 'final.pth'} absent)"))
    # the split the published numbers are judged on is read (and its absence reported) up front
    data_problems = [ask(row.stage)[1].validation_set(row.stage, where)[1]
                     for row in candidates if ask(row.stage)[0].judged]
    data_problem = "; ".join(dict.fromkeys(p for p in data_problems if p))
    scored: dict[tuple[str, str], object] = {}
    for row in candidates:
        if not row.weights:
            where_absent = (Path(weights_dir) / _official_name(row.stage) if row.source == "official"
                            else Path(runs_dir) / row.stage / "final.pth")
            row.reason = row.reason or f"no weights ({where_absent} absent)"
            continue
        description, validation = ask(row.stage)
        dataset, problem = validation.validation_set(row.stage, where)
        if dataset is None:
            row.reason, row.command = validation.missing(row.stage, problem, where)
            continue
        if description.judged:
            _score_row(row, dataset, widths, device, limit, progress, save_dir, log)
        else:
            _score_other_row(row, dataset, widths, device, limit, progress, save_dir, log, scored)
    return Report(candidates, voc_dir, split if not split_file else str(split_file), data_problem)


def find_run_of(e, runs_dir) -> tuple[Path | None, str]:
    """An experiment's (``reproduce.evaluation.experiments.Experiment``) weights under
    ``<runs>/paper/<key>/<stage>/``, as ``find_trained`` finds a stage's."""
    return find_trained(e.stage, e.runs(runs_dir))


def _never_released(stage: str) -> bool:
    from reproduce.models.build import model
    from reproduce.weights.manifest import entry_for_net

    if not model(stage).released:   # a net of the papers the release never published
        return True
    e = entry_for_net(stage)
    return e is not None and not e.released


def _official_name(stage: str) -> str:
    from reproduce.weights.manifest import entry_for_net

    e = entry_for_net(stage)
    return e.pth if e else f"{stage}.pth"


def _score_row(row: Row, dataset, widths: str, device: str, limit: int | None, progress: bool,
               save_dir, log) -> None:
    from reproduce.caffe.errors import CaffeFormatError
    from reproduce.evaluation.evaluate import evaluate
    from reproduce.weights.pretrained import load_net

    subset = dataset if limit is None else _Limited(dataset, limit)
    log(f"scoring {row.stage} ({row.source}) from {row.weights} on {len(subset)} image(s)")
    try:
        net = load_net(row.stage, row.weights, split="val", widths=widths, device=device)
        out = None if save_dir is None else Path(save_dir) / f"{row.stage}-{row.source}"
        result = evaluate(net, subset, progress=progress, save_dir=out,
                          description=f"{row.stage} ({row.source})")
    except (CaffeFormatError, OSError, ValueError, KeyError, RuntimeError) as err:
        _mark_error(row, err)
        return
    finally:
        net = None  # free the weights before the next stage is loaded
    row.result = result.to_dict()
    row.command = ""
    measured = result.mean_iu * 100.0
    if limit is not None and limit < len(dataset):
        row.status, row.delta = "MEASURED", None
        row.reason = f"partial: {len(subset)} of {len(dataset)} images (--limit), not judged"
        return
    row.status, row.delta = row.expectation.judge(measured)
    if row.status == "MEASURED" and row.context:
        row.reason = f"mean IU {measured:.2f}; paper: {row.context}"
    if row.status == "FAIL":
        exp = row.expectation
        row.reason = (f"mean IU {measured:.2f} is outside {exp.mean_iu:.1f} −{exp.below:g}/+{exp.above:g} "
                      f"({exp.origin})")


def _mark_error(row: Row, err: Exception) -> None:
    row.status, row.command = "ERROR", ""
    row.reason = " ".join(f"{type(err).__name__}: {err}".split())


def _score_other_row(row: Row, dataset, widths: str, device: str, limit: int | None, progress: bool,
                     save_dir, log, nets: dict) -> None:
    """One head of a net of the other datasets on its test split: MEASURED (module docstring)."""
    from reproduce.caffe.errors import CaffeFormatError
    from reproduce.evaluation.evaluate import evaluate
    from reproduce.models.build import dataset_of, model
    from reproduce.weights.pretrained import load_net

    head = next(h for h in model(row.stage).heads if not row.head or h.score == row.head)
    subset = dataset if limit is None else _Limited(dataset, limit)
    log(f"scoring {row.stage} {head.score} ({row.source}) from {row.weights} on {len(subset)} image(s)")
    try:
        key = (row.stage, row.source)
        if key not in nets:   # one net for every head of a stage
            nets.clear()
            nets[key] = load_net(row.stage, row.weights, split=dataset_of(row.stage).splits[1],
                                 widths=widths, device=device)
        out = None if save_dir is None else Path(save_dir) / f"{row.stage}-{row.source}{head.suffix}"
        from reproduce.data.description import release_description

        names = release_description(model(row.stage).dataset, model(row.stage).heads.index(head)).classes
        result = evaluate(nets[key], subset, score_blob=head.score, label_blob=head.label,
                          loss_blob=head.loss, progress=progress, save_dir=out,
                          class_names=names if len(names) == head.num_classes else None,
                          description=f"{row.stage} {head.score} ({row.source})")
    except (CaffeFormatError, OSError, ValueError, KeyError, RuntimeError) as err:
        _mark_error(row, err)
        return
    row.result = result.to_dict()
    row.command = ""
    row.status, row.delta = "MEASURED", None
    value = row.result.get(row.metric)
    shown = "-" if value is None else f"{100 * value:.2f}"
    row.reason = f"{row.metric} {shown}; paper: {row.context}"
    if limit is not None and limit < len(dataset):
        row.reason += f"; partial: {len(subset)} of {len(dataset)} images (--limit)"


class _Limited:
    """The first ``n`` samples of a dataset, in file order."""

    def __init__(self, dataset, n: int):
        self.dataset, self.n = dataset, max(0, min(int(n), len(dataset)))
        self.ids = list(dataset.ids[: self.n])

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int):
        if not 0 <= index < self.n:
            raise IndexError(index)
        return self.dataset[index]


# -- output --------------------------------------------------------------------------------
def _pct(value) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{100.0 * value:.1f}"


def _num(value, fmt: str = "{:.1f}") -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else fmt.format(value)


def format_table(report: Report) -> str:
    """The table (one row per stage and source) and, below it, what each SKIPPED row needs."""
    header = ("stage", "source", "published", "paper T2", "overall acc", "mean acc", "mean IU", "fwavacc",
              "loss", "delta", "status")
    lines_rows = []
    for row in report.rows:
        exp, res = row.expectation, row.result or {}
        published = "-" if not exp or exp.mean_iu is None else (
            f"{exp.mean_iu:.1f} ±{exp.below:.1f}" if exp.below == exp.above
            else f"{exp.mean_iu:.1f} −{exp.below:.1f}/+{exp.above:.1f}")
        paper = "-" if not exp or not exp.paper else f"{exp.paper['mean_iu']:.1f}"
        source = row.source if row.note in ("", "release", "final") else f"{row.source}*"
        delta = "-" if row.delta is None else f"{row.delta:+.2f}"
        loss = _num(res.get("loss"), "{:.4g}")
        lines_rows.append((f"{row.stage} {row.head}" if row.head else row.stage, source, published, paper, _pct(res.get("overall_acc")),
                           _pct(res.get("mean_acc")), _num(None if res.get("mean_iu") is None
                                                           else 100 * res["mean_iu"], "{:.2f}"),
                           _pct(res.get("fwavacc")), loss, delta, row.status))
    widths = [max(len(str(r[i])) for r in [header, *lines_rows]) for i in range(len(header))]
    out = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths)).rstrip(),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in lines_rows]
    out.append(f"split: {report.split} in {report.voc_dir}; metrics in percent; delta = measured − "
               f"published mean IU; paper T2 = CVPR 2015 Table 2 (context, not judged)")
    for row in report.rows:
        if row.note not in ("", "release", "final"):
            out.append(f"* {row.stage} {row.source}: {row.note} ({row.weights})")
    for row in report.rows:
        if row.source.startswith("paper:") and row.expectation and row.expectation.mean_iu is None:
            out.append(f"{row.source}: {row.context}")
    for row in report.rows:
        if row.status in ("SKIPPED", "ERROR", "FAIL") or row.reason:
            tail = f"\n      run: {row.command}" if row.command else ""
            out.append(f"{row.status} {row.stage} {row.source}: {row.reason}{tail}")
    if report.data_problem:
        out.append(f"validation data: {report.data_problem}")
    counts = report.counts()
    out.append(", ".join(f"{n} {k.upper()}" for k, n in counts.items() if n) + f" → exit status {report.exit_status}")
    return "\n".join(out)


def write_report(path: str | os.PathLike, report: Report) -> Path:
    """Write the JSON report atomically (temporary file, fsync, rename)."""
    from reproduce.caffe.files import atomic_output

    path = Path(path)
    text = json.dumps(report.to_dict(), indent=2, allow_nan=False, default=_json_default) + "\n"
    with atomic_output(path) as tmp:
        tmp.write_text(text)
    return path


def _json_default(value):
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")

"""How long ``make demo`` takes: an estimate at the start and per step, the measured phases at the end.

``make demo`` calls ``python -m reproduce demo estimate --out DIR`` first: it times a few
training iterations of the demo's classifier here and now (``calibrate``, about 5 s) and
scales the phases measured in a reference run (``REFERENCE``) by how much slower or faster this
machine is at the moment, printing the total and each step. Before each later step
``demo estimate --step NAME`` prints that step's estimate and records when it started in
``DIR/timing.json``; ``demo report`` closes the clock and lists what each phase took.

The estimate is as good as the calibration is representative: on a shared machine whose load
changes during the run it can be off either way; the measured phases are what happened.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

STEPS = ("prepare", "stage-32s", "stage-16s", "stage-8s", "verify", "report")
TIMING_FILE = "timing.json"

# `make demo DEMO_DIR=/tmp/demo-main` on the development machine (AMD EPYC with AVX-512, 2 cores,
# torch 2.13 CPU) on 2026-12-07, load average about 1 (its timing.json): calibrate() 0.035 s at
# the start; the phases as measured, in seconds, 137 s in all.
REFERENCE = {
    "machine": "AMD EPYC (AVX-512), 2 cores, load average about 1",
    "calibration_s": 0.0354,
    "steps": {"prepare": 29.6, "stage-32s": 36.7, "stage-16s": 31.6, "stage-8s": 33.1,
              "verify": 3.4, "report": 2.9},
}


def calibrate(repeats: int = 3) -> float:
    """Seconds for one training iteration (forward + backward, batch 8) of the demo's classifier
    as pre-training runs it, the median of ``repeats`` after a warm-up."""
    import numpy as np
    import torch

    from reproduce.demo.classifier import vgg16_classifier
    from reproduce.net import Net

    torch.manual_seed(0)
    net = Net(vgg16_classifier(21, "tiny", batch=8, train=True, dropout=0.1), phase="train")
    net.use_channels_last(True)
    data = np.random.default_rng(0).normal(0, 40, (8, 3, 224, 224)).astype(np.float32)
    label = np.zeros(8, np.float32)
    times = []
    for k in range(repeats + 1):
        start = time.perf_counter()
        net.forward(data=data, label=label)
        net.backward()
        if k:
            times.append(time.perf_counter() - start)
    return float(np.median(times))


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _read(out: Path) -> dict:
    try:
        return json.loads((out / TIMING_FILE).read_text())
    except (OSError, ValueError):
        return {}


def _write(out: Path, record: dict) -> None:
    from reproduce.caffe.files import atomic_output

    out.mkdir(parents=True, exist_ok=True)
    with atomic_output(out / TIMING_FILE) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=2) + "\n")


def start(out: str | Path, log=print, seconds_per_iteration: float | None = None) -> dict:
    """Calibrate, print the whole demo's estimate, and start the clock in ``out/timing.json``."""
    out = Path(out)
    measured = calibrate() if seconds_per_iteration is None else seconds_per_iteration
    scale = measured / REFERENCE["calibration_s"]
    steps = {name: seconds * scale for name, seconds in REFERENCE["steps"].items()}
    total = sum(steps.values())
    log(f"make demo: about {_minutes(total)} here now (this machine runs the classifier's training step in "
        f"{measured:.2f} s; {REFERENCE['calibration_s']:.2f} s on the reference machine, "
        f"{REFERENCE['machine']}, where the demo took {_minutes(sum(REFERENCE['steps'].values()))})")
    log("  steps: " + ", ".join(f"{name} ~{_minutes(s)}" for name, s in steps.items()))
    record = {"scale": scale, "calibration_s": measured, "estimate_s": steps, "started": time.time(),
              "steps": {}}
    _write(out, record)
    step(out, STEPS[0], log)
    return _read(out)


def step(out: str | Path, name: str, log=print) -> None:
    """Print step ``name``'s estimate and the time so far; record when it started."""
    if name not in STEPS:
        raise ValueError(f"unknown demo step {name!r} (choose from {', '.join(STEPS)})")
    out = Path(out)
    record = _read(out)
    now = time.time()
    if not record:
        record = {"scale": None, "estimate_s": {}, "started": now, "steps": {}}
    record["steps"][name] = now
    _write(out, record)
    estimate = record.get("estimate_s", {}).get(name)
    index = STEPS.index(name) + 1
    so_far = now - float(record.get("started", now))
    remaining = sum(v for k, v in record.get("estimate_s", {}).items() if STEPS.index(k) >= STEPS.index(name))
    log(f"[demo {index}/{len(STEPS)}] {name}" + (f": about {_minutes(estimate)}" if estimate else "")
        + f" ({_minutes(so_far)} so far" + (f", about {_minutes(remaining)} to go)" if remaining else ")"))


def finish(out: str | Path) -> dict | None:
    """The measured seconds of each step from ``timing.json`` (the last step ends now), or None."""
    out = Path(out)
    record = _read(out)
    marks = sorted(record.get("steps", {}).items(), key=lambda kv: kv[1])
    if not marks:
        return None
    now = time.time()
    ends = [t for _, t in marks[1:]] + [now]
    phases = {name: round(end - t, 1) for (name, t), end in zip(marks, ends)}
    record["measured_s"] = phases
    record["total_s"] = round(now - float(record.get("started", marks[0][1])), 1)
    _write(out, record)
    return record

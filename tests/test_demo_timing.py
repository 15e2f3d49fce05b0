"""``make demo``'s clock: an estimate at the start (the reference run's phases scaled by a
calibration here and now), one per step as it starts, and the measured phases at the end."""
from __future__ import annotations

import json
import time

import pytest

from reproduce.cli import main
from reproduce.demo import timing


def test_the_estimate_scales_the_reference_phases_and_the_clock_measures_them(tmp_path):
    lines = []
    slower = 2 * timing.REFERENCE["calibration_s"]
    record = timing.start(tmp_path, log=lines.append, seconds_per_iteration=slower)
    total = 2 * sum(timing.REFERENCE["steps"].values())
    assert record["estimate_s"] == {k: pytest.approx(2 * v) for k, v in timing.REFERENCE["steps"].items()}
    assert lines[0].startswith(f"make demo: about {total / 60:.0f} min here now")
    assert lines[1].startswith("  steps: prepare ~") and lines[2].startswith("[demo 1/6] prepare: about")
    time.sleep(0.2)
    timing.step(tmp_path, "stage-32s", log=lines.append)
    assert lines[-1].startswith("[demo 2/6] stage-32s: about") and "to go" in lines[-1]
    time.sleep(0.1)
    clock = timing.finish(tmp_path)
    assert list(clock["measured_s"]) == ["prepare", "stage-32s"]
    assert clock["measured_s"]["prepare"] >= 0.2 and clock["total_s"] >= 0.3
    assert json.loads((tmp_path / timing.TIMING_FILE).read_text())["measured_s"] == clock["measured_s"]


def test_a_step_without_a_start_still_reports_and_an_unknown_step_is_refused(tmp_path, capsys):
    assert main(["demo", "estimate", "--out", str(tmp_path), "--step", "verify"]) == 0
    assert capsys.readouterr().out.startswith("[demo 5/6] verify (0 s so far)")
    with pytest.raises(SystemExit):
        main(["demo", "estimate", "--out", str(tmp_path), "--step", "train"])


def test_calibration_times_a_classifier_step():
    assert 0 < timing.calibrate(repeats=1) < 60

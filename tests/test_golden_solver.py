"""Solver steps against the real Caffe: three ``SGDSolver.step(1)`` calls per fixture net.

``SGDSolver(solver.prototxt, weights.caffemodel)`` — the golden solver, train net and weights
as Caffe loaded them — is fed ``step<k>/input/<top>`` before step ``k`` (as pycaffe's
``net.blobs[top].data[...] = …`` is: held for every forward of the step, so AlexNet's
``iter_size: 2`` runs both passes on the same input), then every parameter must equal
``step<k>/param/<layer>/<i>`` within 1e-5 relative to its largest magnitude and the loss
``step<k>/loss/<top>`` within 1e-4 (the AlexNet fixture records no loss).

The loss Caffe reports for a step is the mean over ``iter_size`` of the forward losses, before
the update; with ``step(1)`` the smoothed loss is that value (Caffe clears its window per call).
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import VOC_NETS
from golden_compare import assert_all_close, npz_group, relative_error
from reproduce.solver import SGDSolver

PARAM_TOLERANCE = 1e-5
LOSS_TOLERANCE = 1e-4
STEPS = 3


@pytest.mark.golden
@pytest.mark.parametrize("name", VOC_NETS)
def test_solver_steps_match_caffe(golden, name):
    folder = golden / name
    solver = SGDSolver(folder / "solver.prototxt", folder / "weights.caffemodel")
    steps = np.load(folder / "solver_steps.npz")
    records = []
    solver.add_callback(records.append)
    for k in range(STEPS):
        inputs = npz_group(steps, f"step{k}/input/")
        assert set(inputs) == set(solver.net.inputs)
        solver.step(1, feed=inputs)
        assert solver.iter == k + 1
        params = {f"{layer}/{i}": blob.detach().numpy()
                  for layer, blobs in solver.net.params.items() for i, blob in enumerate(blobs)}
        expected = npz_group(steps, f"step{k}/param/")
        assert set(expected) == set(params)
        assert_all_close(params, expected, PARAM_TOLERANCE, f"{name} step {k} params")
        for top, reference in npz_group(steps, f"step{k}/loss/").items():
            assert top in solver.net.loss_blobs
            assert relative_error(np.float32(records[-1]["loss"]), reference) <= LOSS_TOLERANCE
            assert relative_error(np.float32(solver.smoothed_loss), reference) <= LOSS_TOLERANCE


@pytest.mark.golden
def test_the_fixture_trajectory_moves(golden):
    """The steps change the parameters by far more than the tolerance (the test can fail)."""
    steps = np.load(golden / "voc-fcn8s" / "solver_steps.npz")
    before = SGDSolver(golden / "voc-fcn8s" / "solver.prototxt",
                       golden / "voc-fcn8s" / "weights.caffemodel").net.params["score_fr"][0]
    after = steps["step2/param/score_fr/0"]
    assert relative_error(before.detach().numpy(), after) > 100 * PARAM_TOLERANCE

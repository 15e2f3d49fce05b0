"""An upstream solver.prototxt runs as it is, the way `caffe train` would: its train.prototxt's
Python data layer (voc_layers.SBDDSegDataLayer) reads an SBD-layout folder in the reference order."""
from __future__ import annotations

import numpy as np
import pytest

from reproduce.caffe import read_solver
from reproduce.data import make_synthetic_dataset
from reproduce.data.sampler import ReferenceSampler
from reproduce.solver import SGDSolver


@pytest.mark.parametrize("net", ["voc-fcn32s"])
def test_upstream_solver_steps_on_an_sbd_layout_folder(upstream, tmp_path, net):
    data = make_synthetic_dataset(tmp_path / "data", n_train=4, n_val=1, seed=3, sides=(40, 56))
    param = read_solver(upstream / net / "solver.prototxt")
    # the reference writes snapshots beside its prototxts; ../shared is read-only here
    param.snapshot_prefix = str(tmp_path / "snapshot" / "train")
    param.snapshot_after_train = False
    param.train_net = str(upstream / net / param.train_net)   # as given in a file: beside the solver
    param.test_net = [str(upstream / net / name) for name in param.test_net]
    solver = SGDSolver(param, data_root_overrides={"sbdd_dir": str(data.sbdd_dir), "voc_dir": str(data.voc_dir)})
    assert solver.net.inputs == ["data", "label"]
    source = next(iter(solver.feeder.sources.values()))
    expected_order = ReferenceSampler(len(data.train_ids), randomize=True, seed=1337, split="train")
    assert source.peek() == expected_order.peek()          # seed 1337 from the upstream param_str
    solver.step(1)
    assert solver.iter == 1
    # no weights given: the upstream convolutions have no fillers, so Caffe's default constant 0
    # makes every score 0 and the unnormalized loss (valid pixels) · −log(1/21), summed one
    # float32 term at a time as Caffe's SoftmaxWithLoss does
    label = solver.net.blobs["label"].numpy()
    valid = int((label != 255).sum())
    term = -np.log(np.float32(1) / np.float32(21), dtype=np.float32)
    expected = np.cumsum(np.full(valid, term, dtype=np.float32), dtype=np.float32)[-1]
    assert float(solver.smoothed_loss) == pytest.approx(float(expected), rel=1e-6)
    assert label.shape[2:] == solver.net.blobs["data"].shape[2:]

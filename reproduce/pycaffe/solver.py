"""``caffe.SGDSolver`` and the other solvers, on the project's Caffe-exact solver.

What it mirrors of pycaffe's ``Solver`` (``_caffe.cpp``) and Caffe's ``Solver``:

* ``SGDSolver(file)``, ``NesterovSolver``, ``AdaGradSolver``, ``RMSPropSolver``,
  ``AdaDeltaSolver``, ``AdamSolver``: each class runs its own update rule whatever the
  prototxt's ``type`` says, as constructing that C++ class does; ``get_solver(file)`` picks the
  class the ``type`` names (``SolverRegistry::CreateSolver``). Relative paths in the prototxt
  (nets, ``snapshot_prefix``) are taken from the working directory, as Caffe does;
* ``net`` and ``test_nets`` are ``caffe.Net``s (test nets share the train net's parameter
  tensors); Python layers in them run. The test nets are built when first used — by
  ``test_nets`` or the solver's own test — as the project's solver builds them, where Caffe
  builds them with the solver: the generator that fillers and dropout draw from is then
  drawn in the project's order, so a run through this API follows the same trajectory as
  ``reproduce.solver.SGDSolver`` on the same seed and data;
* ``step(n)``, ``solve(resume_file=None)``, ``iter``, ``snapshot()``, ``restore(file)``,
  ``apply_update()`` (Caffe's ``ApplyUpdate``: the update from the diffs the net holds, at the
  current iteration's rate; ``iter`` is not advanced, as there), ``add_callback(on_start,
  on_gradients_ready)``, ``share_weights(net)``, ``param`` (a ``caffe_pb2.SolverParameter``),
  ``lr`` (the rate of the current iteration).

Everything numerical is ``reproduce.solver.SGDSolver``: Caffe's iteration (diffs cleared —
zeroed in place here, so a diff array kept across steps stays the parameter's — forward and
backward ``iter_size`` times, the loss averaged and smoothed, ``ApplyUpdate``), its update
rules, lr policies and tests. Forward and backward are the ``caffe.Net``'s, so what the blobs
hold (``solver.net.blobs['data'].data`` written before ``step``) is what trains, and a
Python data layer draws its sample on every forward as in Caffe.

``snapshot()`` writes Caffe's ``<prefix>_iter_<N>.caffemodel`` and ``.solverstate`` (iter,
learned_net, history, current_step — the file Caffe's ``restore`` reads) and the project's
``.solverstate.pt`` beside them, which also holds what an identical continuation needs
(loss window, generators); ``restore`` takes either.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from reproduce.caffe.schema import Message
from reproduce.solver import solver as _engine_module
from reproduce.solver.snapshot import snapshot_filename

from . import mode
from .blob import push_host_copies
from .net import Net, _check_file

_TYPES = {"SGD": "SGD", "Nesterov": "Nesterov", "AdaGrad": "AdaGrad", "RMSProp": "RMSProp",
          "AdaDelta": "AdaDelta", "Adam": "Adam"}


class _EngineNet:
    """A ``caffe.Net`` as ``reproduce.solver.SGDSolver`` drives a net: ``net(**{})`` runs the
    whole forward (inputs are what the blobs hold), ``backward()`` the whole backward."""

    def __init__(self, net: Net):
        self.pynet = net
        self.inner = net._net
        self.inputs: list[str] = []        # nothing is fed: the blobs hold the inputs
        self.layer_dict: dict = {}         # no project data sources: Python layers run

    name = property(lambda self: self.inner.name)
    params = property(lambda self: self.inner.params)
    param_specs = property(lambda self: self.inner.param_specs)
    loss_blobs = property(lambda self: self.inner.loss_blobs)
    layer_names = property(lambda self: self.inner.layer_names)
    loss = property(lambda self: self.pynet._loss)

    def layer(self, name: str):
        return self.inner.layer(name)

    def __call__(self, **inputs: Any) -> dict[str, torch.Tensor]:
        net = self.pynet
        net._forward(0, len(net._layers) - 1)
        return {name: net._blob_objects[name]._t for name in net.outputs}

    def backward(self) -> None:
        net = self.pynet
        net._backward(len(net._layers) - 1, 0)

    def copy_from(self, weights, **kwargs) -> None:
        push_host_copies()
        self.inner.copy_from(weights, **kwargs)

    def share_with(self, other: "_EngineNet") -> None:
        self.inner.share_with(other.inner if isinstance(other, _EngineNet) else other)


class _Engine(_engine_module.SGDSolver):
    """The project's solver, building ``caffe.Net``s and keeping pycaffe's callbacks."""

    def __init__(self, param: Message, device: torch.device):
        self.pycaffe_callbacks: list[tuple[Callable, Callable]] = []
        super().__init__(param, device=device)

    def _build_net(self, net_param: Message, phase_and_rule):
        from reproduce.solver.solver import merged_net_state

        phase, level, stages = merged_net_state(net_param, phase_and_rule)
        net = Net(net_param, phase, level=level, stages=stages, generator=self.generator,
                  device=self.device)
        return _EngineNet(net)

    def clear_param_diffs(self) -> None:
        with torch.no_grad():
            for param, _, _ in self._learnable:
                if param.grad is not None:
                    param.grad.zero_()
        self._last_update = None

    def _forward_backward(self, feed):
        for on_start, _ in self.pycaffe_callbacks:
            on_start()
        return super()._forward_backward(feed)

    def on_gradients_ready(self, loss):
        for _, on_gradients_ready in self.pycaffe_callbacks:
            on_gradients_ready()
        return loss

    def snapshot(self) -> Path:
        """The project's snapshot, and Caffe's ``.solverstate`` beside it (binary format):
        also when ``snapshot: N`` takes one inside ``step``, as Caffe's does."""
        state = super().snapshot()
        if self.param.snapshot_format != "HDF5":
            self._write_caffe_state()
        return state

    def _write_caffe_state(self) -> Path:
        from reproduce.caffe import wire
        from reproduce.caffe.blobs import blob_message
        from reproduce.caffe.files import atomic_output
        from reproduce.solver.snapshot import STATE_SUFFIX, WEIGHTS_SUFFIX

        weights = snapshot_filename(self.snapshot_prefix, self.iter, WEIGHTS_SUFFIX)
        history = self.rule.state_dict()["history"]
        state = Message("SolverState", iter=int(self.iter), learned_net=os.fspath(weights),
                        current_step=int(self.current_step),
                        history=[blob_message(np.asarray(h.numpy(), dtype=np.float32))
                                 for h in history])
        path = Path(os.fspath(snapshot_filename(self.snapshot_prefix, self.iter,
                                                STATE_SUFFIX))[:-len(".pt")])
        with atomic_output(path) as tmp:
            Path(tmp).write_bytes(wire.encode(state))
        return path


def _read_param(filename: str | os.PathLike | Message) -> Message:
    from reproduce.caffe.text import read
    from reproduce.caffe.upgrade import upgrade_solver

    if isinstance(filename, Message):
        return upgrade_solver(filename.copy())[0]
    path = _check_file(filename, "solver prototxt")
    return upgrade_solver(read(path, "SolverParameter"), path)[0]


class Solver:
    """pycaffe's ``caffe._caffe.Solver`` (see the module docstring)."""

    solver_type: str | None = None   # the update rule of the class; None: the prototxt's

    def __init__(self, filename: str | os.PathLike | Message):
        param = _read_param(filename)
        if self.solver_type is not None:
            param.type = self.solver_type
        if param.type not in _TYPES:
            raise ValueError(f"unknown solver type {param.type!r} (known: {', '.join(_TYPES)})")
        self._engine = _Engine(param, mode.device())

    # -- state ---------------------------------------------------------------------
    @property
    def net(self) -> Net:
        return self._engine.net.pynet

    @property
    def test_nets(self) -> list[Net]:
        return [net.pynet for net in self._engine.test_nets]

    @property
    def iter(self) -> int:
        return int(self._engine.iter)

    @property
    def param(self):
        from .proto import as_proto

        return as_proto(self._engine.param.copy())

    @property
    def lr(self) -> float:
        from reproduce.solver.lr_policy import learning_rate

        return float(learning_rate(self._engine.param, self._engine.iter,
                                   self._engine.current_step)[0])

    @property
    def type(self) -> str:
        return self._engine.type

    # -- running -------------------------------------------------------------------
    def step(self, iters: int) -> None:
        push_host_copies()
        self._engine.step(int(iters))

    def solve(self, resume_file: str | os.PathLike | None = None) -> None:
        push_host_copies()
        if resume_file is not None:
            self.restore(resume_file)
        self._engine.solve()

    def apply_update(self) -> None:
        push_host_copies()
        engine = self._engine
        engine.apply_update()
        engine.iter -= 1    # Caffe's ApplyUpdate leaves iter_ to Step

    def add_callback(self, on_start: Callable[[], None],
                     on_gradients_ready: Callable[[], None]) -> None:
        self._engine.pycaffe_callbacks.append((on_start, on_gradients_ready))

    def share_weights(self, net: Net) -> None:
        net.share_with(self.net)

    # -- files ---------------------------------------------------------------------
    def snapshot(self) -> None:
        """Caffe's ``Solver::Snapshot`` (see the module docstring)."""
        push_host_copies()
        self._engine.snapshot()

    def restore(self, filename: str | os.PathLike) -> None:
        """Caffe's ``Solver::Restore``: a ``.solverstate`` (``.h5``) or the project's ``.pt``."""
        push_host_copies()
        self._engine.restore(_check_file(filename, "solver state"))

    def __repr__(self) -> str:
        return f"<caffe {type(self).__name__} iter {self.iter}>"


class SGDSolver(Solver):
    solver_type = "SGD"


class NesterovSolver(SGDSolver):
    solver_type = "Nesterov"


class AdaGradSolver(SGDSolver):
    solver_type = "AdaGrad"


class RMSPropSolver(SGDSolver):
    solver_type = "RMSProp"


class AdaDeltaSolver(SGDSolver):
    solver_type = "AdaDelta"


class AdamSolver(SGDSolver):
    solver_type = "Adam"


def get_solver(filename: str | os.PathLike | Message) -> Solver:
    """Caffe's ``SolverRegistry::CreateSolver``: the solver class the prototxt's ``type`` names."""
    solver = Solver.__new__(Solver)
    Solver.__init__(solver, filename)
    return solver

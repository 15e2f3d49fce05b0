"""``SGDSolver``: Caffe's ``Solver`` + ``SGDSolver`` (solver.cpp, sgd_solver.cpp), pycaffe-style.

``SGDSolver(solver_prototxt, weights=None, *, data_root_overrides=None, device="cpu")`` reads
a solver prototxt (or a SolverParameter ``Message``) and builds:

* ``.net`` — the train net from exactly one of ``train_net``/``net``/``train_net_param``/
  ``net_param`` (file names relative to the solver file's directory), in the NetState Caffe
  gives it (phase TRAIN, then the net's own ``state``, then ``train_state``), with the
  solver's ``weights`` and then ``weights`` copied in (``caffe train --weights``);
* ``.test_nets`` — built on first use from ``test_net``/``test_net_param``/the generic net,
  one per ``test_iter``, sharing the train net's parameter tensors by layer name (Caffe's
  ``ShareTrainedLayersWith``);
* ``.iter``, ``.current_step`` — as Caffe's ``iter_`` and ``current_step_``.

``net=`` trains a net built elsewhere instead (anything with ``Net``'s ``name``, ``params``,
``param_specs``, ``inputs``, ``loss``, ``loss_blobs``, ``forward(**inputs)`` and ``backward()``),
with the solver's settings; the train-net fields of the prototxt are then not read.

``step(n, feed=None)`` runs Caffe's ``Solver::Step``: per iteration clear the diffs, test if
``test_interval`` says so, ``iter_size`` forward/backward passes accumulating diffs, the loss
averaged over them and smoothed over ``average_loss``, ``ApplyUpdate`` (learning rate at the
current ``iter``, then ``iter += 1``) and a snapshot every ``snapshot`` iterations.
``solve()`` is ``Solver::Solve``. The update rule follows the prototxt's ``type`` (SGD,
Nesterov, AdaGrad, RMSProp, AdaDelta, Adam), as ``caffe train`` picks the solver class.

Departures from Caffe, on purpose: a NaN or infinite loss stops the run with
``NonFiniteLossError`` before that update (Caffe trains on); snapshots also hold what a
bit-exact resume needs (see ``reproduce.solver.snapshot``); ``random_seed`` seeds the
generator of the net's fillers and dropout.

Progress: ``step``/``solve`` take ``progress=True`` for a tqdm bar (loss, lr, it/s), and
``add_callback(fn)`` receives a plain dict per event (``"iteration"``, ``"snapshot"``,
``"test"``) for CSV or JSON-lines logs; Caffe's ``display`` lines go to the
``reproduce.solver`` logger.
"""
from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from reproduce.caffe.schema import Message

from . import integrity
from .data_layers import data_layer_states, load_data_layer_states
from .errors import NonFiniteLossError, SolverConfigError
from .inputs import Feed, InputFeeder
from .lr_policy import check_lr_policy, learning_rate
from .rules import make_update_rule
from .sgd import clip_gradients, normalize, regularize
from .snapshot import (STATE_SUFFIX, WEIGHTS_SUFFIX, SolverStateError, learned_net_path,
                       read_solverstate, rng_states, set_rng_states, snapshot_filename,
                       write_solverstate)

log = logging.getLogger("reproduce.solver")
f32 = np.float32

Callback = Callable[[dict], None]
MAX_LOGGED_OUTPUT = 64   # net outputs with more elements are left out of logs and records


class SGDSolver:
    """Caffe's solver over a ``reproduce.net.Net`` (see the module docstring)."""

    def __init__(self, solver_prototxt: str | os.PathLike | Message,
                 weights: str | os.PathLike | Mapping[str, Sequence[Any]] | None = None, *,
                 data_root_overrides=None, device: str | torch.device = "cpu", net=None):
        self.param, self.solver_dir = load_solver(solver_prototxt)
        check_solver(self.param)
        self.device = torch.device(device)
        self.data_root_overrides = data_root_overrides
        self.generator = torch.Generator(device=self.device)
        if self.param.random_seed >= 0:
            self.generator.manual_seed(int(self.param.random_seed))
        else:
            self.generator.seed()
        if net is None:
            net = self._build_net(self._train_net_param(), self._train_state())
        self.net = net
        self._weights_files = _weights_list(self.param, self.solver_dir)
        for path in self._weights_files:
            self.net.copy_from(_read_weights(path))
        if weights is not None:
            self.net.copy_from(_read_weights(weights) if isinstance(weights, (str, os.PathLike))
                               else weights)
        self.feeder = InputFeeder(self.net, self.solver_dir, data_root_overrides)
        self._learnable = learnable_params(self.net)
        self._last_update: list[torch.Tensor] | None = None
        self.rule = make_update_rule(self.param, [tuple(p.shape) for p, _, _ in self._learnable],
                                     self.device)
        self.iter = 0
        self.current_step = 0
        self.callbacks: list[Callback] = []
        self.last_snapshot: Path | None = None
        self.last_rate: float | None = None
        self._test_nets: list | None = None
        self._test_feeders: list[InputFeeder] = []
        self._losses: list[float] = []         # Caffe's losses_ (the smoothing window)
        self._smoothed_loss = f32(0)
        self._window_start = 0                 # the start_iter the window's index counts from
        self._keep_window = False              # set by restore(): continue the saved window
        if self.param.snapshot:
            _check_writable(self.snapshot_prefix)

    # ------------------------------------------------------------------ construction
    @property
    def snapshot_prefix(self) -> Path:
        return Path(self.param.snapshot_prefix)

    @property
    def type(self) -> str:
        return self.rule.type_name

    def _train_net_param(self) -> Message:
        p = self.param
        given = [name for name in ("net", "net_param", "train_net", "train_net_param") if p.has(name)]
        if len(given) != 1:
            raise SolverConfigError("the solver must specify exactly one train net with net, "
                                    f"net_param, train_net or train_net_param (it gives {given or 'none'})")
        source = given[0]
        if source.endswith("_param"):
            return getattr(p, source)
        return _read_net(self.solver_dir / getattr(p, source))

    def _train_state(self) -> tuple[str, Message | None]:
        return "TRAIN", self.param.train_state if self.param.has("train_state") else None

    def _build_net(self, net_param: Message, phase_and_rule: tuple[str, Message | None]):
        """A Net in the NetState Caffe merges: the default phase, the net's state, the rule."""
        from reproduce.net import Net

        phase, level, stages = merged_net_state(net_param, phase_and_rule)
        net = Net(net_param, phase=phase, level=level, stages=stages, generator=self.generator)
        return net.to(self.device)

    # ------------------------------------------------------------------ test nets
    @property
    def test_nets(self) -> list:
        """The test nets (built on first use), sharing the train net's parameters."""
        if self._test_nets is None:
            self._test_nets = []
            for index, net_param in enumerate(self._test_net_params()):
                rule = self.param.test_state[index] if self.param.test_state else None
                net = self._build_net(net_param, ("TEST", rule))
                for path in self._weights_files:
                    net.copy_from(_read_weights(path))
                net.share_with(self.net)
                self._test_nets.append(net)
                self._test_feeders.append(InputFeeder(net, self.solver_dir, self.data_root_overrides))
        return self._test_nets

    def _test_net_params(self) -> list[Message]:
        p = self.param
        params = list(p.test_net_param) + [_read_net(self.solver_dir / f) for f in p.test_net]
        remaining = len(p.test_iter) - len(params)
        if remaining < 0 or (remaining and not (p.has("net") or p.has("net_param"))):
            raise SolverConfigError(f"test_iter must be specified for each test network "
                                    f"({len(p.test_iter)} test_iter for {len(params)} test nets)")
        if remaining:
            generic = p.net_param if p.has("net_param") else _read_net(self.solver_dir / p.net)
            params += [generic] * remaining
        if p.test_state and len(p.test_state) != len(params):
            raise SolverConfigError("test_state must be unspecified or specified once per test net")
        if params and p.test_interval <= 0:
            raise SolverConfigError("test nets need test_interval > 0")
        return params

    def test(self, index: int = 0, feed: Feed = None) -> dict[str, np.ndarray]:
        """Caffe's ``Solver::Test``: the mean of each output of test net ``index`` over ``test_iter``.

        ``feed`` serves the test net's ``Input`` tops as in ``step`` (a dict is held for later
        tests too); Python data layers draw their own samples.
        """
        net = self.test_nets[index]
        feeder = self._test_feeders[index]
        if feed is not None and not callable(feed):
            feeder.hold(feed)
            feed = None
        iterations = int(self.param.test_iter[index])
        log.info("Iteration %d, Testing net (#%d)", self.iter, index)
        sums: "OrderedDict[str, np.ndarray]" = OrderedDict()
        loss = f32(0)
        with torch.no_grad():
            for _ in range(iterations):
                outputs = feeder.forward(net, feed)
                if self.param.test_compute_loss:
                    loss = f32(loss + f32(net.loss.item()))
                for name, value in outputs.items():
                    value = value.detach().cpu().numpy().astype(np.float32).reshape(-1)
                    sums[name] = value if name not in sums else sums[name] + value
        means = OrderedDict((name, total / f32(iterations)) for name, total in sums.items())
        record = {"event": "test", "iter": self.iter, "net": index,
                  "outputs": {name: _loggable(v) for name, v in means.items()}}
        if self.param.test_compute_loss:
            record["loss"] = float(loss / f32(iterations))
            log.info("Test loss: %g", record["loss"])
        for j, (name, value) in enumerate(means.items()):
            log.info("    Test net output #%d: %s = %s", j, name, _loggable(value))
        self._emit(record)
        return means

    def test_all(self) -> list[dict[str, np.ndarray]]:
        return [self.test(i) for i in range(len(self.test_nets))]

    # ------------------------------------------------------------------ training
    def add_callback(self, callback: Callback) -> None:
        """Call ``callback(record)`` on every iteration, snapshot and test (plain dicts)."""
        self.callbacks.append(callback)

    def step(self, iters: int, feed: Feed = None, progress: bool = False) -> None:
        """Run ``iters`` iterations (Caffe's ``Solver::Step``).

        ``feed``: a dict of arrays for the net's inputs, held for every forward pass (like
        setting ``net.blobs[…].data`` before ``solver.step``), or a callable returning such a
        dict, called before every forward pass. Python data layers draw their own samples.
        """
        iters = int(iters)
        if iters < 0:
            raise ValueError(f"step needs a non-negative number of iterations, got {iters}")
        start_iter, stop_iter = self.iter, self.iter + iters
        if not self._keep_window:
            self._losses, self._smoothed_loss, self._window_start = [], f32(0), start_iter
        self._keep_window = False
        if feed is not None and not callable(feed):
            self.feeder.hold(feed)
            feed = None
        bar = _progress_bar(iters) if progress else None
        p = self.param
        last_display, last_display_iter = time.perf_counter(), self.iter
        try:
            while self.iter < stop_iter:
                self.clear_param_diffs()
                if (p.test_interval and self.iter % p.test_interval == 0
                        and (self.iter > 0 or p.test_initialization)):
                    self.test_all()
                started = time.perf_counter()
                loss, outputs = self._forward_backward(feed)
                loss = self.on_gradients_ready(loss)
                if not math.isfinite(loss):
                    raise NonFiniteLossError(self.iter, loss,
                                             str(self.last_snapshot) if self.last_snapshot else None)
                self._update_smoothed_loss(loss)
                iteration = self.iter
                if p.display and iteration % p.display == 0:
                    now = time.perf_counter()
                    lapse = now - last_display
                    per_s = (iteration - last_display_iter) / (lapse or 1.0)
                    log.info("Iteration %d (%g iter/s, %gs/%d iters), loss = %g", iteration, per_s,
                             lapse, p.display, self._smoothed_loss)
                    last_display, last_display_iter = now, iteration
                    for j, (name, value) in enumerate(outputs.items()):
                        weight = self.net.loss_blobs.get(name)
                        extra = f" (* {weight:g} = {weight * float(np.sum(value)):g} loss)" if weight else ""
                        log.info("    Train net output #%d: %s = %s%s", j, name, _loggable(value), extra)
                rate = self.apply_update()
                record = {"event": "iteration", "iter": iteration, "loss": float(loss),
                          "smoothed_loss": float(self._smoothed_loss), "lr": float(rate),
                          "seconds": time.perf_counter() - started,
                          "outputs": {name: _loggable(v) for name, v in outputs.items()}}
                self._emit(record)
                if bar is not None:
                    bar.set_postfix(loss=f"{float(self._smoothed_loss):.4g}", lr=f"{float(rate):.3g}",
                                    refresh=False)
                    bar.update(1)
                if p.snapshot and self.iter % p.snapshot == 0:
                    self.snapshot()
        finally:
            if bar is not None:
                bar.close()

    def _forward_backward(self, feed: Feed) -> tuple[np.float32, dict[str, np.ndarray]]:
        iter_size = int(self.param.iter_size)
        loss = f32(0)
        outputs: dict[str, torch.Tensor] = {}
        for _ in range(iter_size):
            outputs = self.feeder.forward(self.net, feed)
            loss = f32(loss + f32(self.net.loss.item()))
            self.net.backward()
        # Caffe: ``loss /= param_.iter_size()``, a float divided by an int
        loss = f32(loss / f32(iter_size))
        return loss, {name: value.detach().cpu().numpy() for name, value in outputs.items()
                      if value.numel() <= MAX_LOGGED_OUTPUT}

    def on_gradients_ready(self, loss: np.float32) -> np.float32:
        """Caffe's ``Solver::Callback::on_gradients_ready``: called by ``step`` once the
        iteration's backward passes have filled the diffs, before the loss is checked and
        ``apply_update`` runs; returns the loss the iteration goes on with. Nothing here; a
        subclass hooks in (``reproduce.training.distributed`` averages the diffs across processes)."""
        return loss

    @property
    def learnable_parameters(self) -> list[torch.nn.Parameter]:
        """Caffe's ``learnable_params_``: every parameter blob once, in net order."""
        return [param for param, _, _ in self._learnable]

    def _update_smoothed_loss(self, loss: np.float32) -> None:
        """Caffe's ``UpdateSmoothedLoss``: running mean, then a ring buffer of ``average_loss``."""
        average_loss = int(self.param.average_loss)
        if len(self._losses) < average_loss:
            self._losses.append(float(loss))
            size = len(self._losses)
            self._smoothed_loss = f32((self._smoothed_loss * f32(size - 1) + loss) / f32(size))
        else:
            index = (self.iter - self._window_start) % average_loss
            self._smoothed_loss = f32(self._smoothed_loss
                                      + (loss - f32(self._losses[index])) / f32(average_loss))
            self._losses[index] = float(loss)

    @property
    def smoothed_loss(self) -> float:
        return float(self._smoothed_loss)

    def clear_param_diffs(self) -> None:
        """Caffe's ``Net::ClearParamDiffs``: no accumulated gradient on any parameter."""
        for param, _, _ in self._learnable:
            param.grad = None
        self._last_update = None

    def apply_update(self) -> np.float32:
        """Caffe's ``SGDSolver::ApplyUpdate`` on the diffs accumulated since the last clear."""
        p = self.param
        rate, self.current_step = learning_rate(p, self.iter, self.current_step)
        if p.display and self.iter % p.display == 0:
            log.info("Iteration %d, lr = %g", self.iter, rate)
        diffs = [param.grad if param.grad is not None else torch.zeros_like(param)
                 for param, _, _ in self._learnable]
        scale = clip_gradients(diffs, p.clip_gradients)
        if scale is not None:
            log.info("Gradient clipping: scaling down gradients by scale factor %g", scale)
        weight_decay = f32(p.weight_decay)
        with torch.no_grad():
            for index, ((param, lr_mult, decay_mult), diff) in enumerate(zip(self._learnable, diffs)):
                normalize(diff, int(p.iter_size))
                regularize(param, diff, f32(weight_decay * decay_mult), p.regularization_type)
                self.rule.compute_update_value(index, diff, f32(rate * lr_mult), self.iter)
            for (param, _, _), diff in zip(self._learnable, diffs):   # Net::Update
                param.sub_(diff)
        self._last_update = diffs   # what Caffe's diffs hold until the next ClearParamDiffs
        self.last_rate = float(rate)
        self.iter += 1
        return rate

    def solve(self, resume_file: str | os.PathLike | None = None, feed: Feed = None,
              progress: bool = False) -> None:
        """Caffe's ``Solver::Solve``: train until ``max_iter``, then the final snapshot and display."""
        if resume_file is not None:
            self.restore(resume_file)
        p = self.param
        log.info("Solving %s", self.net.name)
        log.info("Learning Rate Policy: %s", p.lr_policy)
        self.step(max(0, int(p.max_iter) - self.iter), feed=feed, progress=progress)
        if p.snapshot_after_train and (not p.snapshot or self.iter % p.snapshot != 0):
            self.snapshot()
        if p.display and self.iter % p.display == 0:
            # Caffe's extra forward pass, only to display the loss (it draws one more sample)
            if feed is not None and not callable(feed):
                self.feeder.hold(feed)
                feed = None
            with torch.no_grad():
                self.feeder.forward(self.net, feed)
            self._update_smoothed_loss(f32(self.net.loss.item()))
            log.info("Iteration %d, loss = %g", self.iter, self._smoothed_loss)
        if p.test_interval and self.iter % p.test_interval == 0:
            self.test_all()
        log.info("Optimization Done.")

    def _emit(self, record: dict) -> None:
        for callback in self.callbacks:
            callback(record)

    # ------------------------------------------------------------------ snapshots
    def weights(self) -> "OrderedDict[str, list[np.ndarray]]":
        """The train net's parameters as Caffe blobs ``{layer: [array, …]}`` (copies)."""
        return OrderedDict((layer, [blob.detach().cpu().numpy().copy() for blob in blobs])
                           for layer, blobs in self.net.params.items())

    def diffs(self) -> "OrderedDict[str, list[np.ndarray]]":
        """The parameter diffs as Caffe holds them between iterations, ``{layer: [array, …]}``
        like ``weights()``: after an update, the update each blob took (``ApplyUpdate``
        leaves it in the diff; ``Net::Update`` subtracted it), zeros before any update."""
        last = {id(param): diff for (param, _, _), diff
                in zip(self._learnable, self._last_update or [])}
        return OrderedDict((layer, [last[id(blob)].detach().cpu().numpy().copy() if id(blob) in last
                                    else np.zeros(tuple(blob.shape), np.float32) for blob in blobs])
                           for layer, blobs in self.net.params.items())

    def snapshot(self) -> Path:
        """Caffe's ``Solver::Snapshot``: weights, then solver state; returns the state's path."""
        from reproduce.caffe.weights import write_caffemodel, write_hdf5

        hdf5 = self.param.snapshot_format == "HDF5"
        weights_path = snapshot_filename(self.snapshot_prefix, self.iter,
                                         WEIGHTS_SUFFIX + (".h5" if hdf5 else ""))
        diffs = self.diffs() if self.param.snapshot_diff else None
        log.info("Snapshotting to %s file %s", "HDF5" if hdf5 else "binary proto", weights_path)
        (write_hdf5 if hdf5 else write_caffemodel)(weights_path, self.weights(), self._net_message(),
                                                   diffs=diffs)
        state_path = snapshot_filename(self.snapshot_prefix, self.iter, STATE_SUFFIX)
        log.info("Snapshotting solver state to %s", state_path)
        write_solverstate(state_path, {**self.state_dict(learned_net=weights_path),
                                       "learned_net_record": integrity.record(weights_path)})
        self.last_snapshot = state_path
        self._emit({"event": "snapshot", "iter": self.iter, "weights": str(weights_path),
                    "state": str(state_path)})
        return state_path

    def _net_message(self) -> Message | None:
        """The train net's NetParameter as Caffe's ``Net::ToProto`` writes it (blobs aside)."""
        if not hasattr(self.net, "layer_names"):
            return None   # a net of another kind: the caffemodel holds names and blobs only
        net = Message("NetParameter", name=self.net.name)
        net.layer = [self.net.layer(name).layer_param for name in self.net.layer_names]
        return net

    def state_dict(self, learned_net: str | os.PathLike = "") -> dict:
        """Everything a bit-exact resume needs, as plain dicts, lists and tensors."""
        return {
            "iter": int(self.iter),
            "current_step": int(self.current_step),
            "learned_net": os.fspath(learned_net),
            **self.rule.state_dict(),
            "loss_window": {"losses": list(self._losses), "smoothed": float(self._smoothed_loss),
                            "start": int(self._window_start)},
            "data": {"train": self.feeder.state_dict(),
                     "test": [feeder.state_dict() for feeder in self._test_feeders]},
            "rng": rng_states({"net": self.generator}),
            "data_layers": {"train": data_layer_states(self.net),
                            "test": [data_layer_states(net) for net in (self._test_nets or [])]},
        }

    def restore(self, path: str | os.PathLike, *, continue_loss_window: bool = True) -> None:
        """Continue from a snapshot: a ``.solverstate.pt`` (exact resume) or Caffe's
        ``.solverstate`` / ``.solverstate.h5`` (iteration, step, history and weights only).

        ``continue_loss_window``: the next ``step`` goes on with the saved smoothing window
        (the snapshot was taken inside one long ``step``, as ``solve`` takes them); False when
        the snapshot was taken between ``step`` calls, where the uninterrupted run's next
        ``step`` starts a fresh window (Caffe's ``Step`` clears ``losses_``) — the staged
        pipeline's case."""
        path = Path(path)
        if path.name.endswith((".solverstate", ".solverstate.h5")):
            self._restore_caffe_state(path)
            return
        if not path.name.endswith(STATE_SUFFIX):
            raise SolverStateError(f"{path}: expected a {STATE_SUFFIX} (or Caffe .solverstate, "
                                   ".solverstate.h5) file")
        state = read_solverstate(path)
        log.info("Restoring previous solver status from %s", path)
        weights_path = learned_net_path(path, state)
        try:   # the weights as the snapshot wrote them, not a cut or damaged file
            integrity.verify(weights_path, state.get("learned_net_record"))
        except integrity.SnapshotDamaged as err:
            raise SolverStateError(f"{err}; cannot resume from {path}") from None
        self.net.copy_from(_read_weights(weights_path))
        self.rule.load_state_dict(state)
        self.iter = int(state["iter"])
        self.current_step = int(state["current_step"])
        window = state["loss_window"]
        self._losses = [float(v) for v in window["losses"]]
        self._smoothed_loss = f32(window["smoothed"])
        self._window_start = int(window["start"])
        self._keep_window = bool(continue_loss_window)
        self.feeder.load_state_dict(state["data"]["train"])
        if state["data"]["test"]:
            self.test_nets  # noqa: B018 — build them so their samplers can be restored
            for feeder, saved in zip(self._test_feeders, state["data"]["test"]):
                feeder.load_state_dict(saved)
        set_rng_states(state["rng"], {"net": self.generator})
        layers = state.get("data_layers", {})
        load_data_layer_states(self.net, layers.get("train"))
        if layers.get("test"):
            for net, saved in zip(self.test_nets, layers["test"]):
                load_data_layer_states(net, saved)
        self.last_snapshot = path

    def _restore_caffe_state(self, path: Path) -> None:
        """Caffe's ``RestoreSolverStateFromBinaryProto`` / ``…FromHDF5``: iter, current_step,
        history, weights."""
        from reproduce.caffe import wire
        from reproduce.caffe.hdf5 import read_hdf5_solverstate

        if path.name.endswith(".h5"):
            state = read_hdf5_solverstate(path)
        else:
            state = wire.decode(path.read_bytes(), "SolverState", path=path)
        history = []
        for blob in state.history:
            array = np.asarray(blob.data, dtype=np.float32)
            shape = tuple(int(d) for d in blob.shape.dim) if blob.has("shape") else array.shape
            history.append(torch.from_numpy(array.reshape(shape).copy()))
        self.rule.load_state_dict({"type": self.rule.type_name, "history": history})
        if state.has("learned_net"):
            self.net.copy_from(_read_weights(learned_net_path(path, {"learned_net": state.learned_net})))
        self.iter = int(state.iter)
        self.current_step = int(state.current_step)


# ---------------------------------------------------------------------- helpers


def load_solver(source: str | os.PathLike | Message) -> tuple[Message, Path]:
    """The upgraded SolverParameter and the directory its relative paths start from.

    From a file, as Caffe's ``ReadSolverParamsFromTextFileOrDie``, except that relative
    paths (``snapshot_prefix``, net files) are taken relative to the solver file's
    directory rather than the working directory: an unset ``snapshot_prefix`` is the file's
    path without extension, one naming a directory gets the file's stem appended.
    """
    from reproduce.caffe.text import read
    from reproduce.caffe.upgrade import upgrade_solver

    if isinstance(source, Message):
        if source.type_name != "SolverParameter":
            raise TypeError(f"a solver needs a SolverParameter, not a {source.type_name}")
        param, _ = upgrade_solver(source)
        return param, Path.cwd()
    path = Path(source)
    param, _ = upgrade_solver(read(path, "SolverParameter"), os.fspath(path))
    base = path.parent
    if not param.has("snapshot_prefix"):
        param.snapshot_prefix = os.fspath(path.with_suffix(""))
    else:
        prefix = Path(param.snapshot_prefix)
        prefix = prefix if prefix.is_absolute() else base / prefix
        if prefix.is_dir():
            prefix = prefix / path.stem
        param.snapshot_prefix = os.fspath(prefix)
    return param, base


def check_solver(param: Message) -> None:
    """The checks Caffe makes on a SolverParameter, made up front with clear messages."""
    if param.average_loss < 1:
        raise SolverConfigError(f"average_loss should be >= 1, got {param.average_loss}")
    if param.iter_size < 1:
        raise SolverConfigError(f"iter_size should be >= 1, got {param.iter_size}")
    if param.snapshot < 0 or param.display < 0 or param.test_interval < 0:
        raise SolverConfigError("snapshot, display and test_interval must not be negative")
    if param.snapshot and not param.has("snapshot_prefix"):
        raise SolverConfigError("snapshot is specified but snapshot_prefix is not")
    if param.regularization_type not in ("L1", "L2"):
        raise SolverConfigError(f"unknown regularization_type {param.regularization_type!r} "
                                f"(Caffe knows L2 and L1)")
    check_lr_policy(param)


def learnable_params(net) -> list[tuple[torch.nn.Parameter, np.float32, np.float32]]:
    """Caffe's ``learnable_params_`` with ``params_lr_``/``params_weight_decay_``.

    Every parameter blob in net order, a shared blob once (at its first owner), including
    those with ``lr_mult: 0`` — Caffe updates them too, with a zero rate.
    """
    seen: set[int] = set()
    result = []
    for layer, blobs in net.params.items():
        for blob, (lr_mult, decay_mult) in zip(blobs, net.param_specs[layer]):
            if id(blob) in seen:
                continue
            seen.add(id(blob))
            result.append((blob, f32(lr_mult), f32(decay_mult)))
    return result


def _read_net(path: Path) -> Message:
    from reproduce.caffe.upgrade import read_net

    return read_net(path)


def _read_weights(path: str | os.PathLike):
    from reproduce.weights.convert import load_weights

    return load_weights(path)


def _weights_list(param: Message, base: Path) -> list[Path]:
    """The solver's ``weights`` fields: comma-separated lists, relative to the solver directory."""
    paths = []
    for entry in param.weights:
        for name in entry.split(","):
            if name.strip():
                path = Path(name.strip())
                paths.append(path if path.is_absolute() else base / path)
    return paths


def _check_writable(prefix: Path) -> None:
    """Caffe's ``CheckSnapshotWritePermissions``, creating the directory if it is missing."""
    directory = prefix.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=f".{prefix.name}.", suffix=".probe"):
            pass
    except OSError as err:
        raise SolverConfigError(f"cannot write to snapshot prefix {str(prefix)!r}: {err}") from None


def _loggable(value) -> Any:
    array = np.asarray(value, dtype=np.float32)
    return float(array.reshape(-1)[0]) if array.size == 1 else array.reshape(-1).tolist()


def _progress_bar(total: int):
    from tqdm import tqdm

    return tqdm(total=total, desc="train", unit="it", dynamic_ncols=True)


def merged_net_state(net_param: Message, phase_and_rule: tuple[str, Message | None]):
    """``(phase, level, stages)`` as Caffe's solver merges them: the rule's (``train_state`` /
    ``test_state``) where it sets them, else the net's own ``state``, else the default phase."""
    default_phase, rule = phase_and_rule
    own = net_param.state
    phase = rule.phase if rule is not None and rule.has("phase") else (
        own.phase if own.has("phase") else default_phase)
    level = rule.level if rule is not None and rule.has("level") else own.level
    stages = list(rule.stage) if rule is not None else []
    return phase, level, stages

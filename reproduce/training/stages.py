"""The staged FCN pipeline, as the reference ``voc-fcn*/solve.py`` scripts run it.

One stage is one of those scripts: a net (``reproduce.models``), its reference solver
(base_lr 1e-10/1e-12/1e-14, momentum 0.99, unnormalized loss, batch 1 — FCN-8s at-once
300k iterations with scaled skips, FCN-AlexNet a normalized loss with ``iter_size`` 20) and
init weights, then ``solver.step(test_interval)`` + ``score.seg_tests`` on ``seg11valid``
until ``max_iter``. What each script does, and what ``run_stage`` does in its place:

1. ``caffe.SGDSolver('solver.prototxt')`` — the model's train net with the Python data layer
   ``SBDDSegDataLayer`` (SBD ``train``, seed 1337) pointed at ``--sbd-dir``, the val net's
   ``VOCSegDataLayer`` (``seg11valid``) at ``--voc-dir``; ``train.prototxt``,
   ``val.prototxt`` and ``solver.prototxt`` are written to ``runs/<stage>/`` and the solver is
   built from those very files. The solver gets ``random_seed`` (default 1337) so dropout is
   reproducible; the reference leaves it unset;
2. ``solver.net.copy_from(weights)`` — FCN-32s, FCN-8s at-once and FCN-AlexNet start from the
   ILSVRC classifier, transplanted as the reference surgery does (``surgery.transplant``:
   matching layers copied, fc6/fc7 coerced into convolutions, fc8 dropped; the reference ran
   this offline to make ``vgg16-fcn.caffemodel``); FCN-16s copies the FCN-32s result and
   FCN-8s the FCN-16s result by layer name (Caffe's ``CopyTrainedLayersFrom``: layers the
   net lacks are ignored, new layers keep their fillers, a shape mismatch is an error);
3. ``surgery.interp(solver.net, [k for k in params if 'up' in k])`` — bilinear kernels;
4. every ``test_interval`` iterations a snapshot (Caffe's own ``snapshot: 4000``) and
   ``seg_tests`` (loss, overall accuracy, mean accuracy, mean IU, fwavacc) through
   ``reproduce.evaluation.evaluate``.

The setup (the options, checks, prototxts, init weights and run config) is
``reproduce.training.stage_setup``; this module is the training loop around it.

Beyond the scripts: logs (``reproduce.training.stagelog``), a progress bar, ``final.caffemodel`` +
``final.pth`` and ``done.json`` written atomically at the end, resumption from the last
complete snapshot (the identical trajectory: weights, momentum, sampler and generator
states are all in the snapshot), and multi-process training (``reproduce.training.distributed``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from reproduce.caffe.files import atomic_output
from reproduce.training import ablations, snapshots
from reproduce.training.lock import hold_run_dir
from reproduce.training.stagelog import StageLog
# the setup (options, checks, prototxts, init, config): importable from here as before
from reproduce.training.stage_setup import (  # noqa: F401
    DEFAULT_INTERVAL,
    DEFAULT_SEED,
    SBD_URL,
    VOC_URL,
    STAGES,
    StageError,
    StageOptions,
    check_config,
    check_inputs,
    copy_decisions,
    data_dirs,
    initialize,
    point_data_layer,
    read_json,
    resolve_device,
    split_files,
    stage_config,
    stage_solver,
    write_json,
    write_prototxts,
)


def boundaries(start: int, max_iter: int, test_interval: int, snapshot: int) -> list[int]:
    """The iterations after which a snapshot or a test happens (always ending at ``max_iter``)."""
    points = {max_iter}
    for every in (test_interval, snapshot):
        if every > 0:
            points.update(range(every, max_iter, every))
    return sorted(p for p in points if p > start)


def resume_point(prefix: Path, max_iter: int) -> Path | None:
    """The latest complete snapshot at or before ``max_iter``."""
    from reproduce.solver.snapshot import STATE_SUFFIX, snapshot_filename

    best = None
    directory = prefix.parent
    if not directory.is_dir():
        return None
    for path in directory.glob(f"{prefix.name}_iter_*{STATE_SUFFIX}"):
        number = path.name[len(prefix.name) + len("_iter_"):-len(STATE_SUFFIX)]
        if not number.isdigit() or int(number) > max_iter:
            continue
        if not snapshot_filename(prefix, int(number), ".caffemodel").is_file():
            continue
        if best is None or int(number) > best[0]:
            best = (int(number), path)
    return best[1] if best else None


# ----------------------------------------------------------------------------- running


@dataclass
class StageResult:
    model: str
    run_dir: Path
    iterations: int
    final: Path
    already_done: bool = False
    resumed_from: int | None = None
    last_test: dict | None = None


def run_stage(opts: StageOptions) -> StageResult:
    """Run (or resume, or confirm) one stage; see the module docstring."""
    from reproduce.training import distributed

    if opts.model not in STAGES:
        raise StageError(f"unknown stage {opts.model!r} (stages: {', '.join(STAGES)})")
    if opts.dataset is not None:   # a user's dataset: K, iterations and cadence derived from it
        from reproduce.training import own_data

        try:
            own_data.resolve(opts, opts.log if distributed.world_from_env().is_root else (lambda line: None))
        except (own_data.OwnDataError, ValueError) as err:
            raise StageError(str(err).splitlines()[0] if "expected layout" not in str(err) else str(err)) from None
    for name in ("test_interval", "snapshot"):
        if getattr(opts, name) < 1:
            raise StageError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(opts, name)}")
    try:
        ablations.check(opts)
    except ablations.AblationError as err:
        raise StageError(str(err)) from None
    if opts.class_weights and len(opts.description.heads) > 1:
        raise StageError(f"--class-weights: {opts.model} has {len(opts.description.heads)} heads; "
                         f"class weights apply to a net of one head")
    world = distributed.world_from_env()
    say = opts.log if world.is_root else (lambda line: None)
    run_dir = opts.run_dir
    max_iter = int(opts.max_iter if opts.max_iter is not None else stage_solver(opts).max_iter)
    if max_iter < 1:
        raise StageError(f"--max-iter must be at least 1, got {max_iter}")

    done = read_json(run_dir / "done.json")
    final = run_dir / "final.caffemodel"
    if done and int(done.get("iterations", -1)) >= max_iter and final.is_file():
        say(f"stage {opts.model} already finished: {done['iterations']} iterations, "
            f"{final} (remove {run_dir} to train it again)")
        return StageResult(opts.model, run_dir, int(done["iterations"]), final, already_done=True,
                           last_test=done.get("last_test"))
    check_inputs(opts)
    # one process per run directory: a second `stage` on the same runs/<stage> is refused
    # (rank 0 holds the lock for the whole launch; see training/lock.py)
    with hold_run_dir(run_dir, what=f"stage {opts.model}", rank=world.rank):
        return _train_stage(opts, world, say, run_dir, max_iter, final)


def _train_stage(opts: StageOptions, world, say, run_dir: Path, max_iter: int, final: Path) -> StageResult:
    """``run_stage`` once the options are checked and the run directory is held."""
    from reproduce.training import distributed

    done = read_json(run_dir / "done.json")   # read again now that no other process can change it

    device = resolve_device(opts.device, world.local_rank)
    distributed.init_process_group(world, device)
    config = stage_config(opts, world.size)
    if world.is_root:
        check_config(run_dir, config)
        write_prototxts(opts)
        write_json(run_dir / "config.json", config)
        if done is not None:   # finished with fewer iterations: continue, it is not done any more
            (run_dir / "done.json").unlink()
    _barrier(world)
    paths = {name: run_dir / name for name in (*split_files(opts.model), "solver.prototxt")}

    solver = _make_solver(paths, opts, world, device)
    for layer, error in solver.feeder.source_errors.items():
        raise StageError(f"training data layer {layer!r}: {' '.join(str(error).split())}")
    solver.test_nets  # noqa: B018 — build the val net now, so any generator use happens at a fixed point
    try:
        val = _val_source(solver)   # fails now, not after the first test_interval, if an image is missing
    except ValueError as error:     # DatasetError, ParamStrError
        raise StageError(f"validation data: {' '.join(str(error).split())}") from None
    # Caffe snapshots inside Step every `snapshot` iterations; the stage takes those same
    # snapshots itself at the step boundaries, after gathering every rank's state.
    solver.param.snapshot = 0
    _configure_loss(solver, opts, world, say)
    log = StageLog(run_dir, enabled=world.is_root)
    resume = _from_root(world, snapshots.resume_from(run_dir / "snapshot" / "train", max_iter, say, StageError))
    resumed_from = None
    if resume is not None:
        # snapshots fall between step() calls here, so the next step starts a fresh loss window
        solver.restore(resume, continue_loss_window=False)
        resumed_from = solver.iter
        log.truncate(solver.iter)
        say(f"stage {opts.model}: resuming from {resume} (iteration {solver.iter})")
    else:
        log.truncate(0)
        lines = initialize(solver, opts, say)
        if world.is_root:
            with atomic_output(run_dir / "init.log") as tmp:
                Path(tmp).write_text("".join(line + "\n" for line in lines))
    options = ablations.recorded(opts)
    log.run(iter=int(solver.iter), options=options, iter_size=int(solver.param.iter_size),
            base_lr=float(solver.param.base_lr), momentum=float(solver.param.momentum))
    say(f"stage {opts.model}: {ablations.summary(options)}")
    if world.distributed:
        distributed.broadcast_parameters(solver.net)

    tested = _from_root(world, {int(r["iter"]) for r in log.records() if r.get("kind") == "test"})
    last_test = _from_root(world, next((r for r in reversed(log.records()) if r.get("kind") == "test"), None))
    trainer = _Trainer(solver, opts, world, log, max_iter, val)
    started = time.perf_counter()
    try:
        if solver.iter > 0 and _is_test_point(solver.iter, opts, max_iter) and solver.iter not in tested:
            last_test = trainer.seg_tests()
        for point in boundaries(solver.iter, max_iter, opts.test_interval, opts.snapshot):
            trainer.train_until(point)
            if point % opts.snapshot == 0 or point == max_iter:
                trainer.snapshot()
            if _is_test_point(point, opts, max_iter):
                last_test = trainer.seg_tests()
    finally:
        trainer.close()
    _check_finished(solver, max_iter)
    if world.is_root:
        _write_final(solver, opts, run_dir, paths, max_iter, last_test,
                     time.perf_counter() - started, resumed_from, world.size)
        say(f"stage {opts.model} done: {max_iter} iterations → {final}")
    distributed.destroy_process_group(world)   # every rank done: leave the group before exit
    return StageResult(opts.model, run_dir, max_iter, final, resumed_from=resumed_from, last_test=last_test)


def _configure_loss(solver, opts: StageOptions, world, say) -> None:
    """Loss sampling and class weights on the training net's SoftmaxWithLoss layers
    (``ablations.configure_loss``); the test net's loss stays Caffe's. Median-frequency weights
    are computed by rank 0 alone (kept in the run dir) and handed to every rank."""
    if opts.loss_sampling == 1.0 and not opts.class_weights:
        return
    weights = None
    if opts.class_weights:
        if world.is_root:
            source = next(iter(solver.feeder.sources.values()), None)
            source = getattr(source, "source", source)   # the prefetcher's own source
            try:
                weights = ablations.resolve_class_weights(
                    opts.class_weights, opts.run_dir, opts.num_classes or opts.description.num_classes,
                    source, opts.description.heads[0].label, opts.progress, say)
            except ablations.AblationError as err:
                raise StageError(str(err)) from None
        weights = _from_root(world, weights)
    try:
        ablations.configure_loss(solver.net, opts.loss_sampling, weights)
    except (ablations.AblationError, ValueError) as err:
        raise StageError(str(err)) from None


def _is_test_point(iteration: int, opts: StageOptions, max_iter: int) -> bool:
    return iteration % opts.test_interval == 0 or iteration == max_iter


def _check_finished(solver, max_iter: int) -> None:
    if solver.iter != max_iter:
        raise StageError(f"training stopped at iteration {solver.iter} of {max_iter}")


def _from_root(world, value):
    """Rank 0's ``value`` on every rank (rank 0 alone reads the run directory's state)."""
    if not world.distributed:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _barrier(world) -> None:
    if world.distributed:
        import torch.distributed as dist

        dist.barrier()


def _make_solver(paths: dict, opts: StageOptions, world, device):
    """Rank 0: the solver of the written ``solver.prototxt``; rank r: the same with seeds + r."""
    from reproduce.caffe import read_net, read_solver

    if not world.distributed:
        from reproduce.solver import SGDSolver

        return SGDSolver(paths["solver.prototxt"], device=device)
    from reproduce.training.distributed import DistributedSGDSolver

    if world.is_root:
        return DistributedSGDSolver(paths["solver.prototxt"], device=device)
    solver = read_solver(paths["solver.prototxt"])
    solver.clear("train_net")
    solver.clear("test_net")
    train_file, test_file = split_files(opts.model)
    solver.train_net_param = point_data_layer(read_net(paths[train_file]), data_dirs(opts), world.rank)
    solver.test_net_param = [read_net(paths[test_file])]
    solver.random_seed = int(opts.seed) + world.rank
    solver.snapshot = 0
    solver.clear("snapshot_prefix")
    return DistributedSGDSolver(solver, device=device)


class _Trainer:
    """Steps the solver between boundaries with a progress bar, logging every ``display``."""

    def __init__(self, solver, opts: StageOptions, world, log: StageLog, max_iter: int, val):
        self.solver, self.opts, self.world, self.log, self.max_iter = solver, opts, world, log, max_iter
        self.val = val
        self.display = int(solver.param.display) or 20
        self.window_start = (time.perf_counter(), solver.iter)
        self.elapsed_base = self._elapsed_so_far()
        self.started = time.perf_counter()
        self.bar = None
        if opts.progress and world.is_root:
            from tqdm import tqdm

            self.bar = tqdm(total=max_iter, initial=solver.iter, desc=opts.model, unit="it",
                            dynamic_ncols=True)
        solver.add_callback(self._on_record)

    def _elapsed_so_far(self) -> float:
        records = [r for r in self.log.records() if r.get("kind") == "train"]
        return float(records[-1].get("elapsed_s") or 0.0) if records else 0.0

    def _on_record(self, record: dict) -> None:
        if record.get("event") != "iteration":
            return
        iteration = int(record["iter"])
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{record['smoothed_loss']:.4g}", refresh=False)
            self.bar.update(1)
        if iteration % self.display == 0 or iteration + 1 == self.max_iter:
            now = time.perf_counter()
            t0, i0 = self.window_start
            rate = (iteration + 1 - i0) / max(now - t0, 1e-9)
            self.window_start = (now, iteration + 1)
            self.log.train(iter=iteration, loss=record["loss"], smoothed_loss=record["smoothed_loss"],
                           lr=record["lr"], it_per_s=round(rate, 4),
                           elapsed_s=round(self.elapsed_base + now - self.started, 3))

    def train_until(self, point: int) -> None:
        from reproduce.solver import NonFiniteLossError

        self.window_start = (time.perf_counter(), self.solver.iter)   # it/s without tests and snapshots
        try:
            self.solver.step(point - self.solver.iter)
        except NonFiniteLossError as err:
            snap = resume_point(self.opts.run_dir / "snapshot" / "train", self.max_iter)
            kept = f"the last good snapshot {snap} is kept" if snap else "no snapshot was written yet"
            raise StageError(f"stage {self.opts.model}: the training loss became {err.loss} at "
                             f"iteration {err.iteration}; stopped before that update, {kept} "
                             f"(try a lower --base-lr)") from None

    def snapshot(self) -> None:
        if self.world.distributed:
            self.solver.gather_rank_states()
        if self.world.is_root:
            need = 2 * sum(p.numel() * p.element_size() for p in self.solver.learnable_parameters) + (1 << 20)
            snapshots.take_snapshot(self.solver.snapshot, self.opts.run_dir / "snapshot", need, StageError)
        _barrier(self.world)

    def seg_tests(self) -> dict:
        """score.seg_tests(solver, False, val, layer=…, gt=…) for each head of the net (SIFT
        Flow's solve.py: ``score_sem``/``sem``, then ``score_geo``/``geo``); the test net shares
        the weights. Returns the first head's row."""
        from reproduce.evaluation.evaluate import seg_tests
        from reproduce.evaluation.score import present_classes

        say = (self.bar.write if self.bar is not None else self.opts.log) if self.world.is_root else None
        heads = self.opts.description.heads
        rows = []
        for head in heads:
            result = seg_tests(self.solver.test_nets[0], int(self.solver.iter), self.val,
                               layer=head.score, gt=head.label,
                               log=say or (lambda line: None), progress=self.opts.progress,
                               description=f"seg_tests {self.opts.model}"
                                           + (f" {head.score}" if len(heads) > 1 else ""))
            row = {"iter": int(self.solver.iter), "loss": _float(result.loss),
                   "overall_acc": _float(result.overall_acc), "mean_acc": _float(result.mean_acc),
                   "mean_iu": _float(result.mean_iu), "fwavacc": _float(result.fwavacc)}
            if head.metric == "mean_iu_present":   # SIFT Flow semantic: as the papers score it
                row["mean_iu_present"] = _float(result.mean_iu_present)
                if say is not None:
                    say(f">>> {datetime.now()} Iteration {row['iter']} mean IU over the "
                        f"{int(present_classes(result.hist).sum())} classes present {row['mean_iu_present']}")
            if len(heads) > 1:
                row["head"] = head.score
            row["metric"] = head.metric
            rows.append(row)
            if self.world.is_root:
                self.log.test(**row)
        if self.world.is_root:
            self.log.plot(title=f"{self.opts.model} ({self.opts.widths} widths)")
        return {"kind": "test", **rows[0]}

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self.log.close()
        self.solver.callbacks = [c for c in self.solver.callbacks if c != self._on_record]


def _val_source(solver):
    """The validation set of the solver's test net (its Python data layer, read in file order)."""
    from reproduce.data import make_data_source

    net = solver.test_nets[0]
    for layer in net.layer_dict.values():
        if layer.layer_type == "Python" and not layer.layer_param.bottom:
            python_param = layer.layer_param.python_param
            return make_data_source(python_param.module, python_param.layer, python_param.param_str,
                                    name=layer.layer_param.name)
    raise StageError(f"the test net {net.name!r} has no Python data layer to score on")


def _float(value) -> float:
    return float(value) if value is not None else float("nan")


def _write_final(solver, opts: StageOptions, run_dir: Path, paths: dict, max_iter: int,
                 last_test: dict | None, seconds: float, resumed_from, world_size: int) -> None:
    from reproduce.caffe import read_net
    from reproduce.weights.convert import save_weights

    weights = solver.weights()
    save_weights(run_dir / "final.caffemodel", weights, read_net(paths[split_files(opts.model)[0]]))
    save_weights(run_dir / "final.pth", weights)
    clean_test = ({k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                   for k, v in last_test.items()} if last_test else None)
    write_json(run_dir / "done.json", {
        "model": opts.model, "iterations": max_iter, "final_caffemodel": "final.caffemodel",
        "final_pth": "final.pth", "last_test": clean_test, "widths": opts.widths,
        "base_lr": float(solver.param.base_lr), "world_size": world_size,
        "resumed_from": resumed_from, "seconds_this_run": round(seconds, 3),
        "init": {k or "init": str(v.resolve()) for k, v in opts.init_files().items()}
        if opts.description.init == "streams" else str(Path(opts.init).resolve()),
    })

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

Beyond the scripts: logs (``reproduce.training.stagelog``), a progress bar, ``final.caffemodel`` +
``final.pth`` and ``done.json`` written atomically at the end, resumption from the last
complete snapshot (the identical trajectory: weights, momentum, sampler and generator
states are all in the snapshot), and multi-process training (``reproduce.training.distributed``).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from reproduce.caffe.files import atomic_output
from reproduce.caffe.schema import Message
from reproduce.training.stagelog import StageLog

DEFAULT_INTERVAL = 4000
DEFAULT_SEED = 1337
SBD_URL = "http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/semantic_contours/benchmark.tgz"
VOC_URL = "http://host.robots.ox.ac.uk/pascal/VOC/voc2011/"


class StageError(Exception):
    """A stage that cannot run as asked; the message is one line naming the file and the fix."""


@dataclass(frozen=True)
class StageSpec:
    """How a stage starts: from the ILSVRC classifier (transplant) or a previous stage (copy)."""

    model: str
    init: str                     # "transplant" or "copy_from"
    make_target: str              # the Makefile target that runs this stage
    previous: str | None = None   # the stage whose final weights are the init (copy_from)
    base_net: str | None = None   # weights_manifest entry of the classifier (transplant)


STAGES = {
    "fcn32s": StageSpec("fcn32s", "transplant", "stage-32s", base_net="vgg16"),
    "fcn16s": StageSpec("fcn16s", "copy_from", "stage-16s", previous="fcn32s"),
    "fcn8s": StageSpec("fcn8s", "copy_from", "stage-8s", previous="fcn16s"),
    "fcn8s-atonce": StageSpec("fcn8s-atonce", "transplant", "stage-8s-atonce", base_net="vgg16"),
    "fcn-alexnet": StageSpec("fcn-alexnet", "transplant", "stage-alexnet", base_net="alexnet"),
}


@dataclass
class StageOptions:
    """Everything ``run_stage`` needs; the CLI flags of ``python -m reproduce stage``."""

    model: str
    init: Path
    sbd_dir: Path
    voc_dir: Path
    runs: Path = Path("runs")
    widths: str = "full"
    num_classes: int = 21
    device: str = "auto"
    max_iter: int | None = None
    base_lr: float | None = None
    test_interval: int = DEFAULT_INTERVAL
    snapshot: int = DEFAULT_INTERVAL
    display: int | None = None
    seed: int = DEFAULT_SEED
    progress: bool = True
    log: Callable[[str], None] = field(default=print, repr=False)

    @property
    def run_dir(self) -> Path:
        return Path(self.runs) / self.model


# ----------------------------------------------------------------------------- checks


def check_inputs(opts: StageOptions) -> None:
    """Fail early, in one line, on a missing dataset or init weights file."""
    spec = STAGES[opts.model]
    sbd_split = Path(opts.sbd_dir) / "train.txt"
    if not sbd_split.is_file():
        raise StageError(f"SBD training data not found: {sbd_split} does not exist — download SBD "
                         f"({SBD_URL}) and pass its dataset/ folder as --sbd-dir (SBD_DIR=…), "
                         f"or run `make demo` for generated data")
    voc_split = Path(opts.voc_dir) / "ImageSets" / "Segmentation" / "seg11valid.txt"
    if not voc_split.is_file():
        raise StageError(f"PASCAL VOC validation data not found: {voc_split} does not exist — "
                         f"download VOC2011 ({VOC_URL}), put the reference seg11valid.txt into "
                         f"its ImageSets/Segmentation/ and pass --voc-dir (VOC_DIR=…)")
    init = Path(opts.init)
    if init.is_file():
        return
    if spec.previous:
        raise StageError(f"init weights {init} not found: run `make {STAGES[spec.previous].make_target}` "
                         f"first (it writes <runs>/{spec.previous}/final.caffemodel)")
    from reproduce.weights.manifest import entry

    base = entry(spec.base_net)
    raise StageError(f"init weights {init} not found: download {base.file} from {base.url} "
                     f"(`make weights`, see weights/README.md)")


def resolve_device(device: str, local_rank: int = 0):
    """``auto`` → CUDA when available (rank's own GPU under torchrun), else CPU."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise StageError(f"--device {device}: CUDA is not available on this machine (use --device cpu)")
        if device == "cuda":
            device = f"cuda:{local_rank}"
    elif device != "cpu":
        raise StageError(f"--device must be auto, cpu, cuda or cuda:N, not {device!r}")
    return torch.device(device)


# ----------------------------------------------------------------------------- prototxts


def point_data_layer(net: Message, directory: Path, seed_offset: int = 0) -> Message:
    """The net with its Python data layer reading ``directory`` (absolute) and seed + offset."""
    from reproduce.data import DATA_LAYERS, parse_param_str

    net = net.copy()
    found = False
    for layer in net.layer:
        if layer.type != "Python" or layer.bottom:
            continue
        key = (layer.python_param.module, layer.python_param.layer)
        if key not in DATA_LAYERS:
            continue
        params = parse_param_str(layer.python_param.param_str, layer.name)
        params[DATA_LAYERS[key][1]] = str(Path(directory).resolve())
        if seed_offset and params.get("seed") is not None:
            params["seed"] = int(params["seed"]) + seed_offset
        layer.python_param.param_str = repr(params)
        found = True
    if not found:
        raise StageError(f"net {net.name!r} has no reference Python data layer to point at {directory}")
    return net


def stage_solver(opts: StageOptions) -> Message:
    """The reference solver of the model with the flags' overrides, files relative to the run dir."""
    from reproduce.models import solver_param

    solver = solver_param(opts.model)
    if opts.max_iter is not None:
        solver.max_iter = int(opts.max_iter)
    if opts.base_lr is not None:
        solver.base_lr = float(opts.base_lr)
    if opts.display is not None:
        solver.display = int(opts.display)
    solver.train_net = "train.prototxt"
    solver.test_net = ["val.prototxt"]
    solver.snapshot = int(opts.snapshot)
    solver.snapshot_prefix = "snapshot/train"
    solver.random_seed = int(opts.seed)
    # the reference's own value: the solver builds the test net but never runs it itself;
    # seg_tests run every opts.test_interval iterations from here, as solve.py's loop does
    solver.test_interval = 999999999
    return solver


def write_prototxts(opts: StageOptions) -> dict[str, Path]:
    """``train.prototxt``, ``val.prototxt``, ``solver.prototxt`` of the stage, in its run dir."""
    from reproduce.caffe.text import emit
    from reproduce.models import net_param

    run_dir = opts.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    texts = {
        "train.prototxt": emit(point_data_layer(
            net_param(opts.model, "train", opts.num_classes, opts.widths), opts.sbd_dir)),
        "val.prototxt": emit(point_data_layer(
            net_param(opts.model, "val", opts.num_classes, opts.widths), opts.voc_dir)),
        "solver.prototxt": emit(stage_solver(opts)),
    }
    paths = {}
    for name, text in texts.items():
        path = run_dir / name
        if not path.exists() or path.read_text() != text:
            with atomic_output(path) as tmp:
                Path(tmp).write_text(text)
        paths[name] = path
    return paths


# ----------------------------------------------------------------------------- init


def copy_decisions(target_layers, source) -> list[str]:
    """What Caffe's ``CopyTrainedLayersFrom`` does with ``source``, in its words."""
    lines = []
    for name in source:
        lines.append(f"copying {name}" if name in target_layers else f"ignoring source layer {name}")
    for name in target_layers:
        if name not in source:
            lines.append(f"keeping filler values of {name} (not in the init weights)")
    return lines


def initialize(solver, opts: StageOptions, log: Callable[[str], None]) -> list[str]:
    """Init the solver's net as the stage's ``solve.py`` does; returns the surgery log."""
    from reproduce.weights import surgery
    from reproduce.weights.convert import load_weights

    from reproduce.net import NetError

    spec = STAGES[opts.model]
    lines: list[str] = []
    source = load_weights(opts.init)
    current = solver.weights()
    try:
        if spec.init == "transplant":
            result = surgery.transplant(current, source, log=lines.append)
            solver.net.copy_from(result)
        else:
            lines.extend(copy_decisions(current, source))
            solver.net.copy_from(source)
    except (NetError, surgery.SurgeryError) as err:
        hint = (f" (is it the {spec.previous} stage's result at the same --widths?)" if spec.previous
                else " (is it the ILSVRC classifier of this net, at the same --widths?)")
        raise StageError(f"cannot initialize {opts.model} from {opts.init}: {err}{hint}") from None
    weights = solver.weights()
    up = surgery.interp_layer_names(weights)
    surgery.interp(weights, up)
    solver.net.copy_from({name: weights[name] for name in up})
    lines.extend(f"interp {name} (bilinear)" for name in up)
    for line in lines:
        log(line)
    return lines


# ----------------------------------------------------------------------------- records


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_json(path: Path, data: dict) -> None:
    with atomic_output(path) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def stage_config(opts: StageOptions, world_size: int) -> dict:
    """What must not change between a stage's run and its resumption."""
    return {"model": opts.model, "init": str(Path(opts.init).resolve()),
            "sbd_dir": str(Path(opts.sbd_dir).resolve()), "voc_dir": str(Path(opts.voc_dir).resolve()),
            "widths": opts.widths, "num_classes": opts.num_classes, "base_lr": opts.base_lr,
            "test_interval": opts.test_interval, "snapshot": opts.snapshot, "seed": opts.seed,
            "world_size": world_size}


def check_config(run_dir: Path, config: dict) -> None:
    saved = read_json(run_dir / "config.json")
    if saved is None:
        return
    changed = sorted(k for k in config if saved.get(k) != config[k])
    if changed:
        detail = ", ".join(f"{k}: {saved.get(k)!r} → {config[k]!r}" for k in changed)
        raise StageError(f"{run_dir} holds a run with other settings ({detail}); resume it with "
                         f"the same settings, or remove {run_dir} (or pick another --runs) to start anew")


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
    for name in ("test_interval", "snapshot"):
        if getattr(opts, name) < 1:
            raise StageError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(opts, name)}")
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
    paths = {name: run_dir / name for name in ("train.prototxt", "val.prototxt", "solver.prototxt")}

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
    log = StageLog(run_dir, enabled=world.is_root)
    resume = _from_root(world, resume_point(run_dir / "snapshot" / "train", max_iter))
    resumed_from = None
    if resume is not None:
        solver.restore(resume)
        resumed_from = solver.iter
        log.truncate(solver.iter)
        say(f"stage {opts.model}: resuming from {resume} (iteration {solver.iter})")
    else:
        log.truncate(0)
        lines = initialize(solver, opts, say)
        if world.is_root:
            with atomic_output(run_dir / "init.log") as tmp:
                Path(tmp).write_text("".join(line + "\n" for line in lines))
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
    _barrier(world)
    return StageResult(opts.model, run_dir, max_iter, final, resumed_from=resumed_from, last_test=last_test)


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
    solver.train_net_param = point_data_layer(read_net(paths["train.prototxt"]), opts.sbd_dir, world.rank)
    solver.test_net_param = [read_net(paths["val.prototxt"])]
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
            self.solver.snapshot()
        _barrier(self.world)

    def seg_tests(self) -> dict:
        """score.seg_tests(solver, False, val, layer='score'): the test net shares the weights."""
        from reproduce.evaluation.evaluate import seg_tests

        say = (self.bar.write if self.bar is not None else self.opts.log) if self.world.is_root else None
        result = seg_tests(self.solver.test_nets[0], int(self.solver.iter), self.val,
                           log=say or (lambda line: None), progress=self.opts.progress,
                           description=f"seg_tests {self.opts.model}")
        row = {"iter": int(self.solver.iter), "loss": _float(result.loss),
               "overall_acc": _float(result.overall_acc), "mean_acc": _float(result.mean_acc),
               "mean_iu": _float(result.mean_iu), "fwavacc": _float(result.fwavacc)}
        if self.world.is_root:
            self.log.test(**row)
            self.log.plot(title=f"{self.opts.model} ({self.opts.widths} widths)")
        return {"kind": "test", **row}

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
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
    save_weights(run_dir / "final.caffemodel", weights, read_net(paths["train.prototxt"]))
    save_weights(run_dir / "final.pth", weights)
    clean_test = ({k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                   for k, v in last_test.items()} if last_test else None)
    write_json(run_dir / "done.json", {
        "model": opts.model, "iterations": max_iter, "final_caffemodel": "final.caffemodel",
        "final_pth": "final.pth", "last_test": clean_test, "widths": opts.widths,
        "base_lr": float(solver.param.base_lr), "world_size": world_size,
        "resumed_from": resumed_from, "seconds_this_run": round(seconds, 3),
        "init": str(Path(opts.init).resolve()),
    })

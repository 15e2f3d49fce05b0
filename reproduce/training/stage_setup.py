"""A stage's setup, apart from its training loop (``reproduce.training.stages``).

What a release ``solve.py`` does before its ``solver.step`` loop: the options of
``python -m reproduce stage`` (``StageOptions``), the checks that the data and the init
weights are there, the stage's ``train``/``val``/``solver`` prototxts written to the run
directory with the data layers pointed at the data (``write_prototxts``), the init weights
(``initialize``: the reference surgery, ``CopyTrainedLayersFrom``, bilinear ``interp``) and
the settings a resumed run must share with the run it resumes (``stage_config``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from reproduce.caffe.files import atomic_output
from reproduce.caffe.schema import Message
from reproduce.data.stage_data import SBD_URL, VOC_URL, DataUnavailable  # noqa: F401  (URLs re-exported)
from reproduce.training import ablations

DEFAULT_INTERVAL = 4000
DEFAULT_SEED = 1337


class StageError(Exception):
    """A stage that cannot run as asked; the message is one line naming the file and the fix."""


def _stages():
    """Every net of the release is a stage: its description says how its solve.py starts."""
    from reproduce.models import MODELS

    return dict(MODELS)


STAGES = _stages()


@dataclass
class StageOptions:
    """Everything ``run_stage`` needs; the CLI flags of ``python -m reproduce stage``.

    ``data_dir`` is the release's ``data/`` folder (``sbdd/dataset``, ``pascal/VOC2011``,
    ``nyud``, ``sift-flow``, ``pascal-context``, as ``python -m reproduce data fetch`` lays it
    out): every data layer's directory is the release's relative one re-rooted there.
    ``sbd_dir``/``voc_dir`` override the VOC nets' two folders. ``init`` is the init weights;
    for late fusion, ``stream_inits`` gives each stream's (default: the single-modality stages'
    ``final.caffemodel`` under ``runs``). ``num_classes``/``test_interval`` default to the
    release's. The paper's regime and ablations (``reproduce.training.ablations``, CVPR 2015
    Sec. 4.3): ``recipe`` (``release`` or ``paper``); ``fixed``: fine-tune only the score
    layers (Table 2 "FCN-32s-fixed", 45.4 mean IU against 59.4 when every layer learns);
    ``train_set`` (VOC nets: ``sbd``, or ``voc2011`` — Table 1's 1,112 VOC2011 ``train`` images);
    ``loss_sampling`` (the probability each loss term is kept, 1 = all); ``class_weights``
    (``median-frequency`` or a file); ``mirror``, ``jitter`` (pixels); ``learn_upsampling``.
    """

    model: str
    init: Path | None = None
    sbd_dir: Path | None = None
    voc_dir: Path | None = None
    runs: Path = Path("runs")
    widths: str = "full"
    num_classes: int | None = None
    device: str = "auto"
    max_iter: int | None = None
    base_lr: float | None = None
    test_interval: int | None = None
    snapshot: int = DEFAULT_INTERVAL
    display: int | None = None
    seed: int = DEFAULT_SEED
    progress: bool = True
    log: Callable[[str], None] = field(default=print, repr=False)
    data_dir: Path = Path("data")
    stream_inits: dict | None = None
    fixed: bool = False
    recipe: str = "release"
    loss_sampling: float = 1.0
    class_weights: str | None = None
    mirror: bool = False
    jitter: int = 0
    learn_upsampling: bool = False
    train_set: str = "sbd"
    dataset: Path | None = None     # a user's dataset folder (reproduce.training.own_data)
    ignore_label: int = 255

    def __post_init__(self):
        if self.test_interval is None and self.model in STAGES and self.dataset is None:
            from reproduce.models import dataset_of

            self.test_interval = dataset_of(self.model).test_interval

    @property
    def run_dir(self) -> Path:
        return Path(self.runs) / self.model

    @property
    def description(self):
        return STAGES[self.model]

    @property
    def data(self):
        """What the stage's dataset says about reading it (``reproduce.data.stage_data``): the
        user's folder with ``dataset``, else the release dataset of the net's description."""
        if self.dataset is not None:
            from reproduce.training.own_data import dataset_description

            return dataset_description(self).stage_data()
        from reproduce.data.description import release_description

        return release_description(self.description.dataset).stage_data()

    def init_files(self) -> dict[str, Path]:
        """``{stream: weights}`` for late fusion, else ``{"": init}``."""
        m = self.description
        if m.init != "streams":
            return {"": Path(self.init)} if self.init is not None else {}
        given = dict(self.stream_inits or {})
        unknown = sorted(set(given) - set(m.previous_streams))
        if unknown:
            raise StageError(f"--init-stream {', '.join(unknown)}: {self.model} has the streams "
                             f"{', '.join(m.previous_streams)}")
        return {stream: Path(given.get(stream) or Path(self.runs) / previous / "final.caffemodel")
                for stream, previous in m.previous_streams.items()}


def data_dirs(opts: StageOptions) -> dict[str, Path]:
    """``{data layer parameter: absolute folder}`` of the stage's data layers (``sbdd_dir``,
    ``voc_dir``, ``nyud_dir``, ``siftflow_dir``, ``context_dir``; ``dataset_dir``), as the
    dataset's description says: the release's relative paths (``../data/nyud``) re-rooted in
    ``opts.data_dir``, with the VOC overrides; the user's folder."""
    return opts.data.directories(opts)


def split_files(model: str) -> tuple[str, str]:
    """The stage's net files, named as the release names them (``train.prototxt``,
    ``val.prototxt``; ``trainval.prototxt``, ``test.prototxt``)."""
    from reproduce.models import splits

    train, test, _ = splits(model)
    return f"{train}.prototxt", f"{test}.prototxt"


# ----------------------------------------------------------------------------- checks


def check_inputs(opts: StageOptions) -> None:
    """Fail early, in one line, on a missing dataset or init weights file."""
    m = opts.description
    try:
        opts.data.check(opts)
    except DataUnavailable as err:
        raise StageError(str(err)) from None
    for stream, init in opts.init_files().items():
        if init.is_file():
            continue
        previous = m.previous_streams[stream] if stream else m.previous
        if previous:
            raise StageError(f"init weights {init} not found: run `make {STAGES[previous].make_target}` "
                             f"first (it writes <runs>/{previous}/final.caffemodel)")
        from reproduce.weights.manifest import entry

        base = entry(m.base_net)
        raise StageError(f"init weights {init} not found: download {base.file} from {base.url} "
                         f"(`make weights`, see weights/README.md)")
    if not opts.init_files():
        raise StageError(f"stage {opts.model} needs --init (the weights it starts from)")


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


def point_data_layer(net: Message, directory: Path | Mapping[str, Path], seed_offset: int = 0) -> Message:
    """The net with its Python data layer reading ``directory`` (absolute) and seed + offset
    (``reproduce.data.stage_data.point_data_layer``; a net without one is a ``StageError``)."""
    from reproduce.data.stage_data import point_data_layer as point

    try:
        return point(net, directory, seed_offset)
    except DataUnavailable as err:
        raise StageError(str(err)) from None


def stage_solver(opts: StageOptions) -> Message:
    """The reference solver of the model with the flags' overrides, files relative to the run dir."""
    from reproduce.models import solver_param

    solver = solver_param(opts.model)
    if opts.recipe == "paper":
        solver = ablations.paper_solver(solver, opts.description, opts.train_set)
    if opts.loss_sampling != 1.0:
        solver.iter_size = ablations.sampling_iter_size(solver.iter_size, opts.loss_sampling)
    if opts.max_iter is not None:
        solver.max_iter = int(opts.max_iter)
    if opts.base_lr is not None:
        solver.base_lr = float(opts.base_lr)
    if opts.display is not None:
        solver.display = int(opts.display)
    train_file, test_file = split_files(opts.model)
    solver.train_net = train_file
    solver.test_net = [test_file]
    solver.snapshot = int(opts.snapshot)
    solver.snapshot_prefix = "snapshot/train"
    solver.random_seed = int(opts.seed)
    test_iter = opts.data.test_iter(opts)   # a user's folder: seg_tests score the whole val split
    if test_iter is not None:
        solver.test_iter[:] = [test_iter]
    # the reference's own value: the solver builds the test net but never runs it itself;
    # seg_tests run every opts.test_interval iterations from here, as solve.py's loop does
    solver.test_interval = 999999999
    return solver


def write_prototxts(opts: StageOptions) -> dict[str, Path]:
    """The stage's training and testing nets (the release's file names: ``train.prototxt``,
    ``val.prototxt``; ``trainval.prototxt``, ``test.prototxt``), ``solver.prototxt`` and the
    ``deploy.prototxt`` that ``forward``/``infer``/``export --run`` use, in its run dir; by file name."""
    from reproduce.caffe.text import emit
    from reproduce.models import net_param, splits

    run_dir = opts.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    data = opts.data
    nets = {}
    for file, split in zip(split_files(opts.model), splits(opts.model)):
        net = net_param(opts.model, split, opts.num_classes, opts.widths)
        role = "train" if split == splits(opts.model)[0] else "test"
        if opts.train_set == "voc2011" and role == "train":   # ablations.check: VOC nets only
            net = ablations.voc2011_training(net, f"{opts.description.data_root}/pascal/VOC2011")
        try:
            nets[file] = data.point(net, opts, role)
        except DataUnavailable as err:
            raise StageError(str(err)) from None
    nets = ablations.transform_nets(nets, opts, split_files(opts.model)[0])
    texts = {file: emit(net) for file, net in nets.items()}
    texts["solver.prototxt"] = emit(stage_solver(opts))
    texts["deploy.prototxt"] = emit(net_param(opts.model, "deploy", opts.num_classes, opts.widths))  # --run
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
    """Init the solver's net as the stage's ``solve.py`` does; returns the surgery log.

    ``transplant``: the reference surgery from the ILSVRC classifier (early fusion then fills
    its 4-channel first convolution from conv1_1: the colour channels copied, depth their
    mean, the bias copied — nyud-fcn32s-color-d/solve.py); ``copy_from``: Caffe's
    ``CopyTrainedLayersFrom`` of the previous stage; ``streams``: each single-modality net
    transplanted into its suffixed stream (``surgery.transplant(…, suffix='color')``).
    Then every ``up`` layer gets bilinear kernels (``surgery.interp``).
    """
    from reproduce.weights import surgery
    from reproduce.weights.convert import load_weights

    from reproduce.net import NetError

    m = opts.description
    lines: list[str] = []
    current = solver.weights()
    try:
        fcn_source = _fcn_init_source(opts)
        if fcn_source is not None:   # --dataset from a trained FCN: trunk copied, scores re-made
            source = surgery.without_class_layers(current, fcn_source, log=lines.append)
            lines.extend(copy_decisions(current, source))
            solver.net.copy_from(source)
        elif m.init == "copy_from":
            source = load_weights(opts.init)
            lines.extend(copy_decisions(current, source))
            solver.net.copy_from(source)
        else:
            for stream, path in opts.init_files().items():
                source = load_weights(path)
                before = len(lines)
                current = surgery.transplant(current, source, suffix=stream, log=lines.append)
                if not any(line.startswith(("copying ", "coercing ")) for line in lines[before:]):
                    # another classifier's file (AlexNet's into FCN-GoogLeNet) would train from fillers
                    names = ", ".join(list(source)[:3]) + (" …" if len(source) > 3 else "")
                    raise surgery.SurgeryError(f"none of its layers ({names}) is a layer of the net")
                if m.first_conv:
                    current[m.first_conv] = _first_conv_from(source, current[m.first_conv], m.first_conv)
                    lines.append(f"{m.first_conv} from conv1_1: colour channels copied, depth their mean")
            solver.net.copy_from(current)
    except (NetError, surgery.SurgeryError) as err:
        hint = (f" (is it the {m.previous} stage's result at the same --widths?)" if m.previous
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


def _fcn_init_source(opts: StageOptions):
    """With ``--dataset``, init weights that are a trained FCN (else None: the release's init)."""
    if opts.dataset is None or opts.description.init == "streams" or opts.init is None:
        return None
    from reproduce.training.own_data import is_fcn
    from reproduce.weights.convert import load_weights

    source = load_weights(opts.init)
    return source if is_fcn(source) else None


def _first_conv_from(source, target, name: str):
    """nyud-fcn32s-color-d's ``conv1_1_bgrd``: conv1_1's filters for B, G, R, their mean for D."""
    import numpy as np

    from reproduce.weights import surgery

    if "conv1_1" not in source:
        raise surgery.SurgeryError(f"the init weights have no conv1_1 to fill {name} from")
    weight, bias = (np.asarray(a, dtype=np.float32) for a in source["conv1_1"][:2])
    if weight.shape[0] != target[0].shape[0] or weight.shape[1] + 1 != target[0].shape[1]:
        raise surgery.SurgeryError(f"conv1_1 {weight.shape} cannot fill {name} {tuple(target[0].shape)}")
    filled = np.empty(target[0].shape, dtype=np.float32)
    filled[:, :weight.shape[1]] = weight
    filled[:, weight.shape[1]] = weight.mean(axis=1)
    return [filled, bias.copy()]


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
    inits = {k or "init": str(v.resolve()) for k, v in opts.init_files().items()}
    return {"model": opts.model, **inits,
            **opts.data.config(opts),   # the dataset's folders (and a user's folder and ignore label)
            "widths": opts.widths, "num_classes": opts.num_classes, "base_lr": opts.base_lr,
            "test_interval": opts.test_interval, "snapshot": opts.snapshot, "seed": opts.seed,
            "world_size": world_size,
            **ablations.recorded(opts)}   # each only when on: older runs resume as before


def check_config(run_dir: Path, config: dict) -> None:
    saved = read_json(run_dir / "config.json")
    if saved is None:
        return
    # both ways: a setting recorded only when on (``fixed``…) must also be noticed when dropped
    changed = sorted(k for k in {*config, *saved} if saved.get(k) != config.get(k))
    if changed:
        detail = ", ".join(f"{k}: {saved.get(k)!r} → {config.get(k)!r}" for k in changed)
        raise StageError(f"{run_dir} holds a run with other settings ({detail}); resume it with "
                         f"the same settings, or remove {run_dir} (or pick another --runs) to start anew")

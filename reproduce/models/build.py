"""Every net of the release by name, and its description turned into Caffe messages.

``MODELS`` holds the sixteen descriptions (VOC's six under their short names ``fcn32s``…,
FCN-GoogLeNet, which the release never published, among them;
the others under their release folder names ``nyud-fcn32s-color``…), ``DATASETS`` the
dataset-level facts. ``net_param(name, split, …)`` emits a net as a NetParameter with every
crop offset derived by coordinate mapping (``reproduce.net.coord_map``), as the release's
``net.py`` + ``coord_map.crop`` do; ``solver_param(name)`` its ``solver.prototxt``.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Mapping, Sequence

from reproduce.caffe.schema import Message
from reproduce.net.coord_map import fill_crop_offsets
from reproduce.net.spec import NetSpec, assign, layers as L

from . import nyud, pascalcontext, siftflow, voc
from .backbones import BACKBONES
from .description import IGNORE_LABEL, DatasetNets, FCNModel, Head
from .heads import fcn_head, score
from .widths import Widths, width_map

DATASETS: "OrderedDict[str, DatasetNets]" = OrderedDict(
    (d.DATASET.key, d.DATASET) for d in (voc, nyud, siftflow, pascalcontext))
MODELS: "OrderedDict[str, FCNModel]" = OrderedDict(
    (m.name, m) for d in (voc, nyud, siftflow, pascalcontext) for m in d.MODELS)
_BY_FOLDER = {m.folder: m for m in MODELS.values()}

SPLITS = voc.DATASET.all_splits  # ("train", "val", "deploy"): the VOC nets'
DEPLOY_INPUT_SHAPE = (1, 3, 500, 500)
INPUT_CHANNELS = {"data": 3, "color": 3, "hha": 3, "depth": 1}
LATE_FUSION_COEFF = (0.5, 0.5)


def model(name: str) -> FCNModel:
    """The description named ``name`` (or by its release folder, ``voc-fcn8s``)."""
    found = MODELS.get(name) or _BY_FOLDER.get(name)
    if found is None:
        raise KeyError(f"unknown FCN model {name!r} (known: {', '.join(MODELS)})")
    return found


def dataset_of(name: str) -> DatasetNets:
    return DATASETS[model(name).dataset]


def splits(name: str) -> tuple[str, str, str]:
    """The splits net ``name`` is emitted for: its training and testing split, and ``deploy``."""
    return dataset_of(name).all_splits


def data_directories(name: str, data_dir) -> dict:
    """``{data layer parameter: absolute folder}`` of net ``name``'s data layers (``sbdd_dir``,
    ``voc_dir``, ``nyud_dir``, ``siftflow_dir``, ``context_dir``): the release's relative paths
    (``../data/nyud``) re-rooted in ``data_dir``, the release's ``data/`` folder."""
    import ast
    from pathlib import Path

    m = model(name)
    dataset = DATASETS[m.dataset]
    dirs = {}
    for split in dataset.splits:
        params = ast.literal_eval(dataset.data_layer(m, split).param_str)
        for key, value in params.items():
            if key.endswith("_dir"):
                relative = str(value)[len(m.data_root):].lstrip("/")
                dirs[key] = (Path(data_dir) / relative).resolve()
    return dirs


def heads(m: FCNModel, num_classes: int | Mapping[str, int] | None) -> tuple[Head, ...]:
    """The model's heads with ``num_classes`` applied: an int for a one-headed net, a
    ``{score blob: classes}`` mapping for any; ``None`` keeps the release's counts."""
    if num_classes is None:
        return m.heads
    if isinstance(num_classes, Mapping):
        unknown = sorted(set(num_classes) - set(m.outputs))
        if unknown:
            raise ValueError(f"num_classes names {unknown}, not outputs of {m.name} ({', '.join(m.outputs)})")
        counts = {h.score: num_classes.get(h.score, h.num_classes) for h in m.heads}
    elif len(m.heads) == 1:
        counts = {m.heads[0].score: num_classes}
    else:
        raise ValueError(f"{m.name} has {len(m.heads)} heads ({', '.join(m.outputs)}): give "
                         f"num_classes as a mapping {{output: classes}}, not {num_classes!r}")
    bad = {k: v for k, v in counts.items() if not (isinstance(v, int) and not isinstance(v, bool) and v > 0)}
    if bad:
        raise ValueError(f"num_classes must be positive integers, got {bad}")
    return tuple(Head(counts[h.score], h.suffix, h.label, h.loss, h.metric) for h in m.heads)


def net_spec(name: str, split: str | None = None, num_classes: int | Mapping[str, int] | None = None,
             widths: Widths = "full", input_shape: Sequence[int] = DEPLOY_INPUT_SHAPE) -> NetSpec:
    """The ``NetSpec`` of net ``name`` for ``split`` (crops not yet derived)."""
    m = model(name)
    dataset = DATASETS[m.dataset]
    split = dataset.splits[0] if split is None else split
    if split not in dataset.all_splits:
        raise ValueError(f"{m.name}: split must be one of {', '.join(dataset.all_splits)}, not {split!r}")
    net_heads = heads(m, num_classes)
    width = width_map(widths)
    n = NetSpec()
    if split == "deploy":
        batch, _, height, width_px = (int(d) for d in input_shape)
        shapes = [dict(dim=[batch, INPUT_CHANNELS[top], height, width_px]) for top in m.inputs]
        tops = L.Input(name="input", shape=shapes if len(shapes) > 1 else shapes[0], ntop=len(m.inputs))
    else:
        layer = dataset.data_layer(m, split)
        tops = L.Python(module=layer.module, layer=layer.layer, param_str=layer.param_str,
                        ntop=len(m.inputs) + len(set(m.labels)))
    tops = tops if isinstance(tops, tuple) else (tops,)
    for top_name, top in zip((*m.inputs, *dict.fromkeys(m.labels)), tops):
        n[top_name] = top
    if m.fusion == "late":
        stream_scores = []
        for stream in m.inputs:
            features = BACKBONES[m.backbone](n, n[stream], width, suffix=stream)
            n[f"score_fr{stream}"] = top = score(features, net_heads[0].num_classes)
            stream_scores.append(top)
        n.score_fused = L.Eltwise(*stream_scores, operation="SUM", coeff=list(LATE_FUSION_COEFF))
        outputs = [(net_heads[0], None, n.score_fused)]
        data = n[m.inputs[0]]
    else:
        if m.fusion == "early":
            n.data = L.Concat(*(n[top] for top in m.inputs))
        data = n.data
        kwargs = {"first_conv": m.first_conv} if m.first_conv else {}
        features = BACKBONES[m.backbone](n, data, width, **kwargs)
        outputs = [(head, features, None) for head in net_heads]
    for head, features, scores in outputs:
        fcn_head(n, features, data, head.num_classes, skips=m.skips, skip_scales=m.skip_scales,
                 final_kernel=m.final_kernel, suffix=head.suffix, scores=scores)
        if split != "deploy":
            n[head.loss] = L.SoftmaxWithLoss(n[head.score], n[head.label], loss_param=dict(
                normalize=m.normalize_loss, ignore_label=IGNORE_LABEL))
    return n


def net_param(name: str, split: str | None = None, num_classes: int | Mapping[str, int] | None = None,
              widths: Widths = "full", input_shape: Sequence[int] = DEPLOY_INPUT_SHAPE) -> Message:
    """Net ``name`` for ``split`` (default: its training split) as a NetParameter, every crop
    offset derived from geometry.

    ``num_classes``: the release's counts when ``None``; an int for one-headed nets, or
    ``{output: classes}``; ``widths``: ``"full"``, ``"tiny"`` or a ``{full width: width}``
    table; ``input_shape``: N×C×H×W of the deploy net's ``Input`` (the channels follow each
    input: 3 for ``data``/``color``/``hha``, 1 for ``depth``; ignored for other splits).
    """
    return fill_crop_offsets(net_spec(name, split, num_classes, widths, input_shape))


def solver_param(name: str) -> Message:
    """The reference ``solver.prototxt`` of net ``name`` as a SolverParameter."""
    m = model(name)
    solver = Message("SolverParameter")
    for key, value in {**DATASETS[m.dataset].solver, **m.solver}.items():
        if value is not None:
            assign(solver, key, value)
    return solver

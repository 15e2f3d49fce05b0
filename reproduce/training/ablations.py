"""The paper's training regime and ablations, as options of a stage (CVPR 2015 Sec. 4.3).

Each option changes what a stage writes or runs in one place here, is recorded in the run's
``config.json`` only when on (so runs made before it existed resume as they were, and a
resumption that drops or changes it is refused), and is shown in ``log.jsonl`` (a ``run``
record at the start of every run):

``recipe="paper"`` (Sec. 4.3 "Optimization", the regime of Table 1):
    "a minibatch size of 20 images and fixed learning rates of 10^-3, 10^-4, and 5^-5 for
    FCN-AlexNet, FCN-VGG16, and FCN-GoogLeNet", momentum 0.9, "weight decay of 5^-4 or 2^-4"
    (5^-4 of the VGG16/AlexNet classifiers' own training, 2^-4 of GoogLeNet's), "doubled the
    learning rate for biases" ("we found training to be insensitive to these parameters (but
    sensitive to the learning rate)"), zero-initialised scores and "dropout ... where used in
    the original classifier nets" (both as the release's nets have them). A minibatch of 20
    whole images is ``iter_size: 20`` of one image each; with a learning rate of that size the
    loss is the per-pixel mean (``normalize: true``), where the release's "heavy" recipe sums
    it (base_lr 1e-10, momentum 0.99, batch 1). A skip net starts from the previous one with
    "the learning rate ... decreased by a factor of 100" (Sec. 4.2: FCN-16s 1e-6, FCN-8s
    1e-8 for VGG16); its intermediate upsampling learns, the final stays bilinear (Sec. 4.3
    "Dense prediction"). Length: Table 1 reports "the best results achieved after convergence
    at a fixed learning rate (at least 175 epochs)" (Sec. 4.1): a VOC net runs 175 epochs of
    its training set (VOC2011 train: 9,730 iterations of 20 images; SBD: 74,358) unless
    ``--max-iter`` says otherwise; the paper gives no length for the skip nets ("about one
    day each"), which run as long. ``release`` is the default.
``fixed`` (Table 2 "FCN-32s-fixed"): ``lr_mult: 0`` on every parameter but the score layers'.
``loss_sampling=p`` (Sec. 3.4, 4.3 "Patch sampling", Fig. 5): each spatial term of the loss
    kept with probability ``p`` per iteration (``SoftmaxWithLoss.set_options``); "to avoid
    changing the effective batch size, we simultaneously increase the number of images per
    batch by a factor 1/p": ``iter_size`` times ``round(1/p)``. The paper: sampling "does not
    have a significant effect on convergence rate compared to whole image training, but takes
    significantly more time due to the larger number of images that need to be considered per
    batch". ``p = 1`` is the unsampled training bit for bit.
``class_weights`` (Sec. 4.3 "Class balancing"): ``"median-frequency"`` (Eigen & Fergus's
    median frequency balancing over the training split's labels, computed once per run into
    ``class_weights.json``) or a file of one weight per class; each loss term is weighted by
    its label's class. The paper: "we find class balancing unnecessary".
``mirror``, ``jitter`` (Sec. 4.3 "Augmentation"): ``reproduce.data.augment``; "this yielded
    no noticeable improvement".
``train_set="voc2011"`` (Sec. 4.3 "More training data"): the VOC nets train on the 1,112
    images of the PASCAL VOC 2011 segmentation ``train`` split — "which we use for Table 1" —
    instead of SBD's 8,498 ("this training data improves the FCN-VGG16 validation score by 3.4
    points to 59.4 mean IU"); the data layer is the reference ``VOCSegDataLayer``. ``sbd``
    (the release's) is the default.
``learn_upsampling`` (Sec. 4.3 "Dense prediction"; the release README's FAQ): every
    Deconvolution learns (``lr_mult: 1, decay_mult: 1``) from its bilinear init, where the
    release fixes them; the paper: "we found learned upsampling ... gave no improvement" for
    the final layer, while it learns the intermediate 2× ones (Sec. 4.2).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable, Mapping, Sequence

from reproduce.caffe.schema import Message

RECIPES = ("release", "paper")
TRAIN_SETS = ("sbd", "voc2011")
MEDIAN_FREQUENCY = "median-frequency"

# Sec. 4.3: the fixed learning rate by backbone, and each classifier's own weight decay
PAPER_BASE_LR = {"alexnet": 1e-3, "vgg16": 1e-4, "googlenet": 5e-5}
PAPER_WEIGHT_DECAY = {"alexnet": 5e-4, "vgg16": 5e-4, "googlenet": 2e-4}
PAPER_SOLVER = {"lr_policy": "fixed", "momentum": 0.9, "iter_size": 20}
PAPER_SKIP_LR_FACTOR = 0.01   # Sec. 4.2: each skip net's rate, relative to the net it starts from
PAPER_EPOCHS = 175            # Sec. 4.1: "at least 175 epochs"
TRAIN_IMAGES = {"sbd": 8498, "voc2011": 1112}   # the VOC nets' training sets (Sec. 4.3)
PAPER_PARAMS = ({"lr_mult": 1, "decay_mult": 1}, {"lr_mult": 2, "decay_mult": 0})


class AblationError(ValueError):
    """An ablation option that cannot be applied as asked; one line naming the fix."""


# ----------------------------------------------------------------------------- the record


def recorded(opts) -> dict:
    """The options of ``opts`` that are on, as ``config.json`` and ``log.jsonl`` record them."""
    out: dict = {}
    if getattr(opts, "recipe", "release") != "release":
        out["recipe"] = opts.recipe
    if getattr(opts, "train_set", "sbd") != "sbd":
        out["train_set"] = opts.train_set
    if getattr(opts, "fixed", False):
        out["fixed"] = True
    if getattr(opts, "loss_sampling", 1.0) != 1.0:
        out["loss_sampling"] = float(opts.loss_sampling)
    if getattr(opts, "class_weights", None):
        out["class_weights"] = class_weights_record(opts.class_weights)
    if getattr(opts, "mirror", False):
        out["mirror"] = True
    if getattr(opts, "jitter", 0):
        out["jitter"] = int(opts.jitter)
    if getattr(opts, "learn_upsampling", False):
        out["learn_upsampling"] = True
    return out


def check(opts) -> None:
    """Refuse impossible settings before anything is written."""
    if opts.recipe not in RECIPES:
        raise AblationError(f"--recipe must be one of {', '.join(RECIPES)}, not {opts.recipe!r}")
    if opts.train_set not in TRAIN_SETS:
        raise AblationError(f"--train-set must be one of {', '.join(TRAIN_SETS)}, not {opts.train_set!r}")
    if opts.train_set != "sbd" and opts.description.dataset != "voc":
        raise AblationError(f"--train-set {opts.train_set}: only the PASCAL VOC nets choose their "
                            f"training set ({opts.model} trains on its dataset's own split)")
    p = float(opts.loss_sampling)
    if not 0.0 < p <= 1.0 or math.isnan(p):
        raise AblationError(f"--loss-sampling must be a probability in (0, 1], got {opts.loss_sampling}")
    if int(opts.jitter) < 0:
        raise AblationError(f"--jitter must be a number of pixels >= 0, got {opts.jitter}")
    spec = opts.class_weights
    if spec and spec != MEDIAN_FREQUENCY and not Path(spec).is_file():
        raise AblationError(f"--class-weights {spec}: no such file (give {MEDIAN_FREQUENCY} or a "
                            f"file of one weight per class)")


def class_weights_record(spec: str) -> str:
    """``median-frequency``, or the absolute path of a weights file."""
    return spec if spec == MEDIAN_FREQUENCY else str(Path(spec).resolve())


# ----------------------------------------------------------------------------- the nets


def transform_nets(nets: Mapping[str, Message], opts, train_file: str) -> dict[str, Message]:
    """The stage's nets (file name → NetParameter) as the options change them: ``fixed`` and
    ``learn_upsampling`` and the paper recipe in every net (the test net shares the weights
    and its loss is reported), augmentation in the training net's data layer alone."""
    out = {}
    for file, net in nets.items():
        if opts.recipe == "paper":
            net = paper_net(net)
        if opts.fixed:
            net = freeze_all_but_scores(net)
        if opts.learn_upsampling:
            net = learned_upsampling(net)
        if file == train_file and (opts.mirror or opts.jitter):
            net = augmented(net, opts.mirror, int(opts.jitter))
        out[file] = net
    return out


def voc2011_training(net: Message, voc_dir: str) -> Message:
    """The training net with its SBD data layer replaced by the reference ``VOCSegDataLayer``
    on VOC2011 ``train`` (``voc_dir`` as the release writes it, relative to the net's folder),
    seed and mean kept."""
    from reproduce.data import parse_param_str

    net = net.copy()
    for layer in net.layer:
        python = layer.python_param
        if layer.type == "Python" and not layer.bottom and python.layer == "SBDDSegDataLayer":
            params = parse_param_str(python.param_str, layer.name)
            python.layer = "VOCSegDataLayer"
            python.param_str = repr({"voc_dir": voc_dir, "seed": params.get("seed"), "split": "train",
                                     "mean": params.get("mean")})
            return net
    raise AblationError(f"net {net.name!r} has no SBD data layer to train on VOC2011 instead")


def freeze_all_but_scores(net: Message) -> Message:
    """The net with ``lr_mult: 0`` on every parameter blob of every layer but the score layers
    (``score*``): CVPR 2015 Table 2's "FCN-32s-fixed", "where only the last layer is
    fine-tuned" (Sec. 4.2). ``lr_mult: 0`` is how Caffe fixes a blob: its update is scaled by
    0 (weight decay included) and no gradient is propagated for it. ``decay_mult`` is kept."""
    net = net.copy()
    for layer in _learnable(net):
        if layer.name.startswith("score"):
            continue
        for spec in _param_specs(layer):
            spec.lr_mult = 0.0
    return net


def learned_upsampling(net: Message) -> Message:
    """Every Deconvolution's blobs at ``lr_mult: 1, decay_mult: 1`` (the release: ``lr_mult: 0``)."""
    net = net.copy()
    for layer in _learnable(net):
        if layer.type == "Deconvolution":
            for spec in _param_specs(layer):
                spec.lr_mult, spec.decay_mult = 1.0, 1.0
    return net


def paper_net(net: Message) -> Message:
    """The CVPR regime's net: the loss normalized per pixel; every learned layer's biases at
    twice the rate without decay, weights at the rate with decay (what the VGG nets of the
    release have already; the FCN-AlexNet of the release sets no ``param`` at all); and, as
    Sec. 4.3 "Dense prediction" says, "final layer deconvolutional filters are fixed to bilinear
    interpolation, while intermediate upsampling layers are initialized to bilinear
    upsampling, and then learned" (the skip nets' 2× ``upscore2``/``upscore_pool4``, which the
    release fixes). Other fixed blobs (``lr_mult: 0``) stay fixed."""
    net = net.copy()
    for layer in net.layer:
        if layer.type == "SoftmaxWithLoss":
            layer.loss_param.normalize = True
    final = final_upsampling(net)
    for layer in _learnable(net):
        if layer.type == "Deconvolution":
            if layer.name not in final:
                for spec in _param_specs(layer):
                    spec.lr_mult, spec.decay_mult = 1.0, 1.0
            continue
        for spec, wanted in zip(_param_specs(layer), PAPER_PARAMS):
            if spec.has("lr_mult") and float(spec.lr_mult) == 0.0:
                continue
            spec.lr_mult, spec.decay_mult = float(wanted["lr_mult"]), float(wanted["decay_mult"])
    return net


def final_upsampling(net: Message) -> set[str]:
    """The Deconvolution layers whose output is a score — a loss's first bottom or a blob no
    layer reads — directly or through one Crop: the nets' final upsampling."""
    consumed = {b for layer in net.layer for b in layer.bottom}
    scores = {layer.bottom[0] for layer in net.layer if layer.type == "SoftmaxWithLoss" and layer.bottom}
    scores |= {t for layer in net.layer for t in layer.top if t not in consumed}
    crops = {layer.bottom[0]: layer.top[0] for layer in net.layer
             if layer.type == "Crop" and layer.bottom and layer.top}
    return {layer.name for layer in net.layer if layer.type == "Deconvolution" and layer.top
            and (layer.top[0] in scores or crops.get(layer.top[0]) in scores)}


def paper_solver(solver: Message, model, train_set: str = "sbd") -> Message:
    """Sec. 4.3's optimization for the net ``model`` (an ``FCNModel``; see the module
    docstring): the backbone's rate, a hundredth of it per skip stage it follows, and for the
    VOC nets 175 epochs of ``train_set``."""
    if model.backbone not in PAPER_BASE_LR:
        raise AblationError(f"--recipe paper: the paper gives no learning rate for a {model.backbone} "
                            f"net (it trains FCN-AlexNet, FCN-VGG16 and FCN-GoogLeNet)")
    solver = solver.copy()
    for key, value in PAPER_SOLVER.items():
        setattr(solver, key, value)
    solver.base_lr = PAPER_BASE_LR[model.backbone] * PAPER_SKIP_LR_FACTOR ** skip_depth(model)
    solver.weight_decay = PAPER_WEIGHT_DECAY[model.backbone]
    if model.dataset == "voc":
        solver.max_iter = math.ceil(PAPER_EPOCHS * TRAIN_IMAGES[train_set] / PAPER_SOLVER["iter_size"])
    return solver


def skip_depth(model) -> int:
    """How many stages the net follows (FCN-32s 0, FCN-16s 1, FCN-8s 2)."""
    from reproduce.models import model as model_named

    depth, m = 0, model
    while m.init == "copy_from" and m.previous:
        depth, m = depth + 1, model_named(m.previous)
    return depth


def sampling_iter_size(iter_size: int, p: float) -> int:
    """Sec. 4.3: the batch grows by 1/p so that the effective batch size stays."""
    return int(iter_size) * max(1, round(1.0 / float(p)))


def augmented(net: Message, mirror: bool, jitter: int) -> Message:
    """The net with its bottomless Python data layers' ``param_str`` asking for mirroring and
    jittering (``reproduce.data.augment``)."""
    from reproduce.data import parse_param_str

    net = net.copy()
    found = False
    for layer in net.layer:
        if layer.type != "Python" or layer.bottom:
            continue
        params = parse_param_str(layer.python_param.param_str, layer.name)
        if mirror:
            params["mirror"] = True
        if jitter:
            params["jitter"] = int(jitter)
        layer.python_param.param_str = repr(params)
        found = True
    if not found:
        raise AblationError(f"net {net.name!r} has no Python data layer to augment")
    return net


def _learnable(net: Message):
    from reproduce.models.param_groups import learnable_blob_count

    return [layer for layer in net.layer if learnable_blob_count(layer)]


def _param_specs(layer: Message) -> list:
    """The layer's ``param`` specs, one per parameter blob (added where the layer has fewer)."""
    from reproduce.models.param_groups import learnable_blob_count

    count = learnable_blob_count(layer)
    while len(layer.param) < count:
        layer.add("param")
    return list(layer.param[:count])


# ----------------------------------------------------------------------------- the loss


def configure_loss(net, sampling: float = 1.0, class_weights=None) -> list[str]:
    """Set loss sampling and class weights on every SoftmaxWithLoss layer of a live ``Net``;
    returns the layers set. ``sampling = 1`` and no weights leave them Caffe's."""
    names = []
    for name, layer in net.layer_dict.items():
        if layer.layer_type == "SoftmaxWithLoss":
            layer.set_options(sampling=sampling, class_weights=class_weights)
            names.append(name)
    if not names and (sampling != 1.0 or class_weights is not None):
        raise AblationError(f"net {net.name!r} has no SoftmaxWithLoss layer to sample or weight")
    return names


def read_class_weights(path: str | Path, num_classes: int) -> list[float]:
    """One weight per class from ``path``: a JSON list (or ``{"weights": […]}``, what
    ``class_weights.json`` holds) or numbers separated by white space; non-negative, finite."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise AblationError(f"class weights file {path}: cannot read it: {err}") from None
    try:
        data = json.loads(text)
        values = data["weights"] if isinstance(data, dict) else data
    except (json.JSONDecodeError, KeyError, TypeError):
        values = text.split()
    if not isinstance(values, list):
        raise AblationError(f"class weights file {path}: expected a list of numbers")
    weights = []
    for position, value in enumerate(values, 1):
        try:
            weight = float(value)
        except (TypeError, ValueError):
            raise AblationError(f"class weights file {path}: entry {position} ({value!r}) is not "
                                f"a number") from None
        if not math.isfinite(weight) or weight < 0:
            raise AblationError(f"class weights file {path}: entry {position} ({value!r}) must be "
                                f"finite and non-negative")
        weights.append(weight)
    if len(weights) != num_classes:
        raise AblationError(f"class weights file {path}: {len(weights)} weights for a net of "
                            f"{num_classes} classes")
    return weights


def median_frequency_weights(labels: Callable[[int], "object"], count: int, num_classes: int,
                             ignore_label: int = 255, progress: bool = True) -> dict:
    """Median frequency balancing (Eigen & Fergus, ICCV 2015; the class balancing by loss
    weighting of CVPR 2015 Sec. 4.3): ``freq(c)`` = pixels of class ``c`` / pixels of the
    images where ``c`` appears, ``w(c) = median(freq) / freq(c)`` over the classes that
    appear; a class that never appears in the training labels gets weight 0 (it contributes
    no term anyway). ``labels(i)`` is the label array of training sample ``i``."""
    import numpy as np
    from tqdm import tqdm

    pixels = np.zeros(num_classes, dtype=np.int64)
    present_in = np.zeros(num_classes, dtype=np.int64)   # pixels of the images a class is in
    for i in tqdm(range(count), desc="class frequencies", unit="image", disable=not progress):
        label = np.asarray(labels(i)).astype(np.int64).ravel()
        label = label[label != ignore_label]
        if label.size and (label.min() < 0 or label.max() >= num_classes):
            raise AblationError(f"training label {i} has class {int(label.max())} outside "
                                f"[0, {num_classes})")
        counts = np.bincount(label, minlength=num_classes)
        pixels += counts
        present_in[counts > 0] += label.size
    return {**median_frequency_from_counts(pixels, present_in), "images": count}


def median_frequency_from_counts(pixels, present_in) -> dict:
    """Median frequency weights from each class's pixels and the pixels of the images it is
    in (``median_frequency_weights``' sums; ``data check --dataset`` gathers its own)."""
    import numpy as np

    pixels, present_in = np.asarray(pixels, dtype=np.int64), np.asarray(present_in, dtype=np.int64)
    present = pixels > 0
    if not present.any():
        raise AblationError("no labelled pixel in the training split: cannot balance classes")
    freq = np.zeros(len(pixels))
    freq[present] = pixels[present] / present_in[present]
    median = float(np.median(freq[present]))
    weights = np.where(present, median / np.where(present, freq, 1.0), 0.0)
    return {"method": MEDIAN_FREQUENCY, "pixels": pixels.tolist(),
            "frequency": freq.tolist(), "weights": weights.tolist()}


def label_reader(source, label_top: str) -> tuple[Callable[[int], object], int]:
    """``(labels(i), count)`` over a data source's split, in file order, reading the
    ``label_top`` array of each sample (no augmentation)."""
    tops = list(source.tops)
    if label_top not in tops:
        raise AblationError(f"the training data layer has no {label_top!r} top (its tops: {tops})")
    where = tops.index(label_top)
    dataset = source.dataset
    return (lambda i: dataset[i][where]), len(dataset)


def resolve_class_weights(spec: str, run_dir: Path, num_classes: int, source, label_top: str,
                          progress: bool, log: Callable[[str], None]) -> list[float]:
    """The weights of ``--class-weights spec``, kept in ``<run_dir>/class_weights.json`` when the
    run starts and read back from there when it resumes: median frequency over the training
    split (computed once), or the file's — a file changed since the run started is refused."""
    from reproduce.caffe.files import atomic_output

    cache = Path(run_dir) / "class_weights.json"
    kept = read_class_weights(cache, num_classes) if cache.is_file() else None
    if spec != MEDIAN_FREQUENCY:
        weights = read_class_weights(spec, num_classes)
        if kept is not None and kept != weights:
            raise AblationError(f"class weights file {spec} changed since this run started (its "
                                f"weights are kept in {cache}); restore it, or start a new run")
        result = {"method": "file", "file": str(Path(spec).resolve()), "weights": weights}
    elif kept is not None:
        return kept
    else:
        labels, count = label_reader(source, label_top)
        log(f"class weights: median frequency over the {count} training labels")
        result = median_frequency_weights(labels, count, num_classes, progress=progress)
    if kept is None:
        with atomic_output(cache) as tmp:
            Path(tmp).write_text(json.dumps(result, indent=1) + "\n")
    return result["weights"]


def summary(options: Mapping) -> str:
    """One line for the log: ``recipe=paper, loss_sampling=0.5`` (or ``release``)."""
    if not options:
        return "the release's training"
    return ", ".join(f"{k}={v}" for k, v in options.items())


"""Scoring a net over a validation set, as the reference ``score.py`` (``seg_tests``) does.

``evaluate(net, dataset)`` is ``compute_hist`` + ``do_seg_tests``: every image of the split
in file order, at its native size (batch of one, no resizing or cropping), is run through
the net; the argmax over classes of the ``score`` blob is compared with the ``label`` blob in
a confusion histogram (``reproduce.evaluation.score.fast_hist``, void label 255 left out); the ``loss``
blob, when the net has one, is averaged over the images (``loss / len(dataset)``). The
metrics are the reference's: overall accuracy, mean accuracy, mean IU, fwavacc (NaN
semantics kept), plus per-class IU and accuracy by class name. Optionally each prediction is
saved as ``<save_dir>/<id>.png`` (palette PNG in the VOC colours — the reference writes the
same indices as a mode-``P`` PNG without a palette).

``net`` is a ``reproduce.net.Net`` (a ``val``-split net with ``data``/``label`` inputs and a
loss, a ``deploy`` net with ``data`` only, or an idiomatic ``FCN8s``…) or any module
mapping an N×3×H×W batch to N×C×H×W scores. ``seg_tests`` prints the reference's
``>>> … Iteration N …`` lines; to score a training net's current weights through a test net,
point the test net at them first with ``Net.share_with`` (pycaffe's
``test_nets[0].share_with(solver.net)``).

Under ``torchrun`` (``torch.distributed`` initialized) rank ``r`` of ``w`` scores images
``r, r + w, r + 2w, …`` and the histograms and loss sums are all-reduced, so every rank
returns exactly the single-process result.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from reproduce.evaluation.score import SegScore, save_palette_png, seg_test_lines

__all__ = ["EvalResult", "evaluate", "seg_tests", "shard_indices"]


@dataclass
class EvalResult:
    """What a test pass measured: histogram, mean loss and the reference's metrics."""

    hist: np.ndarray
    loss: float | None            # mean over images; None when the net has no loss blob
    count: int
    class_names: tuple[str, ...]
    overall_acc: float = field(init=False)
    mean_acc: float = field(init=False)
    mean_iu: float = field(init=False)
    fwavacc: float = field(init=False)
    mean_iu_present: float = field(init=False)   # over the classes with ground truth (SIFT Flow sem.)
    per_class_iu: np.ndarray = field(init=False)
    per_class_acc: np.ndarray = field(init=False)

    def __post_init__(self):
        from reproduce.evaluation.score import metrics

        m = metrics(self.hist)
        self.overall_acc, self.mean_acc = m["overall_acc"], m["mean_acc"]
        self.mean_iu, self.fwavacc = m["mean_iu"], m["fwavacc"]
        self.per_class_iu, self.per_class_acc = m["per_class_iu"], m["per_class_acc"]
        self.mean_iu_present = metrics(self.hist, classes_present_only=True)["mean_iu"]

    def metrics(self) -> dict:
        """The ``SegScore.metrics()`` dict (``loss`` NaN when absent), for ``seg_test_lines``."""
        return {"overall_acc": self.overall_acc, "mean_acc": self.mean_acc, "mean_iu": self.mean_iu,
                "fwavacc": self.fwavacc, "per_class_iu": self.per_class_iu,
                "per_class_acc": self.per_class_acc, "count": self.count,
                "loss": float("nan") if self.loss is None else self.loss}

    def to_dict(self) -> dict:
        """JSON-ready: fractions as score.py prints them, NaN as None, per class by name."""
        def num(value):
            return None if value is None or not np.isfinite(value) else float(value)

        return {"count": self.count, "loss": num(self.loss), "overall_acc": num(self.overall_acc),
                "mean_acc": num(self.mean_acc), "mean_iu": num(self.mean_iu), "fwavacc": num(self.fwavacc),
                "mean_iu_present": num(self.mean_iu_present),
                "per_class_iu": {n: num(v) for n, v in zip(self.class_names, self.per_class_iu)},
                "per_class_acc": {n: num(v) for n, v in zip(self.class_names, self.per_class_acc)},
                "hist": self.hist.astype(np.int64).tolist()}

    def lines(self, iteration: int, now: datetime | None = None) -> list[str]:
        """The reference ``do_seg_tests`` report lines."""
        return seg_test_lines(iteration, self.metrics(), now)


def shard_indices(n: int, rank: int = 0, world_size: int = 1) -> range:
    """The images rank ``rank`` of ``world_size`` scores: ``rank, rank + world_size, …``."""
    return range(rank, n, world_size)


def _distributed() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _as_dataset(data):
    """A ``DataSource`` (registry) yields its dataset; a SplitDataset-like object is used as is."""
    inner = getattr(data, "dataset", None)
    if inner is not None and hasattr(data, "sampler"):
        return inner
    return data


def _sample_ids(dataset, n: int) -> list[str]:
    ids = getattr(dataset, "ids", None)
    return [str(i) for i in ids] if ids is not None and len(ids) == n else [f"{i:06d}" for i in range(n)]


class _Runner:
    """Feeds one sample to ``net``; returns (class scores C×H×W as numpy, loss or None).

    A sample is a mapping top → array (the dataset's ``tops``: ``data``/``label``; SIFT Flow's
    ``data``/``sem``/``geo``; NYUDv2's ``color``/``depth``/``hha``/``label``). A Caffe ``Net`` gets
    every one of its inputs by name, as the reference's Python data layer fills every top before
    the forward; an input the sample lacks is an error naming both sides. A plain module gets
    the ``data_blob`` array (or the first top) as its one argument.
    """

    def __init__(self, net, score_blob: str, label_blob: str, loss_blob: str | None, data_blob: str):
        from reproduce.net import Net

        self.net = net
        self.is_caffe_net = isinstance(net, Net)
        self.score_blob, self.label_blob, self.loss_blob = score_blob, label_blob, loss_blob
        self.data_blob = data_blob
        self.inputs = list(net.inputs) if self.is_caffe_net else []
        try:
            self.device = next(net.parameters()).device
        except StopIteration:
            self.device = torch.device("cpu")

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)[np.newaxis]).to(self.device)

    def feed(self, sample: dict) -> dict:
        """The net's inputs from ``sample`` (top → array); see the class docstring."""
        if not self.is_caffe_net:
            name = self.data_blob if self.data_blob in sample else next(iter(sample))
            return {name: self._tensor(sample[name])}
        image_tops = [t for t in sample if t != self.label_blob]
        missing = [name for name in self.inputs if name not in sample]
        if missing == self.inputs[:1] and len(image_tops) == 1 and image_tops[0] == self.data_blob:
            # a one-input net whose input is named otherwise (an idiomatic deploy net's input)
            sample = {**sample, self.inputs[0]: sample[self.data_blob]}
            missing = []
        if missing:
            raise ValueError(f"net {self.net.name!r} needs input(s) {', '.join(missing)} that the dataset "
                             f"does not yield (its tops: {', '.join(sample)})")
        return {name: self._tensor(sample[name]) for name in self.inputs}

    def __call__(self, sample: dict) -> tuple[np.ndarray, float | None]:
        inputs = self.feed(sample)
        if not self.is_caffe_net:
            out = self.net(next(iter(inputs.values())))
            return out[0].detach().float().cpu().numpy(), None
        from reproduce.net import Net

        Net.forward(self.net, **inputs)  # the Caffe-style forward, also for FCN8s & co.
        if self.score_blob not in self.net.blobs:
            raise KeyError(f"net {self.net.name!r} has no blob {self.score_blob!r} to score "
                           f"(blobs: {', '.join(self.net.blobs)})")
        scores = self.net.blobs[self.score_blob][0].detach().float().cpu().numpy()
        loss = None
        if self.loss_blob and self.loss_blob in self.net.blobs:
            loss = float(self.net.blobs[self.loss_blob].detach().reshape(-1)[0])
        return scores, loss


def _sample(dataset, index: int, data_blob: str, label_blob: str, sample_id: str) -> dict:
    """``dataset[index]`` as top → array: by the dataset's ``tops`` when it names them, else
    the ``(image, label)`` pair of a plain dataset."""
    arrays = dataset[index]
    tops = getattr(dataset, "tops", None)
    if tops is not None and len(tops) == len(arrays):
        sample = dict(zip(tops, arrays))
    else:
        sample = {data_blob: arrays[0], label_blob: arrays[1]}
    if label_blob not in sample:
        raise ValueError(f"sample {sample_id}: no {label_blob!r} to score against (the dataset's tops: "
                         f"{', '.join(sample)})")
    return sample


def evaluate(net, dataset, *, class_names: Sequence[str] | None = None, n_classes: int | None = None,
             score_blob: str = "score", label_blob: str = "label", loss_blob: str | None = "loss",
             data_blob: str = "data", save_dir: str | Path | None = None, progress: bool = True,
             description: str = "scoring",
             callback: Callable[[int, str], Any] | None = None) -> EvalResult:
    """Score ``net`` on every sample of ``dataset`` in file order (see the module docstring).

    ``dataset`` yields ``(image 3×H×W float32 BGR minus mean, label 1×H×W or H×W)`` by index
    (a ``VOCSegmentation`` or a ``DataSource``, whose file order is used, not its sampler's), or
    one array per name in its ``tops`` (SIFT Flow's ``data, sem, geo``; NYUDv2's ``color, depth,
    hha, label``…): every net input is fed from the top of its name and ``label_blob`` names the
    ground truth (``sem`` or ``geo`` for SIFT Flow's two heads).
    ``n_classes`` defaults to the score blob's channels (score.py's ``net.blobs[layer].channels``);
    ``class_names`` to the VOC names when there are 21 classes, else ``class<i>``.
    """
    dataset = _as_dataset(dataset)
    n = len(dataset)
    if n == 0:
        raise ValueError("nothing to score: the dataset is empty")
    rank, world = _distributed()
    ids = _sample_ids(dataset, n)
    runner = _Runner(net, score_blob, label_blob, loss_blob, data_blob)
    if save_dir is not None:
        save_dir = Path(save_dir)
        save_dir.mkdir(parents=True, exist_ok=True)
    was_training = net.training
    net.eval()
    score: SegScore | None = None if n_classes is None else SegScore(n_classes)
    has_loss = False
    indices = shard_indices(n, rank, world)
    bar = None
    if progress and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=len(indices), desc=description, unit="img", dynamic_ncols=True, leave=False)
    try:
        with torch.no_grad():
            for index in indices:
                sample = _sample(dataset, index, data_blob, label_blob, ids[index])
                label = sample[label_blob]
                scores, loss = runner(sample)
                if score is None:
                    score = SegScore(scores.shape[0])
                pred = scores.argmax(0)
                label_map = np.asarray(label).reshape(pred.shape) if np.asarray(label).size == pred.size else None
                if label_map is None:
                    raise ValueError(f"sample {ids[index]}: label is {np.asarray(label).shape} but the "
                                     f"prediction is {pred.shape}")
                score.update(label_map, pred, loss)
                has_loss = has_loss or loss is not None
                if save_dir is not None:
                    save_palette_png(save_dir / f"{ids[index]}.png", pred.astype(np.uint8))
                if callback is not None:
                    callback(index, ids[index])
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        net.train(was_training)
    if score is None:  # a rank with no images (world > n) still learns the class count
        score = SegScore(_score_channels(net, score_blob, n_classes))
    if world > 1:
        score, has_loss = _all_reduce(score, has_loss)
    names = tuple(class_names) if class_names is not None else _default_names(score.n_classes)
    if len(names) != score.n_classes:
        raise ValueError(f"{len(names)} class names for {score.n_classes} classes")
    return EvalResult(score.hist, score.mean_loss if has_loss else None, score.count, names)


def _score_channels(net, score_blob: str, n_classes: int | None) -> int:
    if n_classes is not None:
        return n_classes
    shapes = getattr(net, "blob_shapes", {})
    if score_blob in shapes:
        return int(shapes[score_blob][1])
    raise ValueError("cannot tell the number of classes of a rank without images; pass n_classes")


def _all_reduce(score: SegScore, has_loss: bool) -> tuple[SegScore, bool]:
    import torch.distributed as dist

    vector = torch.from_numpy(np.concatenate([score.to_vector(), [float(has_loss)]]))
    if dist.get_backend() == "nccl":  # NCCL reduces CUDA tensors only
        vector = vector.to(torch.device("cuda", torch.cuda.current_device()))
    dist.all_reduce(vector, op=dist.ReduceOp.SUM)
    values = vector.cpu().numpy()
    return SegScore.from_vector(values[:-1], score.n_classes), bool(values[-1] > 0)


def _default_names(n: int) -> tuple[str, ...]:
    from reproduce.data.voc import VOC_CLASSES

    return tuple(VOC_CLASSES) if n == len(VOC_CLASSES) else tuple(f"class{i}" for i in range(n))


def seg_tests(net, iteration: int, dataset, save_format: str | None = None, *, layer: str = "score",
              gt: str = "label", log: Callable[[str], Any] = print, **kwargs) -> EvalResult:
    """The reference ``do_seg_tests``: score, print the five ``>>>`` lines, return the result.

    ``save_format`` is formatted with the iteration (``"out/iter{}"``) and names the folder of
    the prediction PNGs, as in score.py. Only rank 0 prints under torch.distributed.
    """
    save_dir = save_format.format(iteration) if save_format else None
    result = evaluate(net, dataset, score_blob=layer, label_blob=gt, save_dir=save_dir, **kwargs)
    if _distributed()[0] == 0:
        for line in result.lines(iteration):
            log(line)
    return result

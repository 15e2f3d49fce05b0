"""The demo's stand-in for ``VGG_ILSVRC_16_layers.caffemodel``: a VGG16-shaped classifier.

FCN-32s starts from the ILSVRC VGG16 classifier (ilsvrc-nets/README of the reference). The
demo cannot download it, so it makes one the same shape — VGG16's layers, kernels, pads
and pools at the width-reduced ``tiny`` widths of ``../shared/caffe-golden`` (conv
4/8/8/16/16, fc6/fc7 32, fc8 one output per class) — pre-trains it briefly on its own
training images, and releases it as the 2014 file was released: a V1 caffemodel
(``legacy_v1``) plus a V1 deploy prototxt with ``input_dim: 1 3 224 224``.

As in VGG16, fc6 is an InnerProduct over the flattened 7×7 pool5, so the classifier runs on
224×224 inputs. Its task (``CenterViews``) is the one each output cell of FCN-32s answers
later: the class of the pixel at the centre of a 224×224 window, at the images' native
scale. Training uses this project's own ``Net`` and ``SGDSolver`` (Adam, normalized softmax
loss, msra fillers); only the result's format and shapes stand in for VGG16, not its
training recipe or its quality.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from reproduce.caffe.schema import Message
from reproduce.models.widths import Widths, width_map
from reproduce.net.spec import NetSpec, layers as L

CROP = 224
# VGG16: (block, number of 3×3 convolutions, full width)
VGG16_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))
LEARNED = [dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)]


def vgg16_classifier(num_classes: int, widths: Widths = "tiny", batch: int = 1, train: bool = False,
                     dropout: float = 0.5, name: str = "VGG_ILSVRC_16_layers_tiny") -> Message:
    """The VGG16 ILSVRC classifier as a NetParameter (current format).

    ``train=False``: the deploy net (``data`` 1×3×224×224 → ``prob``), what the release ships.
    ``train=True``: inputs ``data`` batch×3×224×224 and ``label`` batch, a normalized
    ``SoftmaxWithLoss`` after fc8, msra fillers (fc8 gaussian 0.01, biases 0) for training
    from scratch, and ``dropout`` as the drop6/drop7 ratio.
    """
    width = width_map(widths)
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[batch, 3, CROP, CROP]))
    if train:
        n.label = L.Input(shape=dict(dim=[batch]))
    fill = dict(weight_filler=dict(type="msra"), bias_filler=dict(type="constant", value=0.0)) if train else {}
    bottom = n.data
    for block, convs, full in VGG16_BLOCKS:
        for k in range(1, convs + 1):
            conv = L.Convolution(bottom, num_output=width(full), pad=1, kernel_size=3, param=LEARNED, **fill)
            setattr(n, f"conv{block}_{k}", conv)
            bottom = L.ReLU(conv, in_place=True)
            setattr(n, f"relu{block}_{k}", bottom)
        bottom = L.Pooling(bottom, pool="MAX", kernel_size=2, stride=2)
        setattr(n, f"pool{block}", bottom)
    for fc in (6, 7):
        bottom = L.InnerProduct(bottom, num_output=width(4096), param=LEARNED, **fill)
        setattr(n, f"fc{fc}", bottom)
        bottom = L.ReLU(bottom, in_place=True)
        setattr(n, f"relu{fc}", bottom)
        bottom = L.Dropout(bottom, dropout_ratio=dropout, in_place=True)
        setattr(n, f"drop{fc}", bottom)
    last = dict(fill, weight_filler=dict(type="gaussian", std=0.01)) if train else {}
    n.fc8 = L.InnerProduct(bottom, num_output=num_classes, param=LEARNED, **last)
    if train:
        n.loss = L.SoftmaxWithLoss(n.fc8, n.label)
    else:
        n.prob = L.Softmax(n.fc8)
    return n.to_proto(name=name)


def classifier_solver(train_net: Message, base_lr: float, max_iter: int, seed: int) -> Message:
    """Adam with a normalized loss: trains the 16 narrow layers from scratch in a few hundred steps
    (plain momentum SGD, as ILSVRC training used, needs far longer at these widths)."""
    solver = Message("SolverParameter")
    solver.net_param = train_net
    solver.type = "Adam"
    solver.base_lr = float(base_lr)
    solver.lr_policy = "fixed"
    solver.momentum = 0.9
    solver.momentum2 = 0.999
    solver.weight_decay = 0.0005
    solver.max_iter = int(max_iter)
    solver.display = 0
    solver.average_loss = 10
    solver.snapshot = 0
    solver.random_seed = int(seed)
    return solver


class CenterViews:
    """Classification views of a segmentation set at its native scale: "what is at the centre?".

    A view is a 224×224 window (zeros — the mean colour — outside the image) centred on one
    pixel of a training image, labelled with that pixel's class: the question each output
    cell of the fully convolutional net answers about the pixel its window is centred on.
    Centres are drawn half from background and half from object pixels (void never), so
    the small objects are not drowned by the background.
    """

    def __init__(self, dataset, seed: int = 0):
        import numpy as np

        self.samples = [dataset[i] for i in range(len(dataset))]   # (image 3×H×W, label 1×H×W)
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.samples)

    def draw(self, count: int):
        """``count`` views: ``(count × 3 × 224 × 224 float32, count int64 labels)``."""
        import numpy as np

        views = np.zeros((count, 3, CROP, CROP), dtype=np.float32)
        labels = np.zeros(count, dtype=np.int64)
        for k in range(count):
            image, label = self.samples[int(self.rng.integers(len(self.samples)))]
            label = label[0]
            want_object = k % 2 == 1 and bool(((label > 0) & (label < 255)).any())
            mask = ((label > 0) & (label < 255)) if want_object else (label == 0)
            if not mask.any():
                mask = label < 255
            ys, xs = np.nonzero(mask)
            j = int(self.rng.integers(len(ys)))
            cy, cx = int(ys[j]), int(xs[j])
            h, w = label.shape
            top, left = CROP // 2 - cy, CROP // 2 - cx
            views[k, :, max(top, 0):top + h, max(left, 0):left + w] = \
                image[:, max(-top, 0):min(h, CROP - top), max(-left, 0):min(w, CROP - left)]
            labels[k] = int(label[cy, cx])
        return views, labels


@dataclass
class Pretrained:
    """A pre-trained classifier: its blobs (deploy layers) and how well it classifies."""

    weights: dict
    train_accuracy: float
    val_accuracy: float
    train_views: int
    val_views: int
    iterations: int
    final_loss: float
    seconds: float


def pretrain(train_set, val_set, num_classes: int, iterations: int = 300, batch: int = 8,
             base_lr: float = 1e-3, seed: int = 0, widths: Widths = "tiny", dropout: float = 0.1,
             eval_views: int = 200, progress: bool = False, device: str = "cpu",
             channels_last: bool | None = None) -> Pretrained:
    """Train the classifier on ``CenterViews`` of ``train_set``; score it on views of ``val_set``.

    ``train_set``/``val_set`` are segmentation datasets (``SBDSegmentation`` train,
    ``VOCSegmentation`` seg11valid) yielding Caffe-preprocessed ``(image, label)``. Each
    iteration draws a fresh batch (seeded); accuracy is measured on ``eval_views`` fixed
    views of each set. ``dropout`` replaces VGG16's 0.5 while pre-training (at width 32 half
    the units is too much noise for a few hundred steps); the released deploy net keeps 0.5,
    as dropout does nothing at test time.

    Speed (the demo's longest step): on a CPU the training net runs channels-last (NHWC) —
    at these 4–16-channel widths oneDNN's NHWC convolutions take about half the time of NCHW
    ones, forward and backward (``Net.use_channels_last``; the same arithmetic up to float32
    summation order) — and the accuracies are measured a batch at a time. On CUDA the net
    keeps its default layout (``channels_last`` None: NHWC on a CPU only; True/False force it).
    """
    import numpy as np
    import torch

    from reproduce.net import Net
    from reproduce.solver import SGDSolver

    started = time.perf_counter()
    train_views = CenterViews(train_set, seed)
    from reproduce.weights.pretrained import resolve_device

    solver = SGDSolver(classifier_solver(
        vgg16_classifier(num_classes, widths, batch=batch, train=True, dropout=dropout), base_lr, iterations, seed),
        device=resolve_device(device))
    if channels_last if channels_last is not None else solver.device.type == "cpu":
        solver.net.use_channels_last(True)

    def feed():
        data, labels = train_views.draw(batch)
        return {"data": data, "label": labels.astype(np.float32)}

    solver.step(iterations, feed=feed, progress=progress)
    deploy = vgg16_classifier(num_classes, widths)
    weights = deploy_weights(solver.weights(), deploy)
    net = Net(deploy, weights=weights).to(solver.device)

    def accuracy(views: CenterViews) -> float:
        views.rng = np.random.default_rng(seed + 1)
        correct = 0
        with torch.no_grad():
            for start in range(0, eval_views, batch):
                data, labels = views.draw(min(batch, eval_views - start))
                predicted = net(data=data)["prob"].argmax(1).cpu().numpy()
                correct += int((predicted == labels).sum())
        return correct / eval_views

    return Pretrained(weights, accuracy(train_views), accuracy(CenterViews(val_set, seed)), batch * iterations,
                      eval_views, iterations, solver.smoothed_loss, time.perf_counter() - started)


def deploy_weights(weights: dict, deploy: Message) -> dict:
    """The trained blobs of the layers the deploy net has, in its layer order."""
    names = [layer.name for layer in deploy.layer]
    return {name: weights[name] for name in names if name in weights}


def write_release(directory, stem: str, weights: dict, num_classes: int, widths: Widths = "tiny"):
    """Write ``<stem>.caffemodel`` (V1 binary) and ``<stem>.prototxt`` (V1 deploy) into ``directory``."""
    from pathlib import Path

    from reproduce.caffe.files import atomic_output
    from reproduce.caffe.text import emit
    from reproduce.weights.legacy_v1 import downgrade_net, write_v1_caffemodel

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    v1 = downgrade_net(vgg16_classifier(num_classes, widths))
    model, prototxt = directory / f"{stem}.caffemodel", directory / f"{stem}.prototxt"
    write_v1_caffemodel(model, weights, v1)
    with atomic_output(prototxt) as tmp:
        Path(tmp).write_text(emit(v1))
    return model, prototxt

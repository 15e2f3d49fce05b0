"""The backbones of the FCN family, described with ``reproduce.net.spec``: VGG16, AlexNet, GoogLeNet.

Each is an ILSVRC classifier made fully convolutional, as the reference ``net.py`` files
write them: the first convolution pads by 100 pixels (so that small inputs still reach
fc6), fc6/fc7 are convolutions (VGG16 7×7, AlexNet 6×6, then 1×1) each followed by ReLU and
Dropout 0.5, all in place. The stages are rows of a table, not written out one by one.

The VGG16 convolutions learn weights at lr×1 with decay and biases at lr×2 without decay
(``LEARNED``); the AlexNet net of the reference sets no ``param`` at all (Caffe's default
lr_mult 1, decay_mult 1 for both blobs) and writes ``group`` on every convolution.

GoogLeNet (Szegedy et al. 2015) is the ``bvlc_googlenet`` classifier of Caffe's model zoo
(``../shared/fcn-upstream/ilsvrc/``), layer names, kernels, strides, pads, widths, ``param``
multipliers (``LEARNED``) and fillers (xavier weights, constant 0.2 biases) as that net has
them, so that ``bvlc_googlenet.caffemodel`` transplants into it by name. The nine inception
modules are rows of ``GOOGLENET_INCEPTION``. ``googlenet_features`` is the trunk up to
``inception_5b/output``; ``googlenet`` adapts it as CVPR 2015 Sec. 4.1 says — "we use only the
final loss layer, and improve performance by discarding the final average pooling layer":
the auxiliary classifiers (``loss1/*``, ``loss2/*``) and ``pool5/7x7_s1`` are left out, the
first convolution pads by 100 like the other FCNs, and the classifier's dropout is kept (Sec.
4.3, "Dropout was included where used in the original classifier nets": ``pool5/drop_7x7_s1``,
ratio 0.4, under its model-zoo name, now in place on ``inception_5b/output`` since the pooling
it followed is gone); ``score_fr`` then replaces ``loss3/classifier`` (``heads``).
``googlenet_classifier`` is the whole model-zoo net (auxiliary classifiers, average pooling,
``loss3/classifier``) for the ILSVRC side of the surgery.
"""
from __future__ import annotations

from typing import Callable

from reproduce.net.spec import NetSpec, Top, layers as L

# weights at the base rate with weight decay; biases at twice the rate, without decay
LEARNED = ({"lr_mult": 1, "decay_mult": 1}, {"lr_mult": 2, "decay_mult": 0})

# (full width, convolutions) per stage; each stage ends in a 2×2/2 max pooling
VGG16_STAGES = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
VGG16_FC = (4096, 7)  # (full width, fc6 kernel)

# conv<i>: (kernel, full width, stride, pad, group, then): "pool" 3×3/2 max, "norm" LRN
ALEXNET_CONVS = (
    (11, 96, 4, 100, 1, ("pool", "norm")),
    (5, 256, 1, 2, 2, ("pool", "norm")),
    (3, 384, 1, 1, 1, ()),
    (3, 384, 1, 1, 2, ()),
    (3, 256, 1, 1, 2, ("pool",)),
)
ALEXNET_FC = (4096, 6)
ALEXNET_LRN = {"local_size": 5, "alpha": 1e-4, "beta": 0.75}

# GoogLeNet (bvlc_googlenet): xavier weights, biases constant 0.2 (the classifiers' biases 0)
GOOGLENET_FILLERS = {"weight_filler": {"type": "xavier"}, "bias_filler": {"type": "constant", "value": 0.2}}
GOOGLENET_LRN = ALEXNET_LRN  # pool1/norm1 and conv2/norm2 use the same local_size 5, α 1e-4, β 0.75
# module: full widths of its 1x1, 3x3_reduce, 3x3, 5x5_reduce, 5x5 and pool_proj convolutions
GOOGLENET_INCEPTION = (
    ("3a", 64, 96, 128, 16, 32, 32),
    ("3b", 128, 128, 192, 32, 96, 64),
    ("4a", 192, 96, 208, 16, 48, 64),
    ("4b", 160, 112, 224, 24, 64, 64),
    ("4c", 128, 128, 256, 24, 64, 64),
    ("4d", 112, 144, 288, 32, 64, 64),
    ("4e", 256, 160, 320, 32, 128, 128),
    ("5a", 256, 160, 320, 32, 128, 128),
    ("5b", 384, 192, 384, 48, 128, 128),
)
GOOGLENET_POOLS = {"3b": "pool3/3x3_s2", "4e": "pool4/3x3_s2"}  # a 3×3/2 max pooling follows
GOOGLENET_AUX = {"4a": "loss1", "4d": "loss2"}                  # the auxiliary classifiers
GOOGLENET_DROPOUT = 0.4                                         # pool5/drop_7x7_s1

Width = Callable[[int], int]


def conv_relu(bottom: Top, **convolution_fields) -> tuple[Top, Top]:
    """A Convolution and its in-place ReLU."""
    conv = L.Convolution(bottom, **convolution_fields)
    return conv, L.ReLU(conv, in_place=True)


def max_pool(bottom: Top, kernel_size: int, stride: int) -> Top:
    return L.Pooling(bottom, pool="MAX", kernel_size=kernel_size, stride=stride)


def fully_conv(n: NetSpec, bottom: Top, width: int, kernel: int, suffix: str = "",
               **conv_fields) -> Top:
    """fc6 (``kernel``×``kernel``) and fc7 (1×1) as convolutions, each with ReLU and Dropout."""
    for index, size in ((6, kernel), (7, 1)):
        n[f"fc{index}{suffix}"], n[f"relu{index}{suffix}"] = conv_relu(
            bottom, kernel_size=size, stride=1, num_output=width, pad=0, **conv_fields)
        n[f"drop{index}{suffix}"] = L.Dropout(n[f"relu{index}{suffix}"], dropout_ratio=0.5,
                                              in_place=True)
        bottom = n[f"drop{index}{suffix}"]
    return bottom


def vgg16(n: NetSpec, data: Top, width: Width, suffix: str = "",
          first_conv: str | None = None) -> Top:
    """conv1_1 … pool5, fc6, fc7 of VGG16 on ``data``; returns the top after drop7.

    ``suffix`` ends every layer name (the release's late-fusion streams: ``conv1_1color``);
    ``first_conv`` renames conv1_1 alone (early fusion's 4-channel ``conv1_1_bgrd``).
    """
    bottom = data
    for stage, (full_width, convs) in enumerate(VGG16_STAGES, start=1):
        for k in range(1, convs + 1):
            pad = 100 if bottom is data else 1  # only the first convolution pads by 100
            conv = first_conv if (first_conv and bottom is data) else f"conv{stage}_{k}{suffix}"
            n[conv], n[f"relu{stage}_{k}{suffix}"] = conv_relu(
                bottom, kernel_size=3, stride=1, num_output=width(full_width), pad=pad,
                param=list(LEARNED))
            bottom = n[f"relu{stage}_{k}{suffix}"]
        n[f"pool{stage}{suffix}"] = bottom = max_pool(bottom, 2, 2)
    full_width, kernel = VGG16_FC
    return fully_conv(n, bottom, width(full_width), kernel, suffix, param=list(LEARNED))


def alexnet(n: NetSpec, data: Top, width: Width) -> Top:
    """conv1 … pool5, fc6, fc7 of AlexNet (grouped convolutions, LRN) on ``data``."""
    bottom = data
    for index, (kernel, full_width, stride, pad, group, then) in enumerate(ALEXNET_CONVS, start=1):
        n[f"conv{index}"], n[f"relu{index}"] = conv_relu(
            bottom, kernel_size=kernel, stride=stride, num_output=width(full_width), pad=pad,
            group=group)
        bottom = n[f"relu{index}"]
        if "pool" in then:
            n[f"pool{index}"] = bottom = max_pool(bottom, 3, 2)
        if "norm" in then:
            n[f"norm{index}"] = bottom = L.LRN(bottom, **ALEXNET_LRN)
    full_width, kernel = ALEXNET_FC
    return fully_conv(n, bottom, width(full_width), kernel, group=1)


def _googlenet_conv(n: NetSpec, name: str, relu: str, bottom: Top, num_output: int,
                    kernel: int = 1, pad: int = 0, stride: int = 1) -> Top:
    """A GoogLeNet convolution with its in-place ReLU; pad and stride written only where set."""
    fields = {"num_output": num_output, "kernel_size": kernel}
    if pad:
        fields["pad"] = pad
    if stride != 1:
        fields["stride"] = stride
    n[name], n[relu] = conv_relu(bottom, param=list(LEARNED), **fields, **GOOGLENET_FILLERS)
    return n[relu]


def inception(n: NetSpec, bottom: Top, module: str, widths: tuple[int, ...]) -> Top:
    """``inception_<module>/…``: 1×1, 1×1→3×3, 1×1→5×5 and 3×3/1 max pool→1×1, concatenated."""
    one, reduce3, three, reduce5, five, proj = widths
    p = f"inception_{module}/"
    branches = [_googlenet_conv(n, p + "1x1", p + "relu_1x1", bottom, one)]
    reduced = _googlenet_conv(n, p + "3x3_reduce", p + "relu_3x3_reduce", bottom, reduce3)
    branches.append(_googlenet_conv(n, p + "3x3", p + "relu_3x3", reduced, three, 3, pad=1))
    reduced = _googlenet_conv(n, p + "5x5_reduce", p + "relu_5x5_reduce", bottom, reduce5)
    branches.append(_googlenet_conv(n, p + "5x5", p + "relu_5x5", reduced, five, 5, pad=2))
    n[p + "pool"] = L.Pooling(bottom, pool="MAX", kernel_size=3, stride=1, pad=1)
    branches.append(_googlenet_conv(n, p + "pool_proj", p + "relu_pool_proj", n[p + "pool"], proj))
    n[p + "output"] = L.Concat(*branches)
    return n[p + "output"]


def googlenet_features(n: NetSpec, data: Top, width: Width, first_pad: int = 100,
                       after_module: Callable[[str, Top], None] | None = None) -> Top:
    """GoogLeNet's trunk, ``conv1/7x7_s2`` … ``inception_5b/output``, on ``data``.

    ``first_pad``: 100 for the FCN, 3 as the classifier has it; ``after_module(module, top)``
    is called after each inception module (before any pooling that follows it), where the
    classifier hangs its auxiliary heads, so layers are emitted in the model zoo's order.
    """
    bottom = _googlenet_conv(n, "conv1/7x7_s2", "conv1/relu_7x7", data, width(64), 7,
                             pad=first_pad, stride=2)
    n["pool1/3x3_s2"] = max_pool(bottom, 3, 2)
    n["pool1/norm1"] = L.LRN(n["pool1/3x3_s2"], **GOOGLENET_LRN)
    bottom = _googlenet_conv(n, "conv2/3x3_reduce", "conv2/relu_3x3_reduce", n["pool1/norm1"], width(64))
    bottom = _googlenet_conv(n, "conv2/3x3", "conv2/relu_3x3", bottom, width(192), 3, pad=1)
    n["conv2/norm2"] = L.LRN(bottom, **GOOGLENET_LRN)
    n["pool2/3x3_s2"] = bottom = max_pool(n["conv2/norm2"], 3, 2)
    for module, *full_widths in GOOGLENET_INCEPTION:
        bottom = inception(n, bottom, module, tuple(width(w) for w in full_widths))
        if after_module is not None:
            after_module(module, bottom)
        if module in GOOGLENET_POOLS:
            n[GOOGLENET_POOLS[module]] = bottom = max_pool(bottom, 3, 2)
    return bottom


def googlenet(n: NetSpec, data: Top, width: Width) -> Top:
    """FCN-GoogLeNet's trunk (CVPR 2015 Sec. 4.1, Table 1): ``googlenet_features`` with pad 100,
    no auxiliary classifiers, no final average pooling, the classifier's dropout 0.4 kept in
    place on ``inception_5b/output`` (see the module docstring); returns that top."""
    features = googlenet_features(n, data, width, first_pad=100)
    n["pool5/drop_7x7_s1"] = L.Dropout(features, dropout_ratio=GOOGLENET_DROPOUT, in_place=True)
    return n["pool5/drop_7x7_s1"]


def _classifier(bottom: Top, num_output: int) -> Top:
    return L.InnerProduct(bottom, num_output=num_output, param=list(LEARNED),
                          weight_filler={"type": "xavier"}, bias_filler={"type": "constant", "value": 0})


def googlenet_classifier(n: NetSpec, data: Top, width: Width, num_classes: int = 1000) -> Top:
    """The model zoo's GoogLeNet ILSVRC classifier on ``data`` (first convolution pad 3), its
    auxiliary classifiers ``loss1``/``loss2`` after inception 4a/4d (5×5/3 average pooling, 1×1
    convolution 128, fc 1024, dropout 0.7, classifier) and ``pool5/7x7_s1`` (7×7/1 average),
    ``pool5/drop_7x7_s1`` (0.4), ``loss3/classifier``; returns ``loss3/classifier``'s top."""

    def auxiliary(module: str, top: Top) -> None:
        if module not in GOOGLENET_AUX:
            return
        loss = GOOGLENET_AUX[module]
        n[f"{loss}/ave_pool"] = L.Pooling(top, pool="AVE", kernel_size=5, stride=3)
        bottom = _googlenet_conv(n, f"{loss}/conv", f"{loss}/relu_conv", n[f"{loss}/ave_pool"], width(128))
        n[f"{loss}/fc"] = L.InnerProduct(bottom, num_output=width(1024), param=list(LEARNED),
                                         **GOOGLENET_FILLERS)
        n[f"{loss}/relu_fc"] = L.ReLU(n[f"{loss}/fc"], in_place=True)
        n[f"{loss}/drop_fc"] = L.Dropout(n[f"{loss}/relu_fc"], dropout_ratio=0.7, in_place=True)
        n[f"{loss}/classifier"] = _classifier(n[f"{loss}/drop_fc"], num_classes)

    features = googlenet_features(n, data, width, first_pad=3, after_module=auxiliary)
    n["pool5/7x7_s1"] = L.Pooling(features, pool="AVE", kernel_size=7, stride=1)
    n["pool5/drop_7x7_s1"] = L.Dropout(n["pool5/7x7_s1"], dropout_ratio=GOOGLENET_DROPOUT, in_place=True)
    n["loss3/classifier"] = _classifier(n["pool5/drop_7x7_s1"], num_classes)
    return n["loss3/classifier"]


BACKBONES: dict[str, Callable[..., Top]] = {"vgg16": vgg16, "alexnet": alexnet, "googlenet": googlenet}

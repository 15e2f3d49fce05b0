"""The two backbones of the FCN family, described with ``reproduce.net.spec``: VGG16 and AlexNet.

Both are the ILSVRC classifiers made fully convolutional, as the reference ``net.py`` files
write them: the first convolution pads by 100 pixels (so that small inputs still reach
fc6), fc6/fc7 are convolutions (VGG16 7×7, AlexNet 6×6, then 1×1) each followed by ReLU and
Dropout 0.5, all in place. The stages are rows of a table, not written out one by one.

The VGG16 convolutions learn weights at lr×1 with decay and biases at lr×2 without decay
(``LEARNED``); the AlexNet net of the reference sets no ``param`` at all (Caffe's default
lr_mult 1, decay_mult 1 for both blobs) and writes ``group`` on every convolution.
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


BACKBONES: dict[str, Callable[..., Top]] = {"vgg16": vgg16, "alexnet": alexnet}

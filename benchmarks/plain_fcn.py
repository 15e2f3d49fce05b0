"""A plain PyTorch transcription of FCN-8s, the peer the size benchmark times our ``Net`` against.

Written the way a PyTorch user ports the Caffe net by hand (torchfcn's shape): ``nn.Conv2d``
with the first convolution padded by 100, in-place ReLU, ``nn.MaxPool2d(2, 2,
ceil_mode=True)``, fc6/fc7 as 7×7 and 1×1 convolutions, ``nn.ConvTranspose2d`` upsampling
without bias, and the crops at FCN-8s's fixed offsets (5 for pool4, 9 for pool3, 31 for the
score) — NCHW, every pixel convolved, no plan of any kind. It runs at any width: the layer
shapes are read from the ``reproduce`` net whose weights it copies, so the same weights
give the same score (the benchmark prints the deviation).
"""
from __future__ import annotations

import torch
from torch import nn

CONVS = ("conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
         "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3")
HEADS = ("fc6", "fc7", "score_fr", "score_pool4", "score_pool3")
UPSCORES = {"upscore2": 2, "upscore_pool4": 2, "upscore8": 8}


class PlainFCN8s(nn.Module):
    """FCN-8s as plain ``torch.nn`` modules, weights copied from a ``reproduce`` FCN-8s net."""

    def __init__(self, params):
        super().__init__()
        for name in CONVS + HEADS:
            weight, bias = params[name]
            out_ch, in_ch, kh, kw = weight.shape
            pad = 100 if name == "conv1_1" else (1 if name in CONVS else 0)
            conv = nn.Conv2d(in_ch, out_ch, (kh, kw), padding=pad)
            with torch.no_grad():
                conv.weight.copy_(weight)
                conv.bias.copy_(bias)
            setattr(self, name, conv)
        for name, stride in UPSCORES.items():
            (weight,) = params[name]
            deconv = nn.ConvTranspose2d(weight.shape[0], weight.shape[1], weight.shape[2:],
                                        stride=stride, bias=False)
            with torch.no_grad():
                deconv.weight.copy_(weight)
            setattr(self, name, deconv)
        self.pool = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        h = x
        pools = []
        for block in ((0, 2), (2, 4), (4, 7), (7, 10), (10, 13)):
            for name in CONVS[block[0]:block[1]]:
                h = self.relu(getattr(self, name)(h))
            h = self.pool(h)
            pools.append(h)
        h = self.relu(self.fc6(h))
        h = self.relu(self.fc7(h))
        h = self.upscore2(self.score_fr(h))
        pool4 = self.score_pool4(pools[3])[:, :, 5:5 + h.shape[2], 5:5 + h.shape[3]]
        h = self.upscore_pool4(h + pool4)
        pool3 = self.score_pool3(pools[2])[:, :, 9:9 + h.shape[2], 9:9 + h.shape[3]]
        h = self.upscore8(h + pool3)
        return h[:, :, 31:31 + x.shape[2], 31:31 + x.shape[3]].contiguous()

"""Local Response Normalization (Caffe's ``LRNLayer``), both regions, on 4-d blobs.

* ``ACROSS_CHANNELS``: ``y = x · (k + alpha/size · Σ x²)^(-beta)``, the sum over the ``size``
  channels centred on each channel (zero beyond the first/last channel).
* ``WITHIN_CHANNEL``: Caffe composes Power(x²) → AVE Pooling (kernel ``size``, pad
  ``(size-1)/2``, stride 1) → Power(shift 1, scale alpha, power -beta) → product, i.e.
  ``y = x · (1 + alpha · avg x²)^(-beta)`` — note the shift is 1, *not* ``k``. With that pad
  and stride every window, clipped to ``H + pad`` by Caffe's AVE rule, still counts
  ``size²`` cells, so the average is the zero-padded sum divided by ``size²``.

``local_size`` must be odd, as Caffe checks. Any channel count works, as in Caffe (whose
``padded_square`` holds ``channels + size - 1`` rows): a blob with fewer channels than
``size`` (a width-reduced GoogLeNet's 4-channel ``pool1/norm1``) is zero-padded explicitly,
since PyTorch's pooling refuses a window larger than its unpadded input; adding those zeros
changes no sum.
"""
from __future__ import annotations

import torch.nn.functional as F

from .base import ElementwiseLayer
from .registry import register


@register("LRN")
class LRN(ElementwiseLayer):
    """Caffe's LRN layer (see the module docstring)."""

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        p = layer_param.lrn_param
        self.size = int(p.local_size)
        if self.size % 2 != 1:
            raise self.error(f"LRN only supports odd values for local_size, got {self.size}")
        self.pre_pad = (self.size - 1) // 2
        self.alpha, self.beta, self.k = float(p.alpha), float(p.beta), float(p.k)
        self.region = p.norm_region
        if len(bottom_shapes[0]) != 4:
            raise self.error(f"input must have 4 axes, got {tuple(bottom_shapes[0])}")

    def forward(self, x):
        square = x * x
        if self.region == "ACROSS_CHANNELS":
            pad = self.pre_pad
            if square.shape[1] < self.size:   # fewer channels than the window: pad them here
                square, pad = F.pad(square, (0, 0, 0, 0, pad, pad)), 0
            window_mean = F.avg_pool3d(square.unsqueeze(1), (self.size, 1, 1), stride=1,
                                       padding=(pad, 0, 0),
                                       count_include_pad=True).squeeze(1)
            scale = window_mean * self.alpha + self.k
        else:
            window_mean = F.avg_pool2d(square, self.size, stride=1, padding=self.pre_pad,
                                       count_include_pad=True)
            scale = window_mean * self.alpha + 1.0
        return (x * scale.pow(-self.beta),)

    def extra_repr(self):
        return (f"{super().extra_repr()}, {self.region}, size={self.size}, alpha={self.alpha}, "
                f"beta={self.beta}, k={self.k}")

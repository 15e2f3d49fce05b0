"""The memory layout a small CPU convolution runs in, chosen per call from its shapes.

Inference runs channels-last (``Net.use_channels_last``), which oneDNN convolves fastest.
But ATen sends a small input (batch 1, at most 20,480 values, a kernel of at most 3×3, one
group) to its own im2col + GEMM path instead of oneDNN, and that path is 3–6× slower on a
channels-last input of 1–3 channels than on the same input in NCHW. That is conv1_1 of a
net on a small image: the tiny-width FCN-8s at 64×80 convolves its 1×3×68×84 window
(3 → 4 channels) in 183–354 µs channels-last, 44–88 µs NCHW with the conversions (one
thread, AVX-512 EPYC; BENCHMARKS.md, "Small inputs"). With 64 outputs (full width) the
NCHW result's conversion back costs more than it saves (507 vs 569 µs), so only narrow
outputs take it. The products and sums are the same kernel's on the same values; only
the layout of the copy differs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# ATen's limit for its slow path on a batch-1, ≤3×3, one-group convolution (``use_mkldnn``
# in ATen's Convolution.cpp): above it oneDNN convolves, fastest channels-last
NCHW_MAX_INPUT_VALUES = 20480
NCHW_MAX_IN_CHANNELS = 3
NCHW_MAX_OUT_CHANNELS = 16


def runs_nchw(x: torch.Tensor, weight: torch.Tensor, groups: int) -> bool:
    """Whether ``conv2d`` convolves this channels-last input in NCHW (module docstring)."""
    return (x.dim() == 4 and x.device.type == "cpu" and groups == 1
            and weight.shape[1] <= NCHW_MAX_IN_CHANNELS
            and weight.shape[0] <= NCHW_MAX_OUT_CHANNELS
            and x.numel() <= NCHW_MAX_INPUT_VALUES
            and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
            and not (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)))


def conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride, padding,
           dilation, groups: int, keep_layout: bool = True) -> torch.Tensor:
    """``F.conv2d``, in NCHW where that is faster (``runs_nchw``); the result is in ``x``'s
    layout if ``keep_layout``, else possibly NCHW (for a caller that copies it anyway)."""
    if not runs_nchw(x, weight, groups):
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    y = F.conv2d(x.contiguous(), weight, bias, stride, padding, dilation, groups)
    return y.contiguous(memory_format=torch.channels_last) if keep_layout else y

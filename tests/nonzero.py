"""Non-zero weights for test nets, and the check that a net's output means something.

A net built from a prototxt without fillers has all-zero weights, so its output is zero (or a
constant) and comparing two such outputs proves nothing. ``randomize(net)`` draws every
parameter blob: weights from a normal scaled by ``sqrt(2 / fan_in)`` (msra, so activations
keep their size through VGG's sixteen layers), biases from a small normal, BatchNorm's
statistics kept valid; the fixed ``up*`` deconvolutions too unless ``keep_fixed`` (then they
keep what they have, e.g. bilinear kernels). ``assert_varies(x)`` fails on an output that is
constant — all zeros included.
"""
from __future__ import annotations

import numpy as np
import torch


def randomize(net, seed: int = 0, keep_fixed: bool = False, bias_std: float = 0.1):
    """Every parameter blob of ``net`` drawn from a seeded normal (see the module docstring)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, blobs in net.params.items():
            layer_type = net.layer(name).layer_type
            if keep_fixed and not any(blob.requires_grad for blob in blobs):
                continue
            for i, blob in enumerate(blobs):
                noise = torch.randn(blob.shape, generator=generator)
                if layer_type == "BatchNorm":
                    value = noise.abs() + (2.0 if i == 2 else 0.5)
                elif i == 0 and blob.dim() > 1:
                    value = noise * (2.0 / (blob.numel() / blob.shape[0])) ** 0.5
                else:
                    value = noise * bias_std
                blob.copy_(value)
    return net


def assert_varies(values, what: str = "output") -> None:
    """``values`` (tensor or array) is finite and not constant."""
    array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    assert np.isfinite(array).all(), f"{what}: not finite"
    assert array.size > 1 and float(array.max()) > float(array.min()), \
        f"{what} is constant ({float(array.flat[0])}): the net's weights prove nothing"

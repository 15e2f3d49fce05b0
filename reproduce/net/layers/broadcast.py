"""The axis rule Scale and Bias share (``scale_layer.cpp``, ``bias_layer.cpp``).

A learned (or second-bottom) operand of shape ``S`` applies to bottom 0 at axes
``axis … axis + len(S) - 1``; it must equal bottom 0's shape there. A learned operand takes
bottom 0's shape from ``axis`` over ``num_axes`` axes (-1: to the end). A 0-axis operand is
a scalar and ignores ``axis``.
"""
from __future__ import annotations

from typing import Sequence

import torch

from .base import CaffeLayer


def learned_shape(layer: CaffeLayer, bottom: Sequence[int], axis: int, num_axes: int) -> tuple:
    """Shape of the learned operand: ``bottom[axis : axis + num_axes]`` (-1: to the end)."""
    axis = layer.canonical_axis(axis, len(bottom))
    if num_axes < -1:
        raise layer.error("num_axes must be non-negative, or -1 to extend to the end of bottom[0]")
    if num_axes >= 0 and len(bottom) < axis + num_axes:
        raise layer.error(f"operand shape extends past bottom[0]'s shape {tuple(bottom)} "
                          f"from axis {axis}")
    return tuple(bottom[axis:] if num_axes == -1 else bottom[axis:axis + num_axes])


def broadcast_view_shape(layer: CaffeLayer, bottom: Sequence[int], operand: Sequence[int],
                         axis: int) -> tuple:
    """``operand``'s shape padded with 1s so it broadcasts against ``bottom`` at ``axis``."""
    if len(operand) == 0:
        return (1,) * len(bottom)
    axis = layer.canonical_axis(axis, len(bottom))
    if len(bottom) < axis + len(operand) or \
            tuple(bottom[axis:axis + len(operand)]) != tuple(operand):
        raise layer.error(f"operand shape {tuple(operand)} does not match bottom[0] shape "
                          f"{tuple(bottom)} from axis {axis}")
    return (1,) * axis + tuple(operand) + (1,) * (len(bottom) - axis - len(operand))


def apply(layer: CaffeLayer, x: torch.Tensor, operand: torch.Tensor, axis: int) -> torch.Tensor:
    """``operand`` reshaped to broadcast against ``x`` (see ``broadcast_view_shape``)."""
    return operand.reshape(broadcast_view_shape(layer, x.shape, operand.shape, axis))

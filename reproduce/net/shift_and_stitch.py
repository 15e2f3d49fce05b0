"""Shift-and-stitch: dense output from a coarse net by running it on shifted inputs (CVPR 2015 Sec. 3.2).

Long, Shelhamer and Darrell (arXiv 1411.4038, Sec. 3.2): "If the outputs are downsampled by a
factor of f, shift the input x pixels to the right and y pixels down, once for every (x, y)
such that 0 ≤ x, y < f. Process each of these f² inputs, and interlace the outputs so that
the predictions correspond to the pixels at the centers of their receptive fields."

``shift_and_stitch(net, factor, **inputs)`` → ``{output blob: dense tensor}``. With ``S`` the
total stride of the net's outputs (read off the coordinate maps, ``reproduce.net.coord_map``;
every output must have the same, and ``factor`` must divide it) and ``t = S / factor``:

    dense[..., factor·k + i, factor·l + j] = net(input[..., i·t:, j·t:])[..., k, l]

for ``0 ≤ i, j < factor``, over the positions ``k, l`` that every one of the ``factor²``
shifted inputs produces. With ``factor = S`` the shifts are the paper's single pixels and the
output has one prediction per input pixel (offset as the coordinate map says); a smaller
factor gives the evenly spaced grid of stride ``t`` (a shift of ``t`` pixels moves a coarse
output by ``1/factor`` of a cell). This is what ``reproduce.rarefy`` computes in one pass.

Cost: ``factor²`` forward passes, each on nearly the whole input (BENCHMARKS.md). The net
runs as it is (its device, its grad mode); the interlacing is slicing on that device.

Refused with one error: a factor that is not a positive integer or does not divide the
output stride, outputs without a coordinate map to the inputs or with different strides,
inputs that are not N×C×H×W, and an input too small for the largest shift (or one the net
then refuses, with the shift named).
"""
from __future__ import annotations

from fractions import Fraction
from typing import Any

import torch

from reproduce.caffe.schema import Message

from .coord_map import BlobGraph, CoordMapError
from .rarefy import RarefyError, check_factor

__all__ = ["ShiftAndStitchError", "shift_and_stitch", "output_stride", "net_parameter"]


class ShiftAndStitchError(ValueError):
    """A net, factor or input that shift-and-stitch cannot take."""


def net_parameter(net) -> Message:
    """The NetParameter of a ``reproduce.Net`` (its kept layers, in order)."""
    param = Message("NetParameter", name=net.name)
    param.layer = [layer.layer_param for layer in net.layer_dict.values()]
    return param


def output_stride(net) -> tuple[int, int]:
    """The (h, w) stride, in input pixels, of every output of ``net`` (a ``reproduce.Net``)
    with respect to every input — one pair for all, or ``ShiftAndStitchError``."""
    graph = BlobGraph(net_parameter(net))
    strides: dict[tuple[str, str], tuple[Fraction, ...]] = {}
    for output in net.outputs:
        for name in net.inputs:
            try:
                m = graph.map_from_to(graph.blob(output), graph.blob(name))
            except CoordMapError as err:
                raise ShiftAndStitchError(f"output {output!r} of net {net.name!r} has no "
                                          f"coordinate map to input {name!r} ({err}); "
                                          f"shift-and-stitch needs spatial outputs") from None
            if m.axis not in (1, None):
                raise ShiftAndStitchError(f"output {output!r} maps to input {name!r} along axis "
                                          f"{m.axis}; shift-and-stitch takes N×C×H×W blobs")
            scale = m.scale * 2 if len(m.scale) == 1 else m.scale
            strides[(output, name)] = scale
    distinct = set(strides.values())
    if len(distinct) != 1:
        listing = ", ".join(f"{o!r} from {i!r}: {'×'.join(map(str, s))}"
                            for (o, i), s in strides.items())
        raise ShiftAndStitchError(f"the outputs of net {net.name!r} have different strides "
                                  f"({listing}); one shift cannot serve them all")
    stride = distinct.pop()
    if any(s.denominator != 1 or s < 1 for s in stride):
        raise ShiftAndStitchError(f"net {net.name!r}: its outputs have stride "
                                  f"{'×'.join(map(str, stride))} in input pixels, not a whole "
                                  f"subsampling; nothing to shift and stitch")
    return int(stride[0]), int(stride[1])


def shift_and_stitch(net, factor: int, /, **inputs: Any) -> dict[str, torch.Tensor]:
    """``{output blob: dense tensor}`` from ``factor²`` passes of ``net`` over shifted inputs
    (see the module docstring; CVPR 2015 Sec. 3.2)."""
    try:
        factor = check_factor(factor)
    except RarefyError as err:
        raise ShiftAndStitchError(str(err)) from None
    stride = output_stride(net)
    if stride[0] % factor or stride[1] % factor:
        raise ShiftAndStitchError(f"factor {factor} does not divide the output stride "
                                  f"{stride[0]}×{stride[1]} of net {net.name!r}")
    step = (stride[0] // factor, stride[1] // factor)
    if set(inputs) != set(net.inputs):
        raise ShiftAndStitchError(f"net {net.name!r} takes inputs {net.inputs}, got "
                                  f"{sorted(inputs)}")
    tensors = {}
    for name, value in inputs.items():
        tensor = value if isinstance(value, torch.Tensor) else torch.as_tensor(value)
        if tensor.dim() != 4:
            raise ShiftAndStitchError(f"input {name!r} has shape {tuple(tensor.shape)}; "
                                      f"shift-and-stitch takes N×C×H×W inputs")
        height, width = tensor.shape[2:]
        need = ((factor - 1) * step[0] + 1, (factor - 1) * step[1] + 1)
        if height < need[0] or width < need[1]:
            raise ShiftAndStitchError(f"input {name!r} is {height}×{width}: too small for "
                                      f"shift-and-stitch by {factor}, whose largest shift removes "
                                      f"{need[0] - 1} rows and {need[1] - 1} columns")
        tensors[name] = tensor
    passes: dict[tuple[int, int], dict[str, torch.Tensor]] = {}
    for i in range(factor):
        for j in range(factor):
            shifted = {name: t[:, :, i * step[0]:, j * step[1]:] for name, t in tensors.items()}
            try:
                passes[(i, j)] = net.forward(**shifted)
            except ValueError as err:
                raise ShiftAndStitchError(
                    f"shift-and-stitch by {factor}: net {net.name!r} refused the input shifted by "
                    f"{i * step[0]} rows and {j * step[1]} columns "
                    f"({', '.join(f'{n}: {tuple(t.shape)}' for n, t in shifted.items())}): {err}"
                ) from None
    dense = {}
    for output in passes[(0, 0)]:
        outs = [passes[key][output] for key in sorted(passes)]
        rows = min(o.shape[2] for o in outs)
        cols = min(o.shape[3] for o in outs)
        first = outs[0]
        result = first.new_empty((*first.shape[:2], factor * rows, factor * cols))
        for (i, j), out in zip(sorted(passes), outs):
            result[:, :, i::factor, j::factor] = out[:, :, :rows, :cols]
        dense[output] = result
    return dense

"""Interp (DeepLab v2's and PSPNet's ``InterpLayer``, a fork layer): bilinear resize, corners aligned.

As the fork (``interp_layer.cpp``, ``caffe_cpu_interp2``), with ``interp_param`` (the fork's
field 143, ``reproduce.caffe.proto_tables``): the input is first cut by ``pad_beg``/``pad_end``
(both ``<= 0``: negative pads crop), giving the effective size ``H_eff = H + pad_beg + pad_end``;
the output size is, in the fork's order of precedence,

* ``shrink_factor`` alone: ``(H_eff - 1) / shrink_factor + 1`` (integer division);
* ``zoom_factor`` alone: ``H_eff + (H_eff - 1) * (zoom_factor - 1)``;
* ``height`` and ``width``: those;
* ``shrink_factor`` and ``zoom_factor``: shrink, then zoom;
* a second bottom: its height and width.

Output pixel ``h2`` reads input row ``h1r = h2 * (H_eff - 1) / (H_out - 1)`` (0 for a one-row
output), ``h1 = floor(h1r)``, weights ``1 - λ``/``λ`` with ``λ = h1r - h1`` on rows ``h1`` and
``h1 + 1`` (``h1`` alone on the last row), and the same along the width — computed in float32
as the fork does. No parameters; exportable (sizes follow the input).
"""
from __future__ import annotations

import torch

from ..plain import plain
from .base import CaffeLayer
from .registry import register


@register("Interp")
class Interp(CaffeLayer):
    """The fork's Interp layer (see the module docstring)."""

    bottoms = (1, 2)

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        p = layer_param.interp_param
        self.pad_beg, self.pad_end = int(p.pad_beg), int(p.pad_end)
        if self.pad_beg > 0 or self.pad_end > 0:
            raise self.error(f"Only supports non-pos padding (cropping) for now (pad_beg "
                             f"{self.pad_beg}, pad_end {self.pad_end})")
        if len(bottom_shapes[0]) != 4:
            raise self.error(f"takes a 4-axis bottom, got shape {tuple(bottom_shapes[0])}")
        self.top_shapes(bottom_shapes)

    def _out_size(self, h_eff: int, w_eff: int, reference=None) -> tuple[int, int]:
        p = self.layer_param.interp_param
        shrink, zoom = int(p.shrink_factor), int(p.zoom_factor)
        if p.has("shrink_factor") and not p.has("zoom_factor"):
            if shrink < 1:
                raise self.error(f"Shrink factor must be positive, got {shrink}")
            out = ((h_eff - 1) // shrink + 1, (w_eff - 1) // shrink + 1)
        elif p.has("zoom_factor") and not p.has("shrink_factor"):
            if zoom < 1:
                raise self.error(f"Zoom factor must be positive, got {zoom}")
            out = (h_eff + (h_eff - 1) * (zoom - 1), w_eff + (w_eff - 1) * (zoom - 1))
        elif p.has("height") and p.has("width"):
            out = (int(p.height), int(p.width))
        elif p.has("shrink_factor") and p.has("zoom_factor"):
            if shrink < 1 or zoom < 1:
                raise self.error(f"Shrink and zoom factors must be positive, got {shrink}, {zoom}")
            h, w = (h_eff - 1) // shrink + 1, (w_eff - 1) // shrink + 1
            out = (h + (h - 1) * (zoom - 1), w + (w - 1) * (zoom - 1))
        elif reference is not None:
            out = (int(reference[-2]), int(reference[-1]))
        else:
            raise self.error("give interp_param a zoom_factor, shrink_factor, height and width, "
                             "or the layer a second bottom to take the size of")
        if plain():   # traced with symbolic sizes: the checks ran when the net was built
            return out
        if h_eff <= 0 or w_eff <= 0 or out[0] <= 0 or out[1] <= 0:
            raise self.error(f"sizes must be positive (input {h_eff}x{w_eff} after padding, "
                             f"output {out[0]}x{out[1]})")
        return out

    def top_shapes(self, bottom_shapes):
        n, c, h, w = bottom_shapes[0]
        pads = self.pad_beg + self.pad_end
        ref = bottom_shapes[1] if len(bottom_shapes) > 1 else None
        return [(n, c) + self._out_size(h + pads, w + pads, ref)]

    def forward(self, x, reference=None):
        h, w = x.shape[-2], x.shape[-1]
        pads = self.pad_beg + self.pad_end
        ref = reference.shape if reference is not None else None
        h_out, w_out = self._out_size(h + pads, w + pads, ref)
        if pads:
            x = x[..., -self.pad_beg:h + self.pad_end, -self.pad_beg:w + self.pad_end]
        rows = _taps(x.shape[-2], h_out, x.device)
        cols = _taps(x.shape[-1], w_out, x.device)
        (r0, r1, rl0, rl1), (c0, c1, cl0, cl1) = rows, cols
        # the fork's order: along the width first, then between the two rows
        top = x.index_select(-1, c0) * cl0 + x.index_select(-1, c1) * cl1
        return (top.index_select(-2, r0) * rl0[:, None] + top.index_select(-2, r1) * rl1[:, None],)


def _taps(size_in, size_out, device):
    """The fork's source rows (``h1``, ``h1 + h1p``) and weights (``h0lambda``, ``h1lambda``).

    Tensor arithmetic throughout (the ratio a float32 division, as the fork's), so that sizes
    stay symbolic when exported; a one-pixel output reads row 0 whatever the ratio."""
    f32 = torch.float32
    ratio = ((torch.ones((), dtype=f32, device=device) * (size_in - 1))
             / (torch.ones((), dtype=f32, device=device) * (size_out - 1)).clamp(min=1))
    pos = torch.arange(size_out, device=device, dtype=f32) * ratio
    first = pos.to(torch.int64)
    second = torch.minimum(first + 1, torch.full_like(first, 0) + (size_in - 1))
    lam1 = pos - first.to(f32)
    return first, second, 1 - lam1, lam1

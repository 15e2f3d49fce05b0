"""PriorBox (SSD's ``PriorBoxLayer``, a fork layer): the default boxes of one feature map.

As the fork (``prior_box_layer.cpp``), with ``prior_box_param`` (the fork's field 203). Bottoms:
the feature map and the image (whose sizes are read, never its values). The aspect ratios are 1,
then each given ratio not already listed (within 1e-6) and, with ``flip``, its reciprocal.
For every cell ``(h, w)`` — centre ``((w + offset) * step_w, (h + offset) * step_h)``, the steps
being ``step``/``step_h``/``step_w`` or image size / map size — and every ``min_size`` (taken as
an integer, as the fork's ``int min_size_`` does): a square of side ``min_size``, then (with
``max_size``) one of side ``sqrt(min_size * max_size)``, then one box per ratio ``r ≠ 1`` of
``min_size·√r × min_size/√r``; corners are divided by the image size (``img_size``/``img_h``/
``img_w`` if given), clipped to [0, 1] with ``clip``. Top: ``1×2×(H·W·priors·4)``, channel 0 the
boxes, channel 1 the ``variance`` (one value for all, four per box, or 0.1). Exportable.
"""
from __future__ import annotations

import math

import torch

from .base import CaffeLayer
from .registry import register


@register("PriorBox")
class PriorBox(CaffeLayer):
    """SSD's PriorBox layer (see the module docstring)."""

    bottoms = (2, 2)

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        p = layer_param.prior_box_param
        self.min_sizes = [float(v) for v in p.min_size]
        if not self.min_sizes:
            raise self.error("must provide min_size")
        if any(v <= 0 for v in self.min_sizes):
            raise self.error(f"min_size must be positive, got {self.min_sizes}")
        self.max_sizes = [float(v) for v in p.max_size]
        if self.max_sizes:
            if len(self.max_sizes) != len(self.min_sizes):
                raise self.error(f"give one max_size per min_size ({len(self.min_sizes)}), got "
                                 f"{len(self.max_sizes)}")
            for lo, hi in zip(self.min_sizes, self.max_sizes):
                if hi <= lo:
                    raise self.error(f"max_size must be greater than min_size ({hi} <= {lo})")
        ratios = [1.0]
        for r in p.aspect_ratio:
            r = float(r)
            if any(abs(r - known) < 1e-6 for known in ratios):
                continue
            ratios.append(r)
            if p.flip:
                ratios.append(1.0 / r)
        self.ratios = ratios
        self.num_priors = len(ratios) * len(self.min_sizes) + len(self.max_sizes)
        variance = [float(v) for v in p.variance]
        if len(variance) > 1 and len(variance) != 4:
            raise self.error(f"give 1 or 4 variance values, got {len(variance)}")
        if any(v <= 0 for v in variance):
            raise self.error(f"variance must be positive, got {variance}")
        self.variance = variance or [0.1]
        if p.has("img_size") and (p.has("img_h") or p.has("img_w")):
            raise self.error("Either img_size or img_h/img_w should be specified; not both.")
        self.img_h = int(p.img_size if p.has("img_size") else p.img_h)
        self.img_w = int(p.img_size if p.has("img_size") else p.img_w)
        if p.has("step") and (p.has("step_h") or p.has("step_w")):
            raise self.error("Either step or step_h/step_w should be specified; not both.")
        self.step_h = float(p.step if p.has("step") else p.step_h)
        self.step_w = float(p.step if p.has("step") else p.step_w)
        self.offset = float(p.offset)
        self.clip = bool(p.clip)
        self.top_shapes(bottom_shapes)

    def top_shapes(self, bottom_shapes):
        h, w = bottom_shapes[0][-2:]
        return [(1, 2, int(h) * int(w) * self.num_priors * 4)]

    def forward(self, feature, image):
        layer_h, layer_w = feature.shape[-2], feature.shape[-1]
        img_h = self.img_h if self.img_h and self.img_w else image.shape[-2]
        img_w = self.img_w if self.img_h and self.img_w else image.shape[-1]
        f32 = torch.float32
        if self.step_h == 0 or self.step_w == 0:   # float32 division, as the fork's
            one = torch.ones((), dtype=f32)           # (tensor arithmetic: sizes stay symbolic)
            step_h = (one * img_h) / (one * layer_h)
            step_w = (one * img_w) / (one * layer_w)
        else:
            step_h, step_w = torch.tensor(self.step_h, dtype=f32), torch.tensor(self.step_w, dtype=f32)
        cy = (torch.arange(layer_h, dtype=f32) + self.offset) * step_h     # float, as the fork's
        cx = (torch.arange(layer_w, dtype=f32) + self.offset) * step_w
        sizes = []   # (box width, box height), float32 as the fork's, in its order
        for s, min_size in enumerate(self.min_sizes):
            side = float(int(min_size))
            sizes.append((side, side))
            if self.max_sizes:
                big = float(torch.tensor(math.sqrt(int(min_size) * int(self.max_sizes[s])),
                                         dtype=f32))
                sizes.append((big, big))
            for r in self.ratios:
                if abs(r - 1.0) < 1e-6:
                    continue
                root = torch.sqrt(torch.tensor(r, dtype=f32))
                sizes.append((float(side * root), float(side / root)))
        half = torch.tensor(sizes, dtype=torch.float64) / 2.0                # (P, 2)
        cx = cx.double()[None, :, None]
        cy = cy.double()[:, None, None]
        boxes = torch.stack([
            (cx - half[:, 0]).expand(layer_h, layer_w, -1) / img_w,
            (cy - half[:, 1]).expand(layer_h, layer_w, -1) / img_h,
            (cx + half[:, 0]).expand(layer_h, layer_w, -1) / img_w,
            (cy + half[:, 1]).expand(layer_h, layer_w, -1) / img_h,
        ], dim=-1).to(f32).reshape(-1)
        if self.clip:
            boxes = boxes.clamp(0.0, 1.0)
        variance = torch.tensor(self.variance, dtype=f32)
        variance = variance.repeat(boxes.numel() // variance.numel())
        return (torch.stack([boxes, variance]).unsqueeze(0).to(feature.device),)

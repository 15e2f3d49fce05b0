"""DummyData (Caffe's ``DummyDataLayer``): tops filled by fillers, no bottoms.

As Caffe: ``dummy_data_param`` gives the top shapes either as ``shape`` (one for every top,
or one per top) or in the legacy ``num``/``channels``/``height``/``width`` form (each given
once or once per top), and 0, 1 or one ``data_filler`` per top (none: constant 0). A top whose
filler is ``constant`` is filled once when the layer is set up and then left alone — the same
tensor is returned by every forward, so what a caller writes into it stays, as in Caffe,
where ``refill_`` is false for it — every other top is refilled on every forward.

A data source, not an input: the net runs it like any layer (nothing is fed to its tops).
"""
from __future__ import annotations

from reproduce.caffe.schema import Message

from ..fillers import fill
from .base import CaffeLayer
from .registry import register


@register("DummyData")
class DummyData(CaffeLayer):
    """Caffe's DummyData layer (see the module docstring)."""

    bottoms = (0, 0)
    tops = (1, None)

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        p = layer_param.dummy_data_param
        num_top = len(layer_param.top)
        fillers = list(p.data_filler)
        if len(fillers) not in (0, 1, num_top):
            raise self.error(f"give 0, 1 or {num_top} data_filler (one per top), "
                             f"got {len(fillers)}")
        legacy = [list(p.num), list(p.channels), list(p.height), list(p.width)]
        if any(legacy):
            if p.shape:
                raise self.error("give either shape or the legacy num/channels/height/width")
            for values in legacy:
                if len(values) not in (1, num_top):
                    raise self.error(f"num, channels, height and width must each be given 1 "
                                     f"or {num_top} times")
            self.shapes = [tuple(int(v[0 if len(v) == 1 else i]) for v in legacy)
                           for i in range(num_top)]
        else:
            if len(p.shape) not in (1, num_top):
                raise self.error(f"give 1 or {num_top} shape (one per top), got {len(p.shape)}")
            self.shapes = [tuple(int(d) for d in p.shape[0 if len(p.shape) == 1 else i].dim)
                           for i in range(num_top)]
        if not fillers:
            fillers = [Message("FillerParameter", type="constant", value=0.0)]
        self.fillers = [fillers[0 if len(fillers) == 1 else i] for i in range(num_top)]
        self.refill = [f.type != "constant" for f in self.fillers]
        for i, (shape, filler) in enumerate(zip(self.shapes, self.fillers)):
            if not self.refill[i]:
                self.register_buffer(f"kept{i}", self._fill(filler, shape), persistent=False)

    def _fill(self, filler, shape):
        if 0 in shape:
            import torch

            return torch.zeros(shape)
        return fill(filler, shape, self.generator, owner=self.layer_name)

    def top_shapes(self, bottom_shapes):
        return list(self.shapes)

    def forward(self):
        device = next((b.device for b in self.buffers()), None)
        tops = []
        for i, (shape, filler) in enumerate(zip(self.shapes, self.fillers)):
            if self.refill[i]:
                top = self._fill(filler, shape)
                tops.append(top if device is None else top.to(device))
            else:
                tops.append(getattr(self, f"kept{i}"))
        return tuple(tops)

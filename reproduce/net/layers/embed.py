"""Embed (Caffe's ``EmbedLayer``): a lookup table, ``top[…, :] = W[index] (+ b)``.

Bottom values are indices in ``[0, input_dim)`` given as floats (truncated to int, as Caffe's
``static_cast<int>``); the top appends a ``num_output`` axis. Blobs: ``W`` of shape
``(input_dim, num_output)`` (``weight_filler``) and, with ``bias_term``, ``b`` of
``(num_output,)`` (``bias_filler``). Backward accumulates each looked-up row's diff into ``W``
and the sum into ``b``; indices get no gradient (Caffe refuses to backpropagate to them).
An index outside the table raises, where Caffe's release build would read out of bounds.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import CaffeLayer
from .registry import register


@register("Embed")
class Embed(CaffeLayer):
    """Caffe's Embed layer (see the module docstring)."""

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        p = layer_param.embed_param
        self.num_output, self.input_dim = int(p.num_output), int(p.input_dim)
        if self.num_output <= 0 or self.input_dim <= 0:
            raise self.error("num_output and input_dim must be positive")
        self.bias_term = bool(p.bias_term)
        self.add_blob((self.input_dim, self.num_output), p.weight_filler)
        if self.bias_term:
            self.add_blob((self.num_output,), p.bias_filler)

    def top_shapes(self, bottom_shapes):
        return [tuple(bottom_shapes[0]) + (self.num_output,)]

    def forward(self, index):
        index = index.detach().to(torch.int64)
        if not torch.compiler.is_compiling() and index.numel() and not (
                torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()):
            low, high = int(index.min()), int(index.max())
            if low < 0 or high >= self.input_dim:
                raise self.error(f"index {low if low < 0 else high} out of the table's range "
                                 f"[0, {self.input_dim})")
        top = F.embedding(index, self.weight)
        return (top + self.bias if self.bias_term else top,)

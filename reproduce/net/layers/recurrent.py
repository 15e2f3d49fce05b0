"""RNN and LSTM (Caffe's ``RecurrentLayer`` with ``RNNLayer`` / ``LSTMLayer``), and LSTMUnit.

Caffe unrolls a recurrent layer into a net over ``T`` time steps; here the same computation
runs as a loop over the steps, with the unrolled net's parameter blobs in its order. Bottoms:
``x`` ``(T, N, …)``, ``cont`` ``(T, N)`` (0 at a sequence start: the previous hidden state
— and for the LSTM the previous cell's contribution — is cut), optionally ``x_static``
``(N, …)`` seen at every step, and with ``recurrent_param.expose_hidden`` the initial states
(``h_0``, and ``c_0`` for the LSTM, each ``(1, N, num_output)``; zeros otherwise) — with the
final states as extra tops (``h_T``; ``h_T``, ``c_T``). As in Caffe (9b89154) the exposed
states share data only: no gradient reaches ``h_0``/``c_0``, none flows back from
``h_T``/``c_T`` (a truncated-BPTT boundary).

* RNN: ``h_t = tanh(W_hh·(cont_t·h_{t−1}) + W_xh·x_t + b_h [+ W_xh_static·x_static])``,
  ``o_t = tanh(W_ho·h_t + b_o)``; top ``o`` ``(T, N, num_output)``. Blobs: W_xh, b_h,
  [W_xh_static], W_hh, W_ho, b_o.
* LSTM: gates ``W_hc·(cont_t·h_{t−1}) + W_xc·x_t + b_c [+ W_xc_static·x_static]`` split into
  ``i, f, o, g`` (Caffe's order) and applied by LSTMUnit; top ``h`` ``(T, N, num_output)``.
  Blobs: W_xc, b_c, [W_xc_static], W_hc.
* LSTMUnit (Caffe's ``LSTMUnitLayer``): bottoms ``c_{t−1}`` ``(1, N, D)``, gates ``(1, N,
  4D)``, ``cont`` ``(1, N)``; ``i = σ(·), f = cont·σ(·), o = σ(·), g = tanh(·)``, ``c = f·c_{t−1}
  + i·g``, ``h = o·tanh(c)``; tops ``c``, ``h``.

The number of time steps is the one the layer was built for (Caffe unrolls once and CHECKs
it); the number of streams N may change. Weights are filled by ``weight_filler`` (every matrix) and ``bias_filler``. Backward is the
unrolled net's, i.e. the exact derivative through every step (autograd); ``cont`` gets none.
"""
from __future__ import annotations

import torch

from .base import CaffeLayer, count
from .registry import register


def lstm_unit(c_prev, gates, cont):
    """One LSTMUnit step: ``(c, h)`` from ``c_prev`` (N, D), ``gates`` (N, 4D), ``cont`` (N, 1)."""
    i, f, o, g = gates.chunk(4, dim=-1)
    f = cont * torch.sigmoid(f)
    c = f * c_prev + torch.sigmoid(i) * torch.tanh(g)
    return c, torch.sigmoid(o) * torch.tanh(c)


@register("LSTMUnit")
class LSTMUnit(CaffeLayer):
    """Caffe's LSTMUnit layer (see the module docstring)."""

    bottoms = (3, 3)
    tops = (2, 2)

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        self.top_shapes(bottom_shapes)

    def top_shapes(self, bottom_shapes):
        c, x, cont = (tuple(s) for s in bottom_shapes)
        if len(c) != 3 or c[0] != 1 or x[:2] != c[:2] or x[2:] != (4 * c[2],) or cont != c[:2]:
            raise self.error(f"bottoms must be c (1, N, D), gates (1, N, 4D), cont (1, N); "
                             f"got {c}, {x}, {cont}")
        return [c, c]

    def forward(self, c_prev, gates, cont):
        c, h = lstm_unit(c_prev[0], gates[0], cont.detach()[0].unsqueeze(-1).to(gates.dtype))
        return c.unsqueeze(0), h.unsqueeze(0)


class _Recurrent(CaffeLayer):
    bottoms = (2, 5)
    tops = (1, 3)
    states = 1            # recurrent state blobs: RNN h; LSTM h and c
    gate_factor = 1

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        p = layer_param.recurrent_param
        self.num_output = int(p.num_output)
        if self.num_output <= 0:
            raise self.error("num_output must be positive")
        self.expose_hidden = bool(p.expose_hidden)
        exposed = self.states if self.expose_hidden else 0
        x, cont = (tuple(s) for s in bottom_shapes[:2])
        if len(x) < 2:
            raise self.error(f"x must have at least 2 axes (T, N, …), got {x}")
        self.static_input = len(bottom_shapes) > 2 + exposed
        if len(bottom_shapes) != 2 + self.static_input + exposed:
            raise self.error(f"takes x, cont, optionally x_static"
                             f"{', and the initial states' if exposed else ''}: got "
                             f"{len(bottom_shapes)} bottoms")
        if len(layer_param.top) != 1 + exposed:
            raise self.error(f"needs {1 + exposed} top(s), got {len(layer_param.top)}")
        self.steps = x[0]   # Caffe unrolls T once: "input number of timesteps changed"
        hidden = self.num_output * self.gate_factor
        self.add_blob((hidden, count(x, 2)), p.weight_filler)
        self.add_blob((hidden,), p.bias_filler)
        if self.static_input:
            static = tuple(bottom_shapes[2])
            if len(static) < 1 or static[0] != x[1]:
                raise self.error(f"x_static must be (N, …) with N = {x[1]}, got {static}")
            self.add_blob((hidden, count(static, 1)), p.weight_filler)
        self.add_blob((hidden, self.num_output), p.weight_filler)
        self._extra_blobs(p)
        self.top_shapes(bottom_shapes)

    def _extra_blobs(self, p):
        pass

    def top_shapes(self, bottom_shapes):
        x, cont = (tuple(s) for s in bottom_shapes[:2])
        if hasattr(self, "steps") and x[0] != self.steps:
            raise self.error(f"input number of timesteps changed: built for {self.steps}, "
                             f"got {x[0]} (Caffe unrolls the net once)")
        if cont != x[:2]:
            raise self.error(f"cont must be (T, N) = {x[:2]}, got {cont}")
        state = (1, x[1], self.num_output)
        first = 2 + self.static_input
        for shape in bottom_shapes[first:]:
            if tuple(shape) != state:
                raise self.error(f"an initial state must be {state}, got {tuple(shape)}")
        return [x[:2] + (self.num_output,)] + [state] * (len(self.layer_param.top) - 1)

    def _inputs(self, bottoms):
        x, cont = bottoms[0], bottoms[1].detach()
        steps, num = x.shape[0], x.shape[1]
        blobs = self.blobs()
        x_gates = torch.matmul(x.reshape(steps, num, -1), blobs[0].t()) + blobs[1]
        static = None
        if self.static_input:
            static = bottoms[2].reshape(num, -1) @ blobs[2].t()
        first = 2 + self.static_input
        # Caffe shares only the data of exposed states: no diff into h_0/c_0 (nor from h_T/c_T)
        initial = [b[0].detach() for b in bottoms[first:]] if self.expose_hidden else \
            [x.new_zeros((num, self.num_output))] * self.states
        return x_gates, cont.to(x.dtype).unsqueeze(-1), static, initial, blobs[2 + self.static_input:]


@register("RNN")
class RNN(_Recurrent):
    """Caffe's RNN layer (see the module docstring)."""

    def _extra_blobs(self, p):
        self.add_blob((self.num_output, self.num_output), p.weight_filler)
        self.add_blob((self.num_output,), p.bias_filler)

    def forward(self, *bottoms):
        x_gates, cont, static, (h,), (W_hh, W_ho, b_o) = self._inputs(bottoms)
        outputs = []
        for t in range(x_gates.shape[0]):
            total = (cont[t] * h) @ W_hh.t() + x_gates[t]
            if static is not None:
                total = total + static
            h = torch.tanh(total)
            outputs.append(torch.tanh(h @ W_ho.t() + b_o))
        top = torch.stack(outputs)
        return (top, h.detach().unsqueeze(0)) if self.expose_hidden else (top,)


@register("LSTM")
class LSTM(_Recurrent):
    """Caffe's LSTM layer (see the module docstring)."""

    states = 2
    gate_factor = 4

    def forward(self, *bottoms):
        x_gates, cont, static, (h, c), (W_hc,) = self._inputs(bottoms)
        outputs = []
        for t in range(x_gates.shape[0]):
            gates = (cont[t] * h) @ W_hc.t() + x_gates[t]
            if static is not None:
                gates = gates + static
            c, h = lstm_unit(c, gates, cont[t])
            outputs.append(h)
        top = torch.stack(outputs)
        return ((top, h.detach().unsqueeze(0), c.detach().unsqueeze(0)) if self.expose_hidden
                else (top,))

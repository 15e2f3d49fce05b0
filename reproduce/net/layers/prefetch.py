"""The shape shared by Caffe's prefetching data layers (``BasePrefetchingDataLayer``).

A subclass reads one batch with ``load_batch(state)`` — ``state`` a dict it owns (its cursor, and
``"rng"``: a ``torch.Generator`` of its own) and advances. As Caffe, batches are read ahead on a
background thread (``data_param.prefetch`` batches, default 4; Caffe's ``PREFETCH_COUNT``), and
each forward hands out the next one. The layer's generator is seeded from the net's seeded
generator when the layer is built, so a run with a ``random_seed`` reads the same batches, and it
is the layer's own, so the order in which the thread and the net draw never matters.

Resuming exactly: ``state_dict()`` is the state after the last batch handed out (the cursor and
the generator's state), not the reader's, which is ahead; ``load_state_dict`` drops the batches
read ahead and reads on from there. The solver keeps these in its snapshots
(``reproduce.solver``: ``data_layer_states``).
"""
from __future__ import annotations

import copy
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch

from .base import CaffeLayer


def layer_generator(net_generator: torch.Generator | None) -> torch.Generator:
    """A data layer's own CPU generator, seeded by a draw from the net's (or torch's global)."""
    device = net_generator.device if net_generator is not None else "cpu"   # a CUDA run's too
    seed = int(torch.randint(2**62, (), generator=net_generator, device=device))
    return torch.Generator().manual_seed(seed)


class PrefetchingDataLayer(CaffeLayer):
    """Base of Data, ImageData and WindowData-like layers (see the module docstring)."""

    bottoms = (0, 0)
    tops = (1, 2)
    prefetch_count = 4

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        self._rng = layer_generator(generator)
        self.register_buffer("device_marker", torch.zeros(0), persistent=False)
        self._executor: ThreadPoolExecutor | None = None
        self._pending: deque[Future] = deque()
        self._reader_state: dict[str, Any] = {}
        self._handed_state: dict[str, Any] = {}

    # -- subclasses --------------------------------------------------------------------
    def load_batch(self, state: dict[str, Any], rng: torch.Generator) -> tuple:
        """One batch of numpy arrays (one per top), advancing ``state`` and ``rng``."""
        raise NotImplementedError

    def start_state(self) -> dict[str, Any]:
        """The reader's state before the first batch (plain values)."""
        raise NotImplementedError

    def _begin(self) -> None:
        """Set the start state (subclasses call it at the end of ``__init__``)."""
        self._reader_state = self.start_state()
        self._handed_state = self._state_copy()

    # -- reading ahead -------------------------------------------------------------------
    def _state_copy(self) -> dict[str, Any]:
        return {"reader": copy.deepcopy(self._reader_state), "rng": self._rng.get_state()}

    def _read(self):
        batch = self.load_batch(self._reader_state, self._rng)
        return batch, self._state_copy()

    def _fill(self) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"prefetch-{self.layer_name}")
        while len(self._pending) < self.prefetch_count:
            self._pending.append(self._executor.submit(self._read))

    def forward(self):
        self._fill()
        batch, state = self._pending.popleft().result()
        self._handed_state = state
        self._fill()
        device = self.device_marker.device
        return tuple(torch.from_numpy(a).to(device) for a in batch)

    def _stop(self) -> None:
        for future in self._pending:
            future.cancel()
        for future in self._pending:
            if not future.cancelled():
                try:
                    future.result()
                except Exception:   # noqa: BLE001 — a batch read ahead is dropped either way
                    pass
        self._pending.clear()

    # -- snapshots -----------------------------------------------------------------------
    def state_dict_data(self) -> dict[str, Any]:
        """Where the next batch handed out starts (see the module docstring)."""
        return copy.deepcopy(self._handed_state)

    def load_state_dict_data(self, state: dict[str, Any]) -> None:
        self._stop()
        self._reader_state = copy.deepcopy(state["reader"])
        self._rng.set_state(state["rng"])
        self._handed_state = self._state_copy()

    def __del__(self):
        executor = getattr(self, "_executor", None)
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

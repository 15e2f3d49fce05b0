"""Background loading that keeps the reference sample order exactly.

The order is always decided in the main process by the ``ReferenceSampler`` of a
``DataSource``; background threads or DataLoader workers only load the chosen samples.

* ``PrefetchingSource`` wraps a ``DataSource``: the next ``depth`` samples load in a thread
  pool while the current one is used. ``next()`` returns exactly what ``source.next()``
  would, and ``state_dict()`` is the state *after the samples consumed so far* (not the
  ones prefetched), so a resumed run continues bit-exactly.
* ``make_dataloader`` is the torch bridge (torch imported only there): it draws ``count``
  indices from the sampler up front and lets a ``torch.utils.data.DataLoader`` with worker
  processes load them in that order; the source's state afterwards is the state after
  those ``count`` samples.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor

from .registry import DataSource


class PrefetchingSource:
    """A ``DataSource`` whose next samples load in background threads, order preserved."""

    def __init__(self, source: DataSource, depth: int = 2, threads: int = 1):
        if depth < 1 or threads < 1:
            raise ValueError(f"prefetch depth and threads must be at least 1, got {depth}, {threads}")
        self.source = source
        self.depth = depth
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="reproduce-data")
        self._pending: deque = deque()  # (index, future, sampler state after drawing that sample)
        self._consumed_state = source.state_dict()

    @property
    def tops(self):
        return self.source.tops

    def __len__(self) -> int:
        return len(self.source)

    def _fill(self) -> None:
        while len(self._pending) < self.depth:
            index, augmentation = self.source.draw()   # drawn here, in order; loaded in a thread
            future = self._pool.submit(self.source.load, index, augmentation)
            self._pending.append((index, future, self.source.state_dict()))

    def peek(self) -> int:
        """The split index of the sample ``next()`` returns (the sampler itself runs ahead)."""
        self._fill()
        return self._pending[0][0]

    @property
    def next_id(self) -> str:
        return self.source.dataset.ids[self.peek()]

    def next(self):
        self._fill()
        _, future, state_after = self._pending.popleft()
        sample = future.result()
        self._consumed_state = state_after
        self._fill()
        return sample

    __next__ = next

    def __iter__(self):
        return self

    def state_dict(self) -> dict:
        return self._consumed_state

    def load_state_dict(self, state: dict) -> None:
        for _, future, _ in self._pending:
            future.cancel()
        self._pending.clear()
        self.source.load_state_dict(state)
        self._consumed_state = self.source.state_dict()

    def close(self) -> None:
        for _, future, _ in self._pending:
            future.cancel()
        self._pending.clear()
        self._pool.shutdown(wait=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class _IndexedSamples:
    """Map-style dataset over a ``DataSource``: item ``i`` is split sample ``i`` (batch axis 1)."""

    def __init__(self, source: DataSource):
        self.dataset = source.dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return tuple(array[None, ...] for array in self.dataset[index])


def make_dataloader(source: DataSource, count: int, num_workers: int = 1, prefetch_factor: int = 2):
    """A ``DataLoader`` yielding the next ``count`` samples of ``source`` (tuples of tensors).

    The indices are drawn from the source's sampler now, in the main process; the workers
    only load. Afterwards ``source.state_dict()`` is the state after those ``count`` samples.
    """
    from torch.utils.data import DataLoader

    indices = source.sampler.take(count)
    options = {"prefetch_factor": prefetch_factor} if num_workers > 0 else {}
    return DataLoader(_IndexedSamples(source), batch_size=None, sampler=indices,
                      num_workers=num_workers, **options)

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
  those ``count`` samples. The workers hand over an 8-bit RGB image as it was decoded (uint8,
  a quarter of the float32 array's bytes) with its mean's 256-entry table per channel
  (``preprocess.DeferredImage``), pickled through the pipe as the uint8 labels are (cheaper
  than a shared-memory segment per tensor at these sizes); the main process finishes it —
  BGR order, the reference's ``v - mean`` by table lookup, C×H×W — in NumPy for the CPU, or
  on ``device`` by a gather there (the uint8 picture is what crosses to the device). Either
  way the array is exactly ``load_caffe_image``'s.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np

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


class _Pickled:
    """A top that leaves a worker pickled through the pipe rather than as a tensor in a new
    shared-memory segment (what the DataLoader does with an array): for the uint8 tops, an
    8-bit image as decoded (``preprocess.DeferredImage``) and a label, the segment's set-up costs
    more than copying their bytes (BENCHMARKS.md, "Data loading": the workers' CPU per sample
    halved)."""

    def __init__(self, value):
        self.value = value


class _IndexedSamples:
    """Map-style dataset over a ``DataSource``: item ``i`` is split sample ``i`` (batch axis 1),
    its uint8 tops ``_Pickled`` (an 8-bit RGB image deferred: finished by ``_finish`` in the
    consumer), the others arrays."""

    def __init__(self, source: DataSource):
        import copy

        self.dataset = copy.copy(source.dataset)   # the source's own keeps giving arrays
        self.dataset.defer_images = True

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        from .preprocess import DeferredImage

        return tuple(_Pickled(top) if isinstance(top, DeferredImage)
                     else _Pickled(top[None, ...]) if top.dtype == np.uint8 else top[None, ...]
                     for top in self.dataset[index])


def caffe_image(image, device=None):
    """The reference's ``1 × 3 × H × W`` float32 BGR-minus-mean image of a ``DeferredImage``
    (H×W×3 uint8 RGB and its 3×256 table of the reference's ``v - mean``), exactly.

    On the CPU (``device`` None or CPU) NumPy's lookup (``DeferredImage.finish``); elsewhere the
    uint8 picture and the table go to ``device`` and are looked up there by one gather
    (``gather_bgr``; no host synchronisation)."""
    import torch

    if device is None or torch.device(device).type == "cpu":
        return torch.from_numpy(image.finish())[None]
    return gather_bgr(torch.from_numpy(image.rgb).to(device, non_blocking=True),
                      torch.from_numpy(image.table).to(device, non_blocking=True))


def gather_bgr(rgb, table):
    """``caffe_image``'s device route on tensors where they are: ``table[c][rgb[..., 2 - c]]``."""
    import torch

    height, width = rgb.shape[:2]
    index = rgb.flip(-1).permute(2, 0, 1).reshape(3, -1).long()   # BGR channel c is RGB's 2 - c
    return torch.gather(table, 1, index).reshape(1, 3, height, width)


def _finish(top, device):
    import torch

    from .preprocess import DeferredImage

    if isinstance(top, _Pickled):
        if isinstance(top.value, DeferredImage):
            return caffe_image(top.value, device)
        top = torch.from_numpy(top.value)
    return top if device is None else top.to(device, non_blocking=True)


class _Loader:
    """The ``DataLoader``'s samples, each image finished (``caffe_image``) as it is taken."""

    def __init__(self, loader, device=None):
        self.loader, self.device = loader, device

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for sample in self.loader:
            yield tuple(_finish(top, self.device) for top in sample)


def make_dataloader(source: DataSource, count: int, num_workers: int = 1, prefetch_factor: int = 2,
                    device=None):
    """An iterable over the next ``count`` samples of ``source`` (tuples of tensors, on ``device``
    when given), loaded by a ``DataLoader`` with ``num_workers`` worker processes.

    The indices are drawn from the source's sampler now, in the main process; the workers
    only load (an 8-bit image handed over as uint8 and finished here; see the module
    docstring). Afterwards ``source.state_dict()`` is the state after those ``count`` samples.
    """
    from torch.utils.data import DataLoader

    indices = source.sampler.take(count)
    options = {"prefetch_factor": prefetch_factor} if num_workers > 0 else {}
    return _Loader(DataLoader(_IndexedSamples(source), batch_size=None, sampler=indices,
                              num_workers=num_workers, **options), device)

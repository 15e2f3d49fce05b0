"""Background loading that keeps the reference sample order exactly.

The order is always decided in the main process by the ``ReferenceSampler`` of a
``DataSource``; background threads or DataLoader workers only load the chosen samples.

* ``PrefetchingSource`` wraps a ``DataSource``: the next ``depth`` samples load in a thread
  pool while the current one is used. ``next()`` returns exactly what ``source.next()``
  would, and ``state_dict()`` is the state *after the samples consumed so far* (not the
  ones prefetched), so a resumed run continues bit-exactly.
* ``make_dataloader`` is the torch bridge (torch imported only there): it draws ``count``
  indices (and, for an augmented source, their mirroring/jittering) from the source up front
  and lets a ``torch.utils.data.DataLoader`` with worker processes load them in that order;
  the source's state afterwards is the state after those ``count`` samples. The workers hand
  over an 8-bit RGB image as it was decoded (uint8, a quarter of the float32 array's bytes)
  with its mean's 256-entry table per channel (``preprocess.DeferredImage``); the main
  process finishes it — BGR order, the reference's ``v - mean`` by table lookup, C×H×W — in
  NumPy for the CPU, or on ``device`` by a gather there (the uint8 picture is what crosses to
  the device). Either way the array is exactly ``load_caffe_image``'s. Where workers fork
  (Linux) each sample crosses in the worker's next fixed shared-memory slot
  (``shared_slots.SlotRing``); elsewhere, or for a sample larger than a slot, pickled through
  the worker's pipe. The slots cost a sample 0.5–1.2 CPU ms less than the pipe; on 2 cores a
  second worker added 10–15% in five runs of six, where through the pipe it took some away
  (BENCHMARKS.md, "DataLoader workers through shared slots").
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
    halved). The route of a sample too large for a shared slot, or where workers are spawned."""

    def __init__(self, value):
        self.value = value


class _Slotted:
    """A sample a worker wrote into its shared slot (``shared_slots.SlotRef``); ``kinds`` says
    per top whether it is an image (two arrays there: the uint8 picture and its table) or an
    array (one)."""

    def __init__(self, ref, kinds: tuple[str, ...]):
        self.ref, self.kinds = ref, kinds


class _IndexedSamples:
    """Map-style dataset over a ``DataSource``: item ``(i, augmentation)`` is split sample ``i``
    (batch axis 1) augmented as drawn. An un-augmented 8-bit RGB image comes deferred (the
    uint8 picture, finished by the consumer); in a worker with a ``ring`` the sample is written
    into the worker's next shared slot, else its uint8 tops are ``_Pickled``."""

    def __init__(self, source: DataSource):
        import copy

        self.source = source                       # augmented samples load as the source loads
        self.dataset = copy.copy(source.dataset)   # the source's own keeps giving arrays
        self.dataset.defer_images = True
        self.ring = None                           # a SlotRing, set before the workers fork
        self._written = 0                          # samples this worker wrote into its slots

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        from .preprocess import DeferredImage

        index, augmentation = key if isinstance(key, tuple) else (key, None)
        if augmentation is not None and any(augmentation):   # mirrored or moved: the float arrays
            tops = self.source.load(index, augmentation)
        else:
            tops = tuple(top if isinstance(top, DeferredImage) else top[None, ...]
                         for top in self.dataset[index])
        slotted = self._into_slot(tops)
        if slotted is not None:
            return slotted
        return tuple(_Pickled(top) if isinstance(top, DeferredImage) or top.dtype == np.uint8 else top
                     for top in tops)

    def _into_slot(self, tops):
        from torch.utils.data import get_worker_info

        from .preprocess import DeferredImage

        worker = get_worker_info()
        if self.ring is None or worker is None:
            return None
        arrays, kinds = [], []
        for top in tops:
            if isinstance(top, DeferredImage):
                arrays += [top.rgb, top.table]
                kinds.append("image")
            else:
                arrays.append(np.asarray(top))
                kinds.append("array")
        ref = self.ring.write(worker.id, self._written, arrays)
        if ref is None:                            # larger than a slot: through the pipe
            return None
        self._written += 1
        return _Slotted(ref, tuple(kinds))


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


def _finish_slotted(sample: _Slotted, ring, device) -> tuple:
    """The tops of a sample in a shared slot, each finished (``caffe_image``) or copied out of
    the slot, then the slot checked to still hold this sample (``SlotRing.check``)."""
    import torch

    from .preprocess import DeferredImage

    views, tops, at = ring.views(sample.ref), [], 0
    on_cpu = device is None or torch.device(device).type == "cpu"
    for kind in sample.kinds:
        if kind == "image":   # on the CPU the lookup reads the slot; a device gets a copy
            rgb, table = views[at] if on_cpu else views[at].copy(), views[at + 1].copy()
            tops.append(caffe_image(DeferredImage(rgb, table), device))
            at += 2
        else:
            array = torch.from_numpy(views[at].copy())
            tops.append(array if device is None else array.to(device, non_blocking=True))
            at += 1
    ring.check(sample.ref)
    return tuple(tops)


SLOT_BYTES = 32 << 20     # one shared slot: a 2,800 × 2,800 RGB picture with its label fits
RING_BYTES = 2 << 30      # at most this much address space for all slots (pages are used as written)


class _Loader:
    """The ``DataLoader``'s samples, each image finished (``caffe_image``) as it is taken.

    With ``slots`` the workers hand samples over through a ``SlotRing`` made for each pass
    (``__iter__``), before its workers fork."""

    def __init__(self, loader, samples: _IndexedSamples, device=None, slots: int = 0):
        self.loader, self.samples, self.device, self.slots = loader, samples, device, slots

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        from .shared_slots import SlotRing

        ring = self.samples.ring = None
        if self.slots:
            workers = self.loader.num_workers
            capacity = min(SLOT_BYTES, RING_BYTES // (workers * self.slots))
            try:
                ring = self.samples.ring = SlotRing(workers, self.slots, capacity)
            except OSError as error:   # no room to map them: the pipe, slower, same arrays
                import warnings

                warnings.warn(f"make_dataloader: no shared slots ({error}); the workers hand "
                              f"samples over through their pipes", RuntimeWarning, stacklevel=2)
        for sample in self.loader:   # the workers fork here, on the first next()
            if isinstance(sample, _Slotted):
                yield _finish_slotted(sample, ring, self.device)
            else:
                yield tuple(_finish(top, self.device) for top in sample)


def make_dataloader(source: DataSource, count: int, num_workers: int = 1, prefetch_factor: int = 2,
                    device=None, shared_slots: bool = True):
    """An iterable over the next ``count`` samples of ``source`` (tuples of tensors, on ``device``
    when given), loaded by a ``DataLoader`` with ``num_workers`` worker processes.

    The indices (and the source's augmentation, if any) are drawn from the source now, in the
    main process; the workers only load. An 8-bit image is handed over as uint8 and finished
    here (see the module docstring). With ``shared_slots`` (Linux, unless the program chose
    another start method than fork) the workers write each sample into a fixed shared-memory
    slot instead of pickling it through their pipe (``reproduce.data.shared_slots``; the arrays
    are the same). Afterwards ``source.state_dict()`` is the state after those ``count`` samples.
    """
    import multiprocessing
    import sys

    from torch.utils.data import DataLoader

    draws = [source.draw() for _ in range(count)]
    options = {"prefetch_factor": prefetch_factor} if num_workers > 0 else {}
    slots = 0
    # a start method the program chose (spawn, forkserver) is kept, and the pipe used
    forking = multiprocessing.get_start_method(allow_none=True) in (None, "fork")
    if num_workers > 0 and shared_slots and forking and sys.platform.startswith("linux"):
        options["multiprocessing_context"] = "fork"   # the slots are inherited, never pickled
        slots = prefetch_factor * num_workers + 1     # more than the DataLoader keeps in flight
    samples = _IndexedSamples(source)
    return _Loader(DataLoader(samples, batch_size=None, sampler=draws, num_workers=num_workers,
                              **options), samples, device, slots)

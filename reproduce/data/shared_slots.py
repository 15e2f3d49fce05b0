"""Fixed shared-memory slots through which DataLoader workers hand samples to the main process.

A DataLoader worker that returns an array has it moved to the main process either pickled
through the worker's pipe (serialised, written and read 64 KB a system call, rebuilt: about
1 CPU ms a 500×375 sample on the 2-core machine of BENCHMARKS.md, "DataLoader workers through
shared slots") or as a new shared-memory segment per tensor (torch's default for tensors, dearer
still at these sizes). ``SlotRing`` is the third way: before the workers fork, the main process
maps one anonymous shared region, a ring of ``slots`` fixed-size slots per worker; the worker
copies its sample's arrays into its next slot and returns only a ``SlotRef`` (which slot, the
arrays' dtypes, shapes and offsets), and the main process reads the arrays where they are. No
bytes cross a pipe, nothing is allocated per sample, and the pages, once touched, stay mapped.

Reuse is safe by counting: worker ``w`` writes its ``n``-th sample into slot ``n mod slots``; a
DataLoader keeps at most ``prefetch_factor × workers`` tasks sent and not yet returned, so with
``slots = prefetch_factor × workers + 1`` a slot is written again only after its sample was
returned and read. The claim is checked, not trusted: each slot's header holds the count of the
sample in it (set to -1 while the worker writes); ``views`` (before the arrays are read) and
``check`` (after) raise if it is not the sample's count (a seqlock), so a reader never returns
arrays a writer overwrote.

The region travels to the workers by ``fork`` (it is inherited, never pickled), so the loader
uses slots only where it starts its workers by forking (Linux). A sample larger than a slot
goes through the pipe as before (``write`` returns None). No torch here: mmap and NumPy.
"""
from __future__ import annotations

import mmap
from typing import NamedTuple, Sequence

import numpy as np

HEADER = 64          # bytes before a slot's first array: its count (int64), then padding
ALIGN = 64           # each array starts on a 64-byte boundary
EMPTY = -1           # a slot's count while it is being written


class SlotRef(NamedTuple):
    """What a worker returns for a sample written into a slot: where, and how to read it."""

    worker: int
    slot: int
    count: int                                   # the worker's sample number, also in the header
    arrays: tuple[tuple[str, tuple[int, ...], int], ...]   # (dtype.str, shape, offset) each


class SlotOverwritten(RuntimeError):
    """A slot held another sample than the one its reference names (reuse broke its bound)."""


class SlotRing:
    """``workers × slots`` shared slots of ``capacity`` bytes each (see the module docstring)."""

    def __init__(self, workers: int, slots: int, capacity: int):
        if workers < 1 or slots < 2 or capacity <= HEADER:
            raise ValueError(f"a slot ring needs workers >= 1, slots >= 2 and capacity > {HEADER} "
                             f"bytes, got {workers}, {slots}, {capacity}")
        self.workers, self.slots = workers, slots
        self.capacity = capacity // ALIGN * ALIGN
        # anonymous and MAP_SHARED: shared with the processes forked after this; pages are
        # only allocated where a sample is written
        self._region = mmap.mmap(-1, workers * slots * self.capacity,
                                 flags=mmap.MAP_SHARED | getattr(mmap, "MAP_NORESERVE", 0))
        self._counts = np.frombuffer(self._region, np.int64).reshape(workers * slots, -1)[:, 0]
        self._counts[:] = EMPTY

    def __reduce__(self):
        raise TypeError("a SlotRing reaches DataLoader workers by fork only (it holds an anonymous "
                        "shared mapping); use the pipe where workers are spawned")

    def _base(self, worker: int, slot: int) -> int:
        return (worker * self.slots + slot) * self.capacity

    def write(self, worker: int, count: int, arrays: Sequence[np.ndarray]) -> SlotRef | None:
        """Copy ``arrays`` into worker ``worker``'s slot for its sample number ``count``; None
        (nothing written) when they do not fit in one slot."""
        offsets, end = [], HEADER
        for array in arrays:
            offsets.append(end)
            end += -(-array.nbytes // ALIGN) * ALIGN
        if end > self.capacity:
            return None
        slot = count % self.slots
        base = self._base(worker, slot)
        index = worker * self.slots + slot
        self._counts[index] = EMPTY
        for array, offset in zip(arrays, offsets):
            target = np.frombuffer(self._region, array.dtype, array.size, base + offset)
            np.copyto(target.reshape(array.shape), array, casting="no")
        self._counts[index] = count
        return SlotRef(worker, slot, count, tuple((array.dtype.str, array.shape, offset)
                                                  for array, offset in zip(arrays, offsets)))

    def views(self, ref: SlotRef) -> list[np.ndarray]:
        """Read-only views of the arrays ``ref`` names, in its slot (valid until ``check``)."""
        self.check(ref)
        base = self._base(ref.worker, ref.slot)
        out = []
        for dtype, shape, offset in ref.arrays:
            view = np.frombuffer(self._region, np.dtype(dtype), int(np.prod(shape, dtype=np.int64)),
                                 base + offset).reshape(shape)
            view.flags.writeable = False
            out.append(view)
        return out

    def check(self, ref: SlotRef) -> None:
        """Raise ``SlotOverwritten`` unless ``ref``'s slot still holds its sample, whole."""
        found = int(self._counts[ref.worker * self.slots + ref.slot])
        if found != ref.count:
            raise SlotOverwritten(
                f"DataLoader worker {ref.worker}'s shared slot {ref.slot} holds sample "
                f"{'(being written)' if found == EMPTY else found}, not {ref.count}: it was reused "
                f"before it was read (more samples in flight than its {self.slots} slots)")

"""One thread for a small inference pass: a second one cannot pay for its synchronisation.

torch's CPU operators split their work among its OpenMP threads and meet at a barrier at
the end of every operator. A small pass (FCN-8s at the golden fixtures' widths on a 64×80
image: ~0.1 G multiply-adds in ~90 operators) gains nothing from a second thread on an idle
2-core machine (4.9 ms against 5.2 ms with one), and loses badly on a busy one: each barrier
waits until the scheduler runs the other thread again (the same pass, load average 6 on 2
cores: 91 ms median with two threads, 16 ms with one; BENCHMARKS.md, "Small inputs").

So ``Net.forward`` counts a pass's multiply-adds once per input shape and runs passes
below ``SMALL_PASS_MACS`` with one thread, on the CPU, when no gradient is recorded; the
thread count is restored afterwards. Larger passes, training and other devices are left
as they are.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch

# from passes timed with one and with two threads on the idle-equivalent 2-core AVX-512
# host (tiny FCN-8s: level at 96×96, 117 M; two threads 16% faster at 128×128, 153 M;
# BENCHMARKS.md, "Small inputs")
SMALL_PASS_MACS = 125_000_000


@contextlib.contextmanager
def threads_for_pass(macs: int | None, device: torch.device) -> Iterator[None]:
    """One thread while the block runs if ``macs`` (the pass's multiply-adds, None if not
    yet counted) is small and nothing is recorded for autograd; otherwise unchanged."""
    threads = torch.get_num_threads()
    if (macs is None or macs >= SMALL_PASS_MACS or threads == 1 or device.type != "cpu"
            or torch.is_grad_enabled()):
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)

"""``keep_freed_memory``: activation-sized blocks come from glibc's heap and stay there when freed.

Checked through glibc's own accounting (``mallinfo2``: ``hblkhd`` counts bytes in separately
mmapped blocks, ``arena`` the heap), in a fresh interpreter per case because the setting is
process-wide. Page-fault counts would show the effect too, but the kernel may reclaim idle
pages on its own schedule, so they make a flaky test.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

PROBE = textwrap.dedent("""
    import ctypes, sys, torch
    from reproduce.runtime import keep_freed_memory

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                     "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    if sys.argv[1] == "keep":
        assert keep_freed_memory() and keep_freed_memory()  # idempotent
    x = torch.ones(64 * 2**20 // 4)  # 64 MiB, above glibc's largest default mmap threshold
    during = libc.mallinfo2()
    del x
    after = libc.mallinfo2()
    print(during.hblkhd, after.arena)
""")


def mallinfo_after_allocation(mode: str) -> tuple[int, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                         check=True)
    mmapped_during, heap_after = out.stdout.split()[-2:]
    return int(mmapped_during), int(heap_after)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
def test_large_blocks_come_from_the_heap_and_stay_there():
    block = 64 * 2**20
    mmapped, _ = mallinfo_after_allocation("default")
    assert mmapped >= block  # glibc's default: a separate mapping, unmapped on free
    mmapped, heap = mallinfo_after_allocation("keep")
    assert mmapped < block and heap >= block  # from the heap, and still there after free

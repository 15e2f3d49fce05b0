"""``keep_freed_memory``: a freed activation-sized block is reused without new page faults."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

PROBE = textwrap.dedent("""
    import resource, sys, torch
    from reproduce.runtime import keep_freed_memory
    if sys.argv[1] == "keep":
        assert keep_freed_memory() and keep_freed_memory()  # idempotent
    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = torch.ones(64 * 2**20 // 4)  # 64 MiB, above glibc's largest mmap threshold
    del x
    before = faults()
    x = torch.ones(64 * 2**20 // 4)
    print(faults() - before)
""")


def faults_on_reallocation(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                         check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux-only")
def test_freed_blocks_are_reused_without_page_faults():
    pages = 64 * 2**20 // 4096
    assert faults_on_reallocation("default") > pages // 2  # glibc gave the block back
    assert faults_on_reallocation("keep") < pages // 20    # reused in place

"""Freed heap pages go back to the system before the loader forks its workers (crnn.training.memory)."""
import subprocess
import sys

import pytest

from crnn.training.memory import release_freed_memory

# Fills the heap with 64 KB blocks (under glibc's mmap threshold), frees all but every 32nd (so the heap
# cannot shrink from its top by itself), and prints the process's anonymous memory before and after.
PROBE = r"""
import numpy as np
from crnn.training.memory import release_freed_memory

def anon_kb():
    return int(next(l for l in open("/proc/self/status") if l.startswith("RssAnon")).split()[1])

blocks = [np.ones(8192) for _ in range(4000)]  # 4000 x 64 KB, written
kept = blocks[::32]
del blocks
before = anon_kb()
ran = release_freed_memory()
print(ran, before, anon_kb())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and glibc's malloc_trim")
def test_freed_heap_pages_go_back_to_the_system():
    if not release_freed_memory():
        pytest.skip("this C library has no malloc_trim")
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout.split()
    ran, before, after = out[0] == "True", int(out[1]), int(out[2])
    assert ran
    freed_kb = 4000 * 64 * 31 // 32
    assert before - after > 0.8 * freed_kb, (before, after)  # the 240 MB freed leave the process


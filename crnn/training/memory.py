"""Hand the heap's freed pages back to the system before the data loader forks its workers.

Each epoch the loader forks its workers from the training process. glibc keeps the pages of freed
activations in the heap, so a worker forked then shares them copy-on-write, and every such page the
trainer writes again during the epoch is copied: on a video run about 1.5 GB per worker after the first
epoch, 5 GB after a few dozen, enough to run two trainings out of memory on a 24 GB machine.
``malloc_trim`` returns the free pages first, so a worker shares only live memory.
"""
from __future__ import annotations

import ctypes
import functools
import sys
from typing import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None where the C library has none (macOS, Windows, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_freed_memory() -> bool:
    """Return the heap's free pages to the system (``malloc_trim(0)``); False where the C library has no
    such call, where nothing needs doing."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True

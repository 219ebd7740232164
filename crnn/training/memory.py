"""Hand the heap's freed pages back to the system before the data loader forks its workers.

Each epoch the loader forks its workers from the training process. glibc keeps the pages of freed
activations in the heap, so a worker forked then shares them copy-on-write, and every such page the
trainer writes again during the epoch is copied: on a video run about 1.5 GB per worker after the first
epoch, 5 GB after a few dozen, enough to run two trainings out of memory on a 24 GB machine.
``malloc_trim`` returns the free pages first, so a worker shares only live memory.
"""
from __future__ import annotations

import ctypes
import sys

_libc: ctypes.CDLL | None | bool = None  # None: not looked up yet; False: no malloc_trim here


def release_freed_memory() -> bool:
    """Return the heap's free pages to the system (glibc's ``malloc_trim(0)``); False where the C
    library has no such call (macOS, Windows, musl), where nothing needs doing."""
    global _libc
    if _libc is None:
        _libc = False
        if sys.platform.startswith("linux"):
            try:
                lib = ctypes.CDLL("libc.so.6")
                lib.malloc_trim.argtypes, lib.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
                _libc = lib
            except (OSError, AttributeError):
                pass
    if _libc is False:
        return False
    _libc.malloc_trim(0)
    return True

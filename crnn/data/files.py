"""Checks every reader makes before opening an input file, so a bad path fails with the right reason.

A FIFO or a device is refused from its ``stat`` alone: opening a FIFO for reading blocks until a
writer appears, and a device (``/dev/zero``) never ends. Errors keep the operating system's own
reason (permission denied, symlink loop, name too long) instead of a guess such as "corrupt".
"""
from __future__ import annotations

import errno
import os
import stat

# Decoding one file may not need more memory than this (float32 samples before and after resampling,
# uint8 frames, float32 features): a small FLAC of silence or a tiny video can claim hours. Override
# with the CRNN_MAX_DECODE_BYTES environment variable or a reader's ``max_bytes`` argument.
MAX_DECODE_BYTES = int(os.environ.get("CRNN_MAX_DECODE_BYTES", 2 * 2**30))

_KINDS = (
    (stat.S_ISFIFO, "is a named pipe (FIFO), not a regular file"),
    (stat.S_ISCHR, "is a character device, not a regular file"),
    (stat.S_ISBLK, "is a block device, not a regular file"),
    (stat.S_ISSOCK, "is a socket, not a regular file"),
)


def os_reason(error: OSError) -> str:
    """A short, lower-case reason for an OSError: 'permission denied', 'too many levels of symbolic links'."""
    if error.errno == errno.ENOENT:
        return "no such file"
    if error.errno == errno.ELOOP:
        return "symbolic link loop (too many levels of symbolic links)"
    text = os.strerror(error.errno) if error.errno else str(error)
    return text[:1].lower() + text[1:]


def regular_file_problem(path: str | bytes | os.PathLike, allow_dir: bool = False) -> str | None:
    """Why ``path`` cannot be read as a regular file, or None when it can.

    Args:
        path: the file (symbolic links are followed).
        allow_dir: accept a directory (frame folders). (Default: False)

    Returns:
        None, or a reason: 'no such file', 'permission denied', 'symbolic link loop ...', 'is a directory',
        'is a named pipe (FIFO) ...', 'empty file (0 bytes)', ...
    """
    try:
        st = os.stat(path)
    except OSError as e:
        if e.errno == errno.ENOENT and os.path.islink(path):
            return "broken symbolic link (its target does not exist)"
        return os_reason(e)
    if stat.S_ISDIR(st.st_mode):
        return None if allow_dir else "is a directory, not a file"
    for is_kind, reason in _KINDS:
        if is_kind(st.st_mode):
            return reason
    if st.st_size == 0:
        return "empty file (0 bytes)"
    try:  # a regular file: opening cannot block
        with open(path, "rb"):
            pass
    except OSError as e:
        return os_reason(e)
    return None


def format_bytes(n: float) -> str:
    """1536 -> '1.5 kB', 3 * 2**30 -> '3.0 GiB' (for budget messages)."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("kB", 1024)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} bytes"

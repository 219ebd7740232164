"""One ``--out`` folder, one run: a lock with the owner's pid, no silent overwrite, no leftover temp files."""
from __future__ import annotations

import errno
import os
import sys
import shutil
from pathlib import Path

LOCK_NAME = ".lock"
RUN_FILES = ("best.pt", "last.pt", "log.csv")


class RunDirError(ValueError):
    """The output folder cannot be used for this run (another run holds it or lives in it)."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RunLock:
    """``out/.lock`` holding this process's pid; a lock left by a dead process is taken over.

    Use as a context manager, or call :meth:`release`.
    """

    def __init__(self, out: Path):
        self.path = out / LOCK_NAME
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner is not None and owner != os.getpid() and _alive(owner):
                    raise RunDirError(f"{out}: another run (pid {owner}) is using this folder; wait for it to "
                                      f"finish or choose another --out") from None
                self.path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            except OSError as e:
                raise RunDirError(f"{self.path}: cannot create the run lock ({e.strerror or e})") from None
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()}\n")
            return
        raise RunDirError(f"{self.path}: could not take the run lock")

    def _owner(self) -> int | None:
        try:
            return int(self.path.read_text().strip() or "0") or None
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        """Remove the lock if this process holds it. A clean-up that fails (the folder became read-only,
        the disk went away) is reported, never raised: the error that ended the run must stay the one the
        user sees, and a lock left by a dead process is taken over by the next run anyway."""
        if self._owner() != os.getpid():
            return
        try:
            self.path.unlink(missing_ok=True)
        except OSError as e:
            print(f"note: {self.path}: cannot remove the run lock ({e.strerror or e}); the next run takes it over",
                  file=sys.stderr)

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def remove_temp_files(out: Path) -> list[Path]:
    """Delete ``*.tmp`` files that interrupted checkpoint or log writes left behind."""
    removed = []
    for p in out.glob("*.tmp"):
        try:
            p.unlink()
            removed.append(p)
        except OSError:
            pass
    return removed


def claim_run_dir(out: Path, resume: bool, overwrite: bool) -> RunLock:
    """Create ``out``, lock it, clean temp files, and refuse to start a new run over another one.

    Args:
        out: the run folder.
        resume: this run continues the folder's run (``--resume``).
        overwrite: replace the run that lives there (``--overwrite``).

    Raises:
        RunDirError: the folder is locked by a live run, or holds another run and neither flag was given.
    """
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunDirError(f"{out}: cannot create the output folder ({e.strerror or e})") from None
    if not os.access(out, os.W_OK):
        raise RunDirError(f"{out}: output folder is not writable ({os.strerror(errno.EACCES)})")
    lock = RunLock(out)
    try:
        remove_temp_files(out)
        existing = [name for name in RUN_FILES if (out / name).exists()]
        if existing and not resume:
            if not overwrite:
                raise RunDirError(f"{out}: holds another run ({', '.join(existing)}); continue it with "
                                  f"--resume auto, replace it with --overwrite, or choose another --out")
            for name in existing:
                (out / name).unlink()
            shutil.rmtree(out / "tb", ignore_errors=True)
    except BaseException:
        lock.release()
        raise
    return lock

"""Checkpoints: one file with config, vocabulary, weights and training state, written atomically."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from crnn.model import CHECKPOINT_FORMAT, CRNN


def save_checkpoint(path: str | Path, model: CRNN, train_state: dict[str, Any] | None = None) -> Path:
    """Write ``path`` via a temp file in the same folder + rename, so a crash never leaves a torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    core = model.module if hasattr(model, "module") else model
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "version": 1,
        "config": core.cfg.to_dict(),
        "tokenizer": core.tokenizer.to_dict(),
        "state_dict": core.state_dict(),
        "train_state": train_state or {},
    }
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(ckpt, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path

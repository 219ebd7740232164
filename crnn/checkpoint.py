"""The one checkpoint format: save (atomic), read (safe), validate (naming the file), build the model.

A checkpoint is one file: ``{"format", "version", "config", "tokenizer", "state_dict", "train_state"}``,
written to a temp file in the same folder, fsynced, then renamed, and loaded with
``torch.load(weights_only=True)`` so a foreign file cannot run code.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from crnn.config import ModelConfig
from crnn.model import CRNN
from crnn.tokenizer import Tokenizer

CHECKPOINT_FORMAT = "crnn-checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(RuntimeError):
    """A file is not a usable crnn checkpoint (the message names the file and what is wrong)."""


def save_checkpoint(path: str | Path, model: CRNN, train_state: dict[str, Any] | None = None) -> Path:
    """Write ``path`` via a temp file in the same folder + fsync + rename: a crash never leaves a torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    core = model.module if hasattr(model, "module") else model
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
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


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint dict safely (``weights_only=True``: a foreign file cannot run code)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # pickle errors, truncated zips, code-carrying pickles ...
        raise CheckpointError(f"{path}: not a loadable crnn checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a crnn checkpoint (missing format marker {CHECKPOINT_FORMAT!r})")
    return ckpt


def model_from_checkpoint(ckpt: dict, source: str = "checkpoint") -> CRNN:
    """Rebuild a model (with its tokenizer attached) from a checkpoint dict."""
    try:
        cfg = ModelConfig.from_dict(ckpt["config"])
        model = CRNN(cfg)
    except KeyError as e:
        raise CheckpointError(
            f"{source}: {e.args[0]} (a custom cell or frontend must be registered before loading)"
        ) from None
    try:
        model.load_state_dict(ckpt["state_dict"])
        model.tokenizer = Tokenizer.from_dict(ckpt["tokenizer"])
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as e:  # damaged or foreign contents
        raise CheckpointError(f"{source}: inconsistent checkpoint contents ({type(e).__name__}: {e})") from None
    return model


def load_model(path: str | Path, device: str | torch.device = "cpu") -> CRNN:
    """Load a trained model from a checkpoint file, in eval mode, tokenizer attached as ``.tokenizer``."""
    model = model_from_checkpoint(read_checkpoint(path), source=str(path))
    return model.to(device).eval()

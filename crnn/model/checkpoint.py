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

from crnn.model.presets import ModelConfig
from crnn.model.network import CRNN
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
    return write_checkpoint(path, ckpt)


def write_checkpoint(path: str | Path, ckpt: dict[str, Any]) -> Path:
    """Write a checkpoint dict atomically (temp file, fsync, rename), as :func:`save_checkpoint` does."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot write checkpoint ({e.strerror or e}); the previous one is kept") from None
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(ckpt, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a checkpoint gets the process's usual mode
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) or (isinstance(e, RuntimeError) and "write" in str(e).lower()):
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            raise CheckpointError(f"{path}: cannot write checkpoint ({reason}); the previous one is kept") from None
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint dict safely (``weights_only=True``: a foreign file cannot run code). ``path`` may
    name a shipped model (``crnn models``)."""
    from crnn.pretrained import missing_hint, resolve_checkpoint

    given, path = path, resolve_checkpoint(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file{missing_hint(given)}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # pickle errors, truncated zips, code-carrying pickles ...
        raise CheckpointError(f"{path}: not a loadable crnn checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a crnn checkpoint (missing format marker {CHECKPOINT_FORMAT!r})")
    return ckpt


def validate_checkpoint(ckpt: dict, source: str = "checkpoint") -> None:
    """Check a checkpoint dict's structure; raises CheckpointError naming ``source`` and what is wrong."""
    version = ckpt.get("version", 1)
    if not isinstance(version, int) or version > CHECKPOINT_VERSION:
        raise CheckpointError(f"{source}: checkpoint format version {version!r} is newer than this crnn reads "
                              f"({CHECKPOINT_VERSION}); upgrade crnn")
    for key, kind in (("config", dict), ("tokenizer", dict), ("state_dict", dict)):
        if key not in ckpt:
            raise CheckpointError(f"{source}: missing {key!r}")
        if not isinstance(ckpt[key], kind):
            raise CheckpointError(f"{source}: {key!r} should be a {kind.__name__}, got {type(ckpt[key]).__name__}")
    if not isinstance(ckpt.get("train_state", {}), dict):
        raise CheckpointError(f"{source}: 'train_state' should be a dict")
    bad = [k for k, v in ckpt["state_dict"].items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{source}: state_dict entries that are not tensors: {', '.join(map(str, bad[:5]))}")


def model_from_checkpoint(ckpt: dict, source: str = "checkpoint") -> CRNN:
    """Rebuild a model (with its tokenizer attached) from a checkpoint dict, checking that its parts agree."""
    validate_checkpoint(ckpt, source)
    try:
        cfg = ModelConfig.from_dict(ckpt["config"])
        model = CRNN(cfg)
    except KeyError as e:
        raise CheckpointError(
            f"{source}: {e.args[0]} (a custom cell or frontend must be registered before loading)"
        ) from None
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{source}: inconsistent model config ({e})") from None
    try:
        tokenizer = Tokenizer.from_dict(ckpt["tokenizer"])
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise CheckpointError(f"{source}: unusable vocabulary ({type(e).__name__}: {e})") from None
    head = ckpt["state_dict"].get("head.weight")
    if head is not None and head.shape[0] != len(tokenizer):
        raise CheckpointError(f"{source}: vocabulary has {len(tokenizer)} entries (with blank) but the output "
                              f"layer has {head.shape[0]}")
    if cfg.vocab_size != len(tokenizer):
        raise CheckpointError(f"{source}: config vocab_size {cfg.vocab_size} but the vocabulary has "
                              f"{len(tokenizer)} entries (with blank)")
    try:
        model.load_state_dict(ckpt["state_dict"])
    except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as e:  # missing keys, shapes, damage
        detail = " ".join(str(e).split())
        raise CheckpointError(f"{source}: weights do not match the model config ({detail[:400]})") from None
    model.tokenizer = tokenizer
    return model


def load_model(path: str | Path, device: str | torch.device = "cpu") -> CRNN:
    """Load a trained model from a checkpoint file or a shipped model's name (``crnn.pretrained``), in
    eval mode, tokenizer attached as ``.tokenizer``."""
    model = model_from_checkpoint(read_checkpoint(path), source=str(path))
    return model.to(device).eval()

"""Weight averaging: an exponential moving average of the weights during training (EMA), and the average
of several checkpoints after it (icefall / ESPnet / WeNet ``average_checkpoints``).

Both give a model whose weights sit nearer the middle of the region SGD wanders in at the end of
training, which usually generalises a little better than any single step's weights.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

import torch
import torch.nn as nn

from crnn.model.checkpoint import CheckpointError, read_checkpoint, validate_checkpoint


class WeightEMA:
    """Exponential moving average of a model's floating-point parameters and buffers.

    ``avg = d * avg + (1 - d) * w`` after every optimizer step, with ``d = min(decay, (1 + n) / (10 + n))``
    at update ``n`` so early averages are not dominated by the random initialisation. Integer buffers
    (BatchNorm's step counter) are copied as they are.

    Args:
        model: the model whose weights are averaged (the average starts from its current weights).
        decay: the decay ``d`` once warmed up, e.g. 0.999 (a memory of about 1000 steps).
    """

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay, self.updates = decay, 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        self.updates += 1
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                self.shadow[k].copy_(v)

    @contextmanager
    def applied(self, model: nn.Module) -> Iterator[nn.Module]:
        """Within the block the model holds the averaged weights; its own come back afterwards."""
        own = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.shadow)
        try:
            yield model
        finally:
            model.load_state_dict(own)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        self.decay, self.updates = float(state["decay"]), int(state["updates"])
        for k, v in state["shadow"].items():
            if k in self.shadow:
                self.shadow[k].copy_(v)


def average_state_dicts(states: Sequence[dict]) -> dict:
    """The element-wise mean of floating-point tensors (in float64, cast back); other entries from the last.

    Raises:
        ValueError: no states, or states with different keys or shapes.
    """
    if not states:
        raise ValueError("nothing to average")
    keys = list(states[-1])
    out = {}
    for k in keys:
        tensors = [s.get(k) for s in states]
        if any(t is None or t.shape != tensors[-1].shape for t in tensors):
            raise ValueError(f"the checkpoints differ in {k!r}: they are not the same architecture")
        last = tensors[-1]
        out[k] = (torch.stack([t.double() for t in tensors]).mean(0).to(last.dtype)
                  if last.dtype.is_floating_point else last.clone())
    return out


def average_checkpoints(paths: Sequence[str | Path]) -> dict:
    """Read checkpoints of one architecture and return the last one with its weights replaced by the mean.

    Raises:
        CheckpointError: a file that cannot be read, or checkpoints of different models / vocabularies.
    """
    if len(paths) < 1:
        raise CheckpointError("give at least one checkpoint to average")
    ckpts = []
    for p in paths:
        ck = read_checkpoint(p)
        validate_checkpoint(ck, str(p))
        ckpts.append(ck)
    first = ckpts[0]
    for p, ck in zip(paths, ckpts):
        if ck["config"] != first["config"] or ck["tokenizer"] != first["tokenizer"]:
            raise CheckpointError(f"{p}: a different model or vocabulary than {paths[0]}: cannot average them")
    try:
        state = average_state_dicts([ck["state_dict"] for ck in ckpts])
    except ValueError as e:
        raise CheckpointError(f"{paths[0]}: {e}") from None
    averaged = dict(ckpts[-1])
    averaged["state_dict"] = state
    averaged["train_state"] = {**ckpts[-1].get("train_state", {}), "averaged_from": [str(p) for p in paths]}
    for key in ("optimizer", "scheduler", "scaler", "ema"):
        averaged["train_state"].pop(key, None)
    return averaged

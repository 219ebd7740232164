"""Training on several manifests at once, each with its own weight (``--train-manifest b.jsonl:0.3``).

A weight ``w`` is how many times, on average, each item of that manifest is seen per epoch: ``1`` every
item once (the default), ``0.3`` a fresh random 30 % of its items each epoch, ``2`` every item twice.
So ``--train-manifest tts.jsonl:0.5 --train-manifest real.jsonl:3`` trains on half of the synthetic
utterances and three passes over the real ones per epoch: the mixture is set by the weights, not by
the sizes of the files.
"""
from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any, Sequence

from torch.utils.data import Dataset


def parse_manifest_spec(spec: str) -> tuple[str, float]:
    """``"path[:weight]"`` -> (path, weight). A suffix after the last ``:`` that is not a number is part of
    the path (``C:\\data``, ``a:b.jsonl``).

    Raises:
        ValueError: a weight that is not a positive finite number.
    """
    path, sep, tail = str(spec).rpartition(":")
    if not sep or not path:
        return str(spec), 1.0
    try:
        weight = float(tail)
    except ValueError:
        return str(spec), 1.0
    if not (weight > 0 and math.isfinite(weight)):
        raise ValueError(f"{spec}: a manifest weight must be a positive number, got {tail!r}")
    if Path(spec).exists() and not Path(path).exists():
        return str(spec), 1.0  # a file whose name ends in ":<number>"
    return path, weight


def manifest_specs(value: str | Sequence[str] | None) -> list[str]:
    """The training manifest setting as a list of specs (a single path is a list of one)."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


class WeightedMix(Dataset):
    """A dataset whose items come from several sources, each seen ``weight`` times per epoch on average.

    Each source contributes ``floor(w)`` full passes plus ``round(frac(w) * n)`` stratified draws: its items
    are sorted by length and cut into that many consecutive chunks, and each epoch draws one item per chunk
    (seeded by the epoch). Slot ``k`` thus holds an item of about the same length every epoch, so
    length bucketing (``lengths()``) stays valid, and the set of items changes from epoch to epoch.

    Args:
        base: the dataset holding every source's items.
        groups: per source, the indices of its items in ``base``.
        weights: per source, its weight (> 0).
        lengths: per item of ``base``, its size (for stratification and bucketing); None: by index order.
        seed: base seed of the per-epoch draws. (Default: 0)
    """

    def __init__(self, base: Dataset, groups: Sequence[Sequence[int]], weights: Sequence[float],
                 lengths: Sequence[float] | None = None, seed: int = 0):
        if len(groups) != len(weights):
            raise ValueError("one weight per source is needed")
        self.base, self.seed, self.epoch = base, seed, 0
        self._lengths = list(lengths) if lengths is not None else None
        self._fixed: list[int] = []          # slots that hold the same item every epoch
        self._chunks: list[list[int]] = []   # slots that draw one item of a chunk per epoch
        for idx, w in zip(groups, weights):
            idx = list(idx)
            if not idx:
                continue
            self._fixed += idx * int(w)
            n_draw = round((w - int(w)) * len(idx))
            if n_draw:
                order = sorted(idx, key=lambda i: self._lengths[i]) if self._lengths else idx
                bounds = [round(j * len(order) / n_draw) for j in range(n_draw + 1)]
                self._chunks += [order[a:b] for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        if not self._fixed and not self._chunks:
            raise ValueError("the weighted sources hold no item")
        self._draw()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)
        self._draw()

    def _draw(self) -> None:
        rng = random.Random(self.seed * 1_000_003 + self.epoch)
        self._index = self._fixed + [rng.choice(chunk) for chunk in self._chunks]

    def __len__(self) -> int:
        return len(self._index)

    def __getitem__(self, k: int) -> Any:
        return self.base[self._index[k]]

    def lengths(self) -> list[float] | None:
        """Per slot, the longest item it can hold (a safe bound for length bucketing)."""
        if self._lengths is None:
            return None
        fixed = [self._lengths[i] for i in self._fixed]
        return fixed + [max(self._lengths[i] for i in chunk) for chunk in self._chunks]

"""Length-bucketed batching: batches bounded by padded size, shuffled per epoch, SortaGrad, DDP-aware."""
from __future__ import annotations

from typing import Iterator, Sequence

import torch
from torch.utils.data import Sampler


class BucketBatchSampler(Sampler[list[int]]):
    """Yields lists of dataset indices whose padded size ``max(length) * count`` stays within a budget.

    Items are sorted by length (with a small random jitter per epoch so batch composition varies),
    cut greedily into batches, and consecutive batches are grouped ``num_replicas`` at a time so that
    the ranks of one step get batches of similar length. Groups are shuffled per epoch; with
    ``sortagrad`` epoch 0 runs them shortest first (SortaGrad, DeepSpeech2).

    Args:
        lengths: size of each item, in any unit (e.g. samples or frames).
        max_frames_per_batch: budget for ``max(length) * count`` in the unit of ``lengths``; an item
            longer than the budget forms a batch of its own. (Default: None)
        max_items: at most this many items per batch. (Default: None; at least one limit is required)
        shuffle: shuffle batch order (and jitter composition) per epoch. (Default: True)
        seed: base seed; every rank must use the same one. (Default: 0)
        sortagrad: epoch 0 in ascending length order, without shuffling. (Default: False)
        num_replicas: data-parallel world size. (Default: 1)
        rank: this process's rank. (Default: 0)
        drop_last: drop batches that do not fill the last round of ``num_replicas`` instead of splitting
            batches to even the count. (Default: False)
        jitter: relative length noise used for sorting when shuffling. (Default: 0.1)
        max_frames: keyword alias of ``max_frames_per_batch``.

    Every rank gets the same number of batches and disjoint items. Without ``drop_last`` the count is
    evened by splitting the largest batches in two; only when no batch can be split (all single items)
    are the first batches repeated, as ``DistributedSampler`` does.
    """

    def __init__(
        self,
        lengths: Sequence[int | float],
        max_frames_per_batch: float | None = None,
        max_items: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        sortagrad: bool = False,
        num_replicas: int = 1,
        rank: int = 0,
        drop_last: bool = False,
        jitter: float = 0.1,
        *,
        max_frames: float | None = None,
    ):
        if max_frames is not None:  # short alias used by the trainer's config field of that name
            if max_frames_per_batch is not None and max_frames_per_batch != max_frames:
                raise ValueError("give max_frames_per_batch or its alias max_frames, not both")
            max_frames_per_batch = max_frames
        if max_frames_per_batch is None and max_items is None:
            raise ValueError("BucketBatchSampler needs max_frames_per_batch or max_items")
        if max_frames_per_batch is not None and max_frames_per_batch <= 0:
            raise ValueError(f"max_frames_per_batch must be positive, got {max_frames_per_batch}")
        if max_items is not None and max_items < 1:
            raise ValueError(f"max_items must be at least 1, got {max_items}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is outside 0..{num_replicas - 1}")
        if len(lengths) == 0:
            raise ValueError("BucketBatchSampler got an empty dataset")
        self.lengths = torch.as_tensor(lengths, dtype=torch.float64)
        self.max_frames = max_frames_per_batch
        self.max_items = max_items
        self.shuffle = shuffle
        self.seed = seed
        self.sortagrad = sortagrad
        self.num_replicas = num_replicas
        self.rank = rank
        self.drop_last = drop_last
        self.jitter = jitter
        self.epoch = 0
        self._cache: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order ``__iter__`` yields (same seed + epoch => same batches on every rank)."""
        self.epoch = epoch

    def _randomized(self) -> bool:
        return self.shuffle and not (self.sortagrad and self.epoch == 0)

    def _fits(self, longest: float, count: int) -> bool:
        if self.max_items is not None and count > self.max_items:
            return False
        return self.max_frames is None or longest * count <= self.max_frames

    def _make_batches(self, g: torch.Generator) -> list[list[int]]:
        keys = self.lengths
        if self._randomized() and self.jitter > 0:
            keys = keys * (1 + self.jitter * (2 * torch.rand(len(keys), generator=g, dtype=torch.float64) - 1))
        order = torch.argsort(keys, stable=True).tolist()
        batches: list[list[int]] = []
        current: list[int] = []
        longest = 0.0
        for i in order:
            length = float(self.lengths[i])
            if current and not self._fits(max(longest, length), len(current) + 1):
                batches.append(current)
                current, longest = [], 0.0
            current.append(i)
            longest = max(longest, length)
        if current:
            batches.append(current)
        return batches

    def _even_out(self, batches: list[list[int]]) -> list[list[int]]:
        """Make the batch count a multiple of ``num_replicas`` (split, drop or, last resort, repeat)."""
        R = self.num_replicas
        if len(batches) % R == 0:
            return batches
        if self.drop_last and len(batches) >= R:
            return batches[: len(batches) // R * R]
        while len(batches) % R:
            k = max(range(len(batches)), key=lambda j: len(batches[j]))
            if len(batches[k]) < 2:
                break
            b = batches[k]  # split in place, keeping sorted neighbours together
            batches[k : k + 1] = [b[: len(b) // 2], b[len(b) // 2 :]]
        if len(batches) % R:
            batches = batches + batches[: R - len(batches) % R]
        return batches

    def _batches(self) -> list[list[int]]:
        """This rank's batches for the current epoch (cached per epoch)."""
        if self._cache is not None and self._cache[0] == self.epoch:
            return self._cache[1]
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        batches = self._even_out(self._make_batches(g))
        R = self.num_replicas
        groups = [batches[i : i + R] for i in range(0, len(batches), R)]  # one group = one step on all ranks
        if self._randomized():
            groups = [groups[i] for i in torch.randperm(len(groups), generator=g).tolist()]
        mine = [group[self.rank] for group in groups]
        self._cache = (self.epoch, mine)
        return mine

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())

    def __repr__(self) -> str:
        budget = f"max_frames={self.max_frames}" if self.max_frames else ""
        items = f"max_items={self.max_items}" if self.max_items else ""
        return f"BucketBatchSampler({len(self.lengths)} items, {', '.join(x for x in (budget, items) if x)}, " \
               f"rank {self.rank}/{self.num_replicas})"

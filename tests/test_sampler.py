"""BucketBatchSampler: budget, completeness across ranks, equal batch counts, SortaGrad, per-epoch shuffling."""
from __future__ import annotations

import random

import pytest
import torch
from torch.utils.data import DataLoader

from crnn.data.sampler import BucketBatchSampler


def random_lengths(n: int, seed: int = 1) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(20, 400) for _ in range(n)]


@pytest.mark.parametrize("num_replicas", [1, 2, 3, 4])
@pytest.mark.parametrize("drop_last", [False, True])
def test_ranks_disjoint_complete_and_equal(num_replicas, drop_last):
    lengths = random_lengths(101)
    budget = 1500
    for epoch in (0, 1, 2):
        per_rank = []
        for rank in range(num_replicas):
            s = BucketBatchSampler(lengths, max_frames_per_batch=budget, seed=7, num_replicas=num_replicas,
                                   rank=rank, drop_last=drop_last, sortagrad=True)
            s.set_epoch(epoch)
            per_rank.append(list(s))
            assert len(s) == len(per_rank[-1])
        assert len({len(b) for b in per_rank}) == 1  # same number of steps on every rank
        items = [i for batches in per_rank for b in batches for i in b]
        assert len(items) == len(set(items))  # no item twice
        if drop_last:
            assert len(items) > 0.8 * len(lengths)
        else:
            assert sorted(items) == list(range(len(lengths)))  # nothing lost
        for batches in per_rank:
            for b in batches:
                assert max(lengths[i] for i in b) * len(b) <= budget


def test_budget_is_padded_size_not_count():
    lengths = [10] * 50 + [100] * 10
    batches = list(BucketBatchSampler(lengths, max_frames_per_batch=200, shuffle=False))
    sizes = sorted(len(b) for b in batches)
    assert sizes == [2] * 5 + [10] + [20] * 2  # short items pack 10x denser than long ones
    assert all(len({lengths[i] for i in b}) == 1 for b in batches)  # similar lengths together


def test_max_items_and_oversized_item():
    lengths = [5, 5, 5, 5, 5, 1000]
    batches = list(BucketBatchSampler(lengths, max_frames_per_batch=100, max_items=2, shuffle=False))
    assert [len(b) for b in batches] == [2, 2, 1, 1]  # the long item alone, never dropped
    assert batches[-1] == [5]
    only_items = list(BucketBatchSampler(lengths, max_items=4, shuffle=False))
    assert [len(b) for b in only_items] == [4, 2]


def test_sortagrad_then_shuffled_and_reproducible():
    lengths = random_lengths(200, seed=3)
    s = BucketBatchSampler(lengths, max_frames_per_batch=2000, seed=5, sortagrad=True)
    epoch0 = list(s)
    longest = [max(lengths[i] for i in b) for b in epoch0]
    assert longest == sorted(longest)  # shortest first
    s.set_epoch(1)
    epoch1 = list(s)
    longest1 = [max(lengths[i] for i in b) for b in epoch1]
    assert longest1 != sorted(longest1)  # shuffled afterwards
    again = BucketBatchSampler(lengths, max_frames_per_batch=2000, seed=5, sortagrad=True)
    again.set_epoch(1)
    assert list(again) == epoch1  # same seed + epoch => same batches (all ranks agree)
    s.set_epoch(2)
    assert list(s) != epoch1
    no_sortagrad = BucketBatchSampler(lengths, max_frames_per_batch=2000, seed=5)
    first = [max(lengths[i] for i in b) for b in no_sortagrad]
    assert first != sorted(first)


def test_works_as_dataloader_batch_sampler():
    lengths = [3, 1, 2, 5, 4]
    ds = [torch.full((n,), float(i)) for i, n in enumerate(lengths)]
    loader = DataLoader(ds, batch_sampler=BucketBatchSampler(lengths, max_items=2, shuffle=False),
                        collate_fn=lambda items: [int(x[0]) for x in items])
    assert list(loader) == [[1, 2], [0, 4], [3]]


def test_invalid_arguments():
    with pytest.raises(ValueError, match="max_frames_per_batch or max_items"):
        BucketBatchSampler([1, 2])
    with pytest.raises(ValueError, match="rank"):
        BucketBatchSampler([1, 2], max_items=1, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="empty"):
        BucketBatchSampler([], max_items=1)
    assert BucketBatchSampler([1, 2], max_frames=3).max_frames == 3  # trainer's alias

"""Weighted training manifests: spec parsing, per-epoch draws, and the trainer reading several manifests."""
from collections import Counter

import pytest
from torch.utils.data import Dataset

from crnn.data.mixing import WeightedMix, manifest_specs, parse_manifest_spec


class Items(Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return i


def test_spec_parsing(tmp_path):
    assert parse_manifest_spec("a.jsonl") == ("a.jsonl", 1.0)
    assert parse_manifest_spec("data/b.jsonl:0.3") == ("data/b.jsonl", 0.3)
    assert parse_manifest_spec("a:b.jsonl") == ("a:b.jsonl", 1.0)  # not a number: part of the name
    odd = tmp_path / "take:2"
    odd.write_text("")
    assert parse_manifest_spec(str(odd)) == (str(odd), 1.0)  # an existing file whose name ends in :2
    for bad in ("a.jsonl:0", "a.jsonl:-1", "a.jsonl:nan", "a.jsonl:inf"):
        with pytest.raises(ValueError, match="positive"):
            parse_manifest_spec(bad)
    assert manifest_specs(None) == [] and manifest_specs("a") == ["a"] and manifest_specs(["a", "b:2"]) == ["a", "b:2"]


def test_weights_set_items_per_epoch_and_fractions_redraw_each_epoch():
    # source 0: items 0..9 at weight 2; source 1: items 10..109 at weight 0.3
    lengths = [1.0] * 10 + [float(i) for i in range(100)]
    mix = WeightedMix(Items(110), [range(10), range(10, 110)], [2.0, 0.3], lengths, seed=1)
    assert len(mix) == 20 + 30
    seen = []
    for epoch in range(3):
        mix.set_epoch(epoch)
        items = [mix[k] for k in range(len(mix))]
        counts = Counter(items)
        assert all(counts[i] == 2 for i in range(10))  # whole passes: every item, twice
        drawn = [i for i in items if i >= 10]
        assert len(drawn) == 30 and len(set(drawn)) == 30  # one per stratum: no repeats
        seen.append(set(drawn))
    assert seen[0] != seen[1] != seen[2]  # a fresh share each epoch
    assert len(seen[0] | seen[1] | seen[2]) > 30
    # slot k always holds an item of its stratum: lengths() bounds every draw
    bounds = mix.lengths()
    for epoch in range(5):
        mix.set_epoch(epoch)
        assert all(lengths[mix._index[k]] <= bounds[k] for k in range(len(mix)))
    mix.set_epoch(1)
    again = [mix[k] for k in range(len(mix))]
    mix.set_epoch(1)
    assert again == [mix[k] for k in range(len(mix))]  # the draw of an epoch is reproducible


def test_a_mix_with_no_items_is_refused():
    with pytest.raises(ValueError, match="no item"):
        WeightedMix(Items(0), [[]], [1.0])


@pytest.mark.slow
def test_train_reads_several_weighted_manifests(tmp_path):
    from cli_helpers import TINY, run_cli
    from crnn.data.builtin.dtmf import write_dtmf_dataset

    a = write_dtmf_dataset(tmp_path / "a", n=8, seed=1, sample_rate=8000)
    b = write_dtmf_dataset(tmp_path / "b", n=4, seed=2, sample_rate=8000)
    r = run_cli("train", "--train-manifest", a, "--train-manifest", f"{b}:2.5", "--val-manifest", b,
                "--out", tmp_path / "run", "--epochs", "1", "--batch-size", "4", "--warmup-steps", "2",
                "--model", "tiny", *TINY)
    assert r.returncode == 0, r.stderr
    assert "training mix: 8 x 1, 4 x 2.5 -> 18 items per epoch" in r.stderr
    r = run_cli("train", "--train-manifest", a, "--train-manifest", f"{b}:0", "--val-manifest", b,
                "--out", tmp_path / "run2", "--epochs", "1", "--model", "tiny", *TINY)
    assert r.returncode == 1 and "error:" in r.stderr and "positive" in r.stderr and "Traceback" not in r.stderr

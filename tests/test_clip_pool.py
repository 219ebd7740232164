"""Pre-rendered action clips (``crnn.data.builtin.clip_pool``, ``crnn train --clip-pool``): the pool hands out
exactly the clips the renderer draws, is reused rather than rendered twice, is never read half-written or
for another set, walks on each epoch, survives a loader process, and trains through the CLI."""
import json
import pickle

import pytest
import torch

from cli_helpers import run_cli
from crnn.data.builtin import clip_pool
from crnn.data.builtin.actions import ActionsDataset
from crnn.data.builtin.clip_pool import ClipPool

SIZE = (32, 32)


def config():
    """The look the task's training set renders at SIZE (the pool must be built with the set's own)."""
    return ActionsDataset(1, seed=3, train=True, frame_size=SIZE).config


def same_item(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in ("signal", "tokens", "frame_labels")) and a["text"] == b["text"]


@pytest.fixture(scope="module")
def pool_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def pool(pool_dir):
    return ClipPool.build(pool_dir, 10, 3, "train", config(), SIZE, workers=2, verbose=False)


def test_pooled_items_are_the_rendered_ones_with_the_same_augmentation(pool):
    fresh = ActionsDataset(10, seed=3, train=True, frame_size=SIZE)
    pooled = ActionsDataset(10, seed=3, train=True, frame_size=SIZE, pool=pool)
    assert len(pool) == 10 and pool.meta["complete"] and pool.frame_shape == (3, *SIZE)
    for i in range(10):  # epoch 0: pool clip i is clip i, with the same speed and codec draws
        assert same_item(fresh[i], pooled[i]), i
    frames, actions, labels = pool.clip(4)
    assert frames.dtype.name == "uint8" and frames.shape[1:] == (3, *SIZE) and len(labels) == len(frames)
    assert " ".join(actions) == fresh[4]["text"]


def test_epochs_walk_on_through_the_pool_with_fresh_augmentation(pool):
    small = ActionsDataset(4, seed=3, train=True, frame_size=SIZE, pool=pool)
    small.set_epoch(1)
    assert [small[i]["path"] for i in range(4)] == [f"actions:train:3:pool{k}" for k in (4, 5, 6, 7)]
    small.set_epoch(2)
    assert [small[i]["path"] for i in range(4)] == [f"actions:train:3:pool{k}" for k in (8, 9, 0, 1)]
    _, actions, _ = pool.clip(8)
    assert small[0]["text"] == " ".join(actions)


def test_a_pool_is_reused_not_rendered_again(pool, pool_dir, monkeypatch):
    def no_rendering(*args):
        raise AssertionError("rendered again")

    monkeypatch.setattr(clip_pool, "_render_range", no_rendering)
    again = ClipPool.build(pool_dir, 10, 3, "train", config(), SIZE, workers=1, verbose=False)
    assert again.folder == pool.folder


def test_an_incomplete_pool_is_rendered_again_and_a_wrong_one_refused(tmp_path, pool):
    first = ClipPool.build(tmp_path, 3, 5, "train", config(), SIZE, workers=1, verbose=False)
    meta = json.loads((first.folder / "pool.json").read_text())
    (first.folder / "pool.json").write_text(json.dumps({**meta, "complete": False}))
    with pytest.raises(ValueError, match="incomplete"):
        ClipPool(first.folder)
    again = ClipPool.build(tmp_path, 3, 5, "train", config(), SIZE, workers=1, verbose=False)
    assert again.meta["complete"] and len(again) == 3
    assert not list(tmp_path.glob("*.tmp-*"))  # nothing half-written left behind
    with pytest.raises(ValueError, match="other clips"):
        ActionsDataset(3, seed=6, train=True, frame_size=SIZE, pool=again)  # another seed's clips
    with pytest.raises(ValueError, match="at least one clip"):
        ClipPool.build(tmp_path, 0, 5, "train", config(), SIZE)


def test_a_pool_crosses_into_a_loader_process(pool):
    pooled = ActionsDataset(10, seed=3, train=True, frame_size=SIZE, pool=pool)
    pooled[0]  # maps the file here ...
    copy = pickle.loads(pickle.dumps(pooled))  # ... and a worker maps it again, never inherits the map
    assert copy.pool._frames is None and same_item(copy[2], pooled[2])
    loader = torch.utils.data.DataLoader(pooled, batch_size=None, num_workers=1)
    assert same_item(next(iter(loader)), pooled[0])


@pytest.mark.slow
def test_cli_trains_on_a_pool_and_refuses_it_elsewhere(tmp_path):
    out, cache = tmp_path / "run", tmp_path / "cache"
    r = run_cli("train", "--task", "actions", "--clip-pool", "16", "--cache-dir", cache, "--out", out,
                "--train-size", "8", "--val-size", "4", "--epochs", "1", "--batch-size", "4",
                "--frontend-arg", "height=32", "--frontend-arg", "width=32", "--threads", "1", "--workers", "0",
                "--no-progress", "--no-tensorboard")
    assert r.returncode == 0, r.stderr
    assert "rendering 16 train clips" in r.stderr and (out / "last.pt").is_file()
    (folder,) = cache.iterdir()
    assert json.loads((folder / "pool.json").read_text())["frame_shape"] == [3, 32, 32]
    r = run_cli("train", "--task", "dtmf", "--clip-pool", "16", "--out", tmp_path / "d")
    assert r.returncode == 2 and r.stderr.startswith("error: --clip-pool pre-renders the built-in action clips")

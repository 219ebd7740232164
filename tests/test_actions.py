"""The synthetic action task: clip structure, both looks, the held-out look, splits, dataset contract, mp4 export,
a short training run."""
from itertools import groupby

import numpy as np
import pytest
import torch

import crnn
from train_helpers import fit_batch
from crnn.data.builtin import action_scenes as scenes
from crnn.data.builtin.actions import (ACTIONS, PALETTE, ActionsConfig, ActionsDataset, actions_splits, actions_tokenizer, clip_rng,
                               generate_clip, render_clip, write_action_clips)
from crnn.data.collate import collate
from crnn.data.manifest import read_manifest
from crnn.data.video import read_video
from crnn.data.video.dataset import make_video_dataset


pytestmark = pytest.mark.usefixtures("one_thread")


def test_clip_structure_and_determinism():
    cfg = ActionsConfig(look="basic")
    for i in range(30):
        frames, actions, labels = generate_clip(clip_rng("train", 3, i), cfg)
        assert frames.dtype == np.uint8 and frames.shape[1:] == (3, cfg.size, cfg.size)
        assert cfg.min_actions <= len(actions) <= cfg.max_actions
        assert all(a != b for a, b in zip(actions, actions[1:]))  # a repeat would be invisible
        runs = [(ACTIONS[k], len(list(g))) for k, g in groupby(labels.tolist())]
        assert [a for a, _ in runs] == actions
        assert all(cfg.min_frames <= n <= cfg.max_frames for _, n in runs)
        assert len(frames) / cfg.fps <= 6.0
    a, b = generate_clip(clip_rng("train", 3, 7), cfg), generate_clip(clip_rng("train", 3, 7), cfg)
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]
    c = generate_clip(clip_rng("valid", 3, 7), cfg)
    assert not (c[0].shape == a[0].shape and np.array_equal(c[0], a[0]))


def test_actions_change_frames_and_still_does_not():
    cfg = ActionsConfig(look="basic", noise=0.0)  # without noise, "still" frames repeat exactly
    seen = set()
    for i in range(40):
        frames, actions, labels = generate_clip(clip_rng("train", 0, i), cfg)
        diff = np.abs(frames[1:].astype(int) - frames[:-1].astype(int)).sum(axis=(1, 2, 3))  # frame t+1 vs t
        for t in range(1, len(labels)):
            if labels[t] != labels[t - 1]:
                continue
            name = ACTIONS[labels[t]]
            seen.add(name)
            if name == "still":
                assert diff[t - 1] == 0
            else:
                assert diff[t - 1] > 0, (i, t, name)
    assert seen == set(ACTIONS)


def actor_centroid(frame: np.ndarray) -> tuple[float, float]:
    """(x, y) centroid of the pixels showing a palette colour (or its flash inverse) in a noise-free frame."""
    colours = np.concatenate([PALETTE, 255 - PALETTE]).astype(np.int32)
    dist = np.abs(frame[None].astype(np.int32) - colours[:, :, None, None]).max(1)  # (P, H, W)
    hits = dist <= 2
    ys, xs = np.nonzero(hits[hits.sum((1, 2)).argmax()])
    return float(xs.mean()), float(ys.mean())


def test_move_directions_follow_the_labels():
    cfg = ActionsConfig(look="basic", noise=0.0, max_distractors=0)
    checked = 0
    for i in range(40):
        frames, actions, labels = generate_clip(clip_rng("train", 5, i), cfg)
        f = frames.astype(np.int32)
        for k, g in groupby(range(len(labels)), key=lambda t: labels[t]):
            idx = list(g)
            name = ACTIONS[k]
            if not name.startswith("move_") or idx[0] == 0:
                continue
            # Noise-free frames: the actor's pixels are exactly its palette colour, which the background
            # (values 38..182) never reaches; compare the actor's centroid before and after the move.
            before, after = actor_centroid(f[idx[0] - 1]), actor_centroid(f[idx[-1]])
            dx, dy = after[0] - before[0], after[1] - before[1]
            sign = {"move_left": (dx, -1), "move_right": (dx, 1), "move_up": (dy, -1), "move_down": (dy, 1)}[name]
            assert np.sign(sign[0]) == sign[1], (i, name, dx, dy)
            checked += 1
    assert checked > 20


def test_dataset_contract_splits_and_augmentation():
    tok = actions_tokenizer()
    assert len(tok) == len(ACTIONS) + 1 and tok.kind == "label"
    train, val = actions_splits(8, 4, seed=1)
    item = val[0]
    assert item["signal"].dtype == torch.uint8 and item["signal"].shape[1:] == (3, 64, 64)
    assert item["tokens"].tolist() == tok.encode(item["text"])
    runs = [k for k, _ in groupby(item["frame_labels"].tolist())]
    assert runs == item["tokens"].tolist() and len(item["frame_labels"]) == len(item["signal"])
    # The validation split is fixed; training clips are fresh each epoch and rescaled in time.
    val2 = ActionsDataset(4, seed=0, split="valid")
    assert torch.equal(val2[0]["signal"], item["signal"])
    base = ActionsDataset(8, seed=1, split="train", train=False)
    ratios = []
    for epoch in range(3):
        train.set_epoch(epoch)
        for i in range(8):
            it = train[i]
            assert len(it["frame_labels"]) == len(it["signal"])
            assert [k for k, _ in groupby(it["frame_labels"].tolist())] == it["tokens"].tolist()
            if epoch == 0:
                ratios.append(len(it["signal"]) / len(base[i]["signal"]))
    assert all(0.78 <= r <= 1.22 for r in ratios) and len(set(ratios)) > 1
    train.set_epoch(0)
    epoch0 = [train[i]["text"] for i in range(8)]
    train.set_epoch(1)
    assert [train[i]["text"] for i in range(8)] != epoch0  # fresh clips
    assert [val[i]["text"] for i in range(4)] == [val2[i]["text"] for i in range(4)]


def test_write_action_clips_roundtrip(tmp_path):
    manifest = write_action_clips(tmp_path / "actions", n=3, seed=4)
    assert manifest == tmp_path / "actions" / "manifest.jsonl"
    rows = read_manifest(manifest)
    assert len(rows) == 3
    tok = actions_tokenizer()
    for i, row in enumerate(rows):
        rendered = render_clip(clip_rng("train", 4, i))  # the varied look: files keep their own size and rate
        frames = rendered.frames
        assert row["text"] == " ".join(rendered.actions) and row["num_frames"] == len(frames)
        assert row["fps"] == rendered.fps and row["frame_labels"] == [ACTIONS[k] for k in rendered.labels]
        clip = read_video(row["path"])
        assert clip.shape == frames.shape
        # h264 at crf 18 keeps the picture (4:2:0 chroma blurs the sharp colour edges of tiles, and sensor
        # noise is smoothed away): small errors against the picture's own spread
        ref = torch.from_numpy(frames).float()
        assert (clip.float() - ref).abs().mean() < 0.3 * (ref - ref.mean()).abs().mean(), rendered.look
    reader_args = crnn.create_model("video_tiny", vocab_size=len(tok)).reader_args
    ds = make_video_dataset(rows, tok, reader_args, train=False)
    item = ds[0]
    assert item["signal"].shape[1:] == (3, 64, 64) and item["text"] == rows[0]["text"]
    assert [k for k, _ in groupby(item["frame_labels"].tolist())] == item["tokens"].tolist()


def test_short_training_drops_the_loss():
    """A few steps on one fixed batch of small clips: CTC loss must fall clearly."""
    torch.manual_seed(0)
    cfg = ActionsConfig(size=32, max_actions=3, max_frames=7)
    ds = ActionsDataset(6, seed=2, split="train", config=cfg)
    tok = actions_tokenizer()
    batch = collate([ds[i] for i in range(len(ds))])
    model = crnn.create_model("video_tiny", vocab_size=len(tok), height=32, width=32, cnn_grid=2,
                              hidden_size=48, num_layers=1)
    losses = fit_batch(model, batch, 30, lr=3e-3)
    assert np.isfinite(losses).all()
    assert np.mean(losses[-3:]) < 0.6 * np.mean(losses[:3]), losses


def test_codec_look_resembles_a_real_mp4_roundtrip(tmp_path):
    """Training clips may get the look of lossy coding; it must bring them closer to what an mp4 gives back."""
    from crnn.data.video import codec_degrade, read_video, write_video

    frames, _, _ = generate_clip(clip_rng("test", 0, 1), ActionsConfig(look="basic"))
    clean = torch.from_numpy(frames)
    decoded = read_video(write_video(tmp_path / "c.mp4", clean, fps=10.0))
    degraded = codec_degrade(clean, np.random.default_rng(0))
    assert degraded.dtype == torch.uint8 and degraded.shape == clean.shape
    err_clean = (clean.float() - decoded.float()).abs().mean()
    err_degraded = (degraded.float() - decoded.float()).abs().mean()
    assert err_degraded < 0.9 * err_clean, (err_degraded, err_clean)

    # About half of the training clips get it, validation clips never.
    train = ActionsDataset(40, seed=3, split="train", train=True, speed=0.0, config=ActionsConfig(look="basic"))
    plain = ActionsDataset(40, seed=3, split="train", train=False, config=ActionsConfig(look="basic"))
    changed = [not torch.equal(train[i]["signal"], plain[i]["signal"]) for i in range(40)]
    assert 8 <= sum(changed) <= 32
    assert not any(not torch.equal(a["signal"], b["signal"]) for a, b in
                   zip(ActionsDataset(5, split="valid"), ActionsDataset(5, split="valid", codec_prob=1.0)))


# -- the varied look ---------------------------------------------------------------------------------
def test_varied_clips_resample_to_the_configured_size_and_rate():
    cfg = ActionsConfig()
    assert cfg.look == "varied"
    sizes, rates = set(), set()
    for i in range(30):
        rendered = render_clip(clip_rng("train", 3, i), cfg)
        sizes.add(rendered.frames.shape[2:])
        rates.add(rendered.fps)
        runs = [(ACTIONS[k], len(list(g))) for k, g in groupby(rendered.labels.tolist())]
        assert [a for a, _ in runs] == rendered.actions and len(rendered.labels) == len(rendered.frames)
        assert all(a != b for a, b in zip(rendered.actions, rendered.actions[1:]))
        frames, actions, labels = generate_clip(clip_rng("train", 3, i), cfg)
        assert frames.dtype == np.uint8 and frames.shape[1:] == (3, cfg.size, cfg.size)
        assert actions == rendered.actions and len(labels) == len(frames)
        assert [ACTIONS[k] for k, _ in groupby(labels.tolist())] == actions  # no action lost by resampling
        # Durations are drawn in seconds: 0.5..1.0 s at 10 fps, give or take a frame of rounding per side.
        assert all(cfg.min_frames - 2 <= len(list(g)) <= cfg.max_frames + 2 for _, g in groupby(labels.tolist()))
    assert len(sizes) > 5 and len(rates) > 2
    assert all(h % 2 == 0 and w % 2 == 0 for h, w in sizes)  # yuv420p video files need even sizes


def test_held_out_look_is_never_drawn_for_training():
    looks = {split: [render_clip(clip_rng(split, 0, i), held_out=split == "test_look").look for i in range(40)]
             for split in ("train", "valid", "test_look")}
    for split in ("train", "valid"):
        assert not {lk.shape for lk in looks[split]} & set(scenes.HELD_OUT_SHAPES)
        assert not {lk.background for lk in looks[split]} & set(scenes.HELD_OUT_BACKGROUNDS)
    assert {lk.shape for lk in looks["train"]} == set(scenes.SHAPE_FAMILIES)
    assert {lk.background for lk in looks["train"]} == set(scenes.BACKGROUND_FAMILIES)
    assert {lk.shape for lk in looks["test_look"]} == set(scenes.HELD_OUT_SHAPES)
    assert {lk.background for lk in looks["test_look"]} == set(scenes.HELD_OUT_BACKGROUNDS)
    ds = ActionsDataset(3, split="test_look")
    assert ds[0]["signal"].shape[1:] == (3, 64, 64) and ds[0]["path"].startswith("actions:test_look:")
    with pytest.raises(ValueError, match="varied look only"):
        ActionsDataset(3, split="test_look", config=ActionsConfig(look="basic"))[0]


def clean_look(shape: str) -> scenes.SceneLook:
    """A steady, noise-free look on a flat grey background: the actor is the only thing that changes."""
    return scenes.SceneLook(height=64, width=80, fps=10.0, shape=shape, background="flat", texture=0.0, distractors=0,
                            light_from=1.0, light_to=1.0, shake=0.0, occluder=False, blur=0.0, noise=0.0)


@pytest.mark.parametrize("shape", scenes.SHAPE_FAMILIES + scenes.HELD_OUT_SHAPES)
def test_varied_actions_mean_what_they_say(shape):
    """Moves go their way, grow/shrink change the actor's area, still changes nothing, flash inverts it."""
    checked = set()
    for i in range(12):
        clip = render_clip(clip_rng("train", 9, i), look=clean_look(shape))
        f = clip.frames.astype(np.int32)
        actor = np.abs(f - 128).sum(1) > 60  # (T, H, W): the actor's pixels (its colour is far from grey)
        for k, g in groupby(range(len(clip.labels)), key=lambda t: clip.labels[t]):
            idx = list(g)
            name = ACTIONS[k]
            if idx[0] == 0 or len(idx) < 2:
                continue
            a, b = actor[idx[0] - 1], actor[idx[-1]]
            if name.startswith("move_"):
                ya, xa = np.nonzero(a)
                yb, xb = np.nonzero(b)
                d = {"move_left": xa.mean() - xb.mean(), "move_right": xb.mean() - xa.mean(),
                     "move_up": ya.mean() - yb.mean(), "move_down": yb.mean() - ya.mean()}[name]
                assert d > 2, (shape, i, name, d)
            elif name in ("grow", "shrink"):
                ratio = b.sum() / max(a.sum(), 1)
                assert (ratio > 1.15) if name == "grow" else (ratio < 0.87), (shape, i, name, ratio)
            elif name == "still":
                assert np.array_equal(f[idx[0]], f[idx[-1]])
            elif name == "flash":
                inside = actor[idx[0]] & actor[idx[0] + 1] if idx[0] + 1 <= idx[-1] else None
                if inside is not None and inside.sum() > 20:
                    c0, c1 = f[idx[0]][:, inside].mean(1), f[idx[0] + 1][:, inside].mean(1)
                    assert np.abs(c0 + c1 - 255).max() < 40, (c0, c1)  # colour, then its inverse
            checked.add(name)
    assert len(checked & {"move_left", "move_right", "move_up", "move_down"}) >= 3 and len(checked) >= 6, checked


def test_glyph_actors_fall_back_to_polygons_without_fonts(monkeypatch):
    monkeypatch.setattr(scenes, "FONT_GLOBS", ("/nonexistent/DejaVu*.ttf",))
    alpha = scenes.actor_alpha("glyph", np.random.default_rng(0))
    assert alpha.shape == (scenes.TEMPLATE, scenes.TEMPLATE) and 0.1 < alpha.mean() < 0.9
    clip = render_clip(clip_rng("train", 0, 1), look=clean_look("glyph"))
    assert np.isfinite(clip.frames).all() and len(clip.frames) > 0


@pytest.mark.skipif(not scenes.font_files(), reason="no DejaVu fonts installed")
def test_glyph_actors_come_from_the_system_fonts():
    rng = np.random.default_rng(0)
    alphas = [scenes.actor_alpha("glyph", rng) for _ in range(6)]
    assert all(a.shape == (scenes.TEMPLATE, scenes.TEMPLATE) and 0.05 < a.mean() < 0.8 for a in alphas)
    assert len({a.tobytes() for a in alphas}) > 3


@pytest.mark.slow
def test_synth_writes_the_held_out_look_and_eval_reads_it(tmp_path):
    from cli_helpers import run_cli

    r = run_cli("synth", "actions", "--out", tmp_path / "look", "--n", "4", "--seed", "1", "--split", "test_look")
    assert r.returncode == 0, r.stderr
    rows = read_manifest(tmp_path / "look" / "manifest.jsonl")
    assert len(rows) == 4 and all(row["path"].endswith(".mp4") for row in rows)
    for i, row in enumerate(rows):
        rendered = render_clip(clip_rng("test_look", 1, i), held_out=True)
        assert rendered.look.shape in scenes.HELD_OUT_SHAPES and rendered.look.background in scenes.HELD_OUT_BACKGROUNDS
        assert row["text"] == " ".join(rendered.actions) and read_video(row["path"]).shape == rendered.frames.shape
    tok = actions_tokenizer()
    reader_args = crnn.create_model("video_tiny", vocab_size=len(tok)).reader_args
    item = make_video_dataset(rows, tok, reader_args, train=False)[0]  # resized and resampled like any clip
    assert item["signal"].shape[1:] == (3, 64, 64) and len(item["frame_labels"]) == len(item["signal"])
    assert [k for k, _ in groupby(item["frame_labels"].tolist())] == item["tokens"].tolist()

    bad = run_cli("synth", "actions", "--out", tmp_path / "b", "--n", "2", "--split", "test_look", "--look", "basic")
    assert bad.returncode == 1 and bad.stderr.startswith("error:") and "test_look" in bad.stderr


@pytest.mark.parametrize("task", ["actions", "actions_basic"])
def test_builtin_clips_come_at_the_models_frame_size(task):
    """A model reading 32x48 frames gets built-in clips of that size, as a reader resizes files to it;
    the varied look is resized once from its rendered size, so it equals rendering at the model's size."""
    from crnn.data.build import build_builtin
    from crnn.data.video.reader import resize_frames

    bundle = build_builtin(task, 3, 2, 0, None, reader_args={"height": 32, "width": 48})
    for ds in (bundle.train, bundle.val):
        for i in range(2):
            item = ds[i]
            assert item["signal"].dtype == torch.uint8 and item["signal"].shape[1:] == (3, 32, 48)
            assert len(item["frame_labels"]) == len(item["signal"])
    look = ActionsConfig(look="basic" if task == "actions_basic" else "varied")
    full = ActionsDataset(2, seed=10_007, train=False, config=look)[1]["signal"]  # the task's own 64x64
    square = ActionsDataset(2, seed=10_007, train=False, config=look, frame_size=(32, 32))[1]["signal"]
    assert full.shape[-2:] == (64, 64) and square.shape[-2:] == (32, 32)
    if task == "actions_basic":  # drawn at 64x64, then resized like a file
        assert torch.equal(square, resize_frames(full, (32, 32)))
    else:  # one resize from the rendered size: close to resizing the 64x64 clip, not identical
        assert (square.float() - resize_frames(full, (32, 32)).float()).abs().mean() < 4.0

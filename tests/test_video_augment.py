"""Clip augmentation: what each transform does to a clip, frame drop/repeat with labels, flips and labels,
determinism, the batch path, and the ``crnn train`` flags."""
import subprocess
import sys
from itertools import groupby

import numpy as np
import pytest
import torch

from crnn.data.builtin.actions import ACTIONS, ActionsConfig, ActionsDataset
from crnn.data.video.augment import (STANDARD, ClipAugment, ClipAugmentConfig, gaussian_blur, label_map_for,
                                     mirrored_label_ids, rotate_hue)
from crnn.data.video.dataset import VideoDataset
from crnn.tokenizer import Tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def smooth_clip(T: int = 6, H: int = 24, W: int = 32, moving: bool = True) -> torch.Tensor:
    """uint8 (T, 3, H, W) colour gradients (values 50..200, away from clipping), a bright square moving right."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, H), torch.linspace(0, 1, W), indexing="ij")
    base = torch.stack([50 + 100 * xx, 60 + 80 * yy, 120 - 60 * xx * yy])  # (3, H, W)
    frames = base.expand(T, -1, -1, -1).clone()
    for t in range(T):
        x0 = 4 + (2 * t if moving else 0)
        frames[t, :, 8:14, x0:x0 + 6] = torch.tensor([200.0, 190.0, 60.0])[:, None, None]
    return frames.round().to(torch.uint8)


def only(**fields) -> ClipAugment:
    return ClipAugment(ClipAugmentConfig(**fields))


@pytest.mark.parametrize("name", ["brightness", "contrast", "saturation", "hue", "crop", "scale", "translate", "blur",
                                  "channel_shuffle", "grayscale", "invert"])
def test_every_frame_gets_the_same_transform(name):
    """A clip of identical frames stays a clip of identical frames: one draw per clip, not per frame."""
    clip = smooth_clip(moving=False)
    value = {"hue": 0.2, "blur": 1.0, "channel_shuffle": 1.0, "grayscale": 1.0, "invert": 1.0}.get(name, 0.5)
    for seed in range(4):
        out = only(**{name: value})(clip, gen(seed))
        assert out.shape == clip.shape and out.dtype == torch.uint8
        assert all(torch.equal(out[0], out[t]) for t in range(1, len(out)))
    assert any(not torch.equal(only(**{name: value})(clip, gen(s)), clip) for s in range(4))


def test_brightness_scales_every_frame_by_one_factor_within_bounds():
    clip = smooth_clip().float() / 255
    factors = []
    for seed in range(12):
        out = only(brightness=0.4)(clip, gen(seed))
        ratio = out.mean((1, 2, 3)) / clip.mean((1, 2, 3))  # (T,)
        assert ratio.max() - ratio.min() < 1e-4  # the same on every frame (no value reaches 1 at <= 1.25)
        factors.append(float(ratio[0]))
    assert all(0.6 - 1e-4 <= f <= 1.4 + 1e-4 for f in factors)
    assert min(factors) < 0.95 and max(factors) > 1.05  # both directions are drawn


def test_contrast_scales_spread_about_the_mean_and_hue_keeps_luma():
    clip = smooth_clip().float() / 255
    out = only(contrast=0.5)(clip, gen(1))
    spread = out.std((1, 2, 3)) / clip.std((1, 2, 3))
    assert spread.max() - spread.min() < 0.02 and abs(float(spread[0]) - 1) > 0.02
    luma = torch.tensor([0.299, 0.587, 0.114])[:, None, None]
    shifted = rotate_hue(clip.clone(), 0.1)
    assert ((shifted * luma).sum(1) - (clip * luma).sum(1)).abs().max() < 2e-3  # hue shift leaves brightness
    assert (shifted - clip).abs().mean() > 0.01
    red = torch.tensor([0.8, 0.2, 0.2]).view(1, 3, 1, 1)
    assert float(rotate_hue(red, 0.1)[0, 1]) > 0.2  # towards yellow, as torchvision's adjust_hue
    grey = torch.full((2, 3, 4, 4), 0.5)
    assert torch.allclose(only(saturation=0.9, hue=0.3)(grey, gen(0)), grey, atol=1e-5)


def test_crop_scale_translate_keep_shape_and_move_content_alike():
    clip = smooth_clip()
    for fields in ({"crop": 0.5}, {"scale": 0.4}, {"translate": 0.3}, STANDARD):
        aug = ClipAugment.from_dict({k: v for k, v in fields.items() if k not in ("drop", "repeat", "noise")})
        for seed in range(3):
            out = aug(clip, gen(seed))
            assert out.shape == clip.shape and out.dtype == clip.dtype
    # A shift moves the square by the same offset on every frame: it still moves 2 px a frame.
    out = only(translate=0.2)(clip, gen(5)).float()
    xs = [float((out[t, 0] > 180).nonzero()[:, 1].float().mean()) for t in range(len(out))]  # the square's red
    steps = np.diff(xs)
    assert np.allclose(steps, 2, atol=0.6), steps


def test_blur_softens_and_matches_torchvision():
    import torchvision.transforms.v2.functional as TF

    x = torch.rand(3, 3, 16, 16)
    assert torch.allclose(gaussian_blur(x, 0.8), TF.gaussian_blur(x, [5, 5], [0.8, 0.8]), atol=1e-5)
    clip = smooth_clip()
    out = only(blur=1.0)(clip, gen(0)).float()
    tv = lambda f: (f[..., 1:] - f[..., :-1]).abs().mean()  # total variation
    assert tv(out) < tv(clip.float()) and abs(out.mean() - clip.float().mean()) < 1


def test_noise_is_finite_in_range_and_differs_between_frames():
    clip = smooth_clip(moving=False).float() / 255
    spreads = []
    for seed in range(6):
        out = only(noise=0.2)(clip, gen(seed))
        assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
        assert not torch.equal(out[0], out[1])  # sensor noise: fresh on every frame
        spreads.append(float((out - clip).std()))
    assert max(spreads) > 0.05 and max(spreads) < 0.2
    u8 = only(noise=0.2)(smooth_clip(), gen(3))
    assert u8.dtype == torch.uint8


def test_seed_fixes_the_result():
    clip = smooth_clip()
    aug = ClipAugment.from_dict(STANDARD)
    a, b, c = aug(clip, gen(7)), aug(clip, gen(7)), aug(clip, gen(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(aug.frame_indices(50, gen(7)), aug.frame_indices(50, gen(7)))


def test_frame_drop_and_repeat_stay_within_bounds():
    for drop, repeat in ((0.5, 0.0), (0.0, 0.5), (0.3, 0.3), (1.0, 0.0), (0.0, 1.0)):
        aug = only(drop=drop, repeat=repeat)
        for seed in range(20):
            T = 1 + seed
            idx = aug.frame_indices(T, gen(seed)).tolist()
            assert T // 2 <= len(idx) <= 2 * T and idx == sorted(idx) and len(idx) >= 1
            missing = sorted(set(range(T)) - set(idx))
            assert all(b - a > 1 for a, b in zip(missing, missing[1:]))  # never two neighbours dropped
            assert all(n <= 2 for n in np.bincount(idx))
    assert len(only(drop=1.0).frame_indices(10, gen(0))) == 5
    assert len(only(repeat=1.0).frame_indices(10, gen(0))) == 20


def test_actions_dataset_keeps_frame_labels_aligned_under_drop_and_repeat():
    cfg = ActionsConfig(look="basic")
    plain = ActionsDataset(10, seed=2, split="train", train=True, speed=0.0, codec_prob=0.0, config=cfg)
    aug = ActionsDataset(10, seed=2, split="train", train=True, speed=0.0, codec_prob=0.0, config=cfg,
                         clip_augment=only(drop=0.3, repeat=0.3))
    changed = 0
    for i in range(10):
        a, b = plain[i], aug[i]
        assert len(b["signal"]) == len(b["frame_labels"])
        assert len(a["signal"]) // 2 <= len(b["signal"]) <= 2 * len(a["signal"])
        assert [k for k, _ in groupby(b["frame_labels"].tolist())] == b["tokens"].tolist()
        changed += len(a["signal"]) != len(b["signal"])
        # Every augmented frame is one of the clip's frames with its own label.
        for frame, label in zip(b["signal"][:5], b["frame_labels"][:5].tolist()):
            j = next(j for j in range(len(a["signal"])) if torch.equal(a["signal"][j], frame))
            assert a["frame_labels"][j] == label
    assert changed >= 5


def test_flip_swaps_direction_labels_or_is_refused():
    assert mirrored_label_ids(["move_left", "move_right", "still"]) == [1, 0, 2]
    assert mirrored_label_ids(["LINKS", "RECHTS", "REGEN"]) == [1, 0, 2]  # German glosses (PHOENIX)
    with pytest.raises(ValueError, match="turn_left"):
        mirrored_label_ids(["turn_left", "still"])
    tok = Tokenizer(["turn_left", "wave"], kind="label")
    rows = [{"path": "x.mp4", "text": "wave turn_left"}]
    with pytest.raises(ValueError, match="flip"):
        VideoDataset(rows, tok, {"fps": 10, "height": 32, "width": 32}, train=True, flip=True)
    with pytest.raises(ValueError, match="flip"):
        VideoDataset(rows, tok, {}, train=True, clip_augment=only(flip=True))

    cfg = ActionsConfig(look="basic")
    plain = ActionsDataset(16, seed=4, split="train", train=True, speed=0.0, codec_prob=0.0, config=cfg)
    flipped = ActionsDataset(16, seed=4, split="train", train=True, speed=0.0, codec_prob=0.0, config=cfg,
                             clip_augment=only(flip=True))
    mirror = label_map_for(ACTIONS)
    n_flipped = 0
    for i in range(16):
        a, b = plain[i], flipped[i]
        if torch.equal(a["signal"], b["signal"]):
            assert b["text"] == a["text"]
            continue
        n_flipped += 1
        assert torch.equal(b["signal"], a["signal"].flip(-1))
        assert b["tokens"].tolist() == mirror[a["tokens"]].tolist()
        assert b["frame_labels"].tolist() == mirror[a["frame_labels"]].tolist()
        swap = {"move_left": "move_right", "move_right": "move_left"}
        assert b["text"].split() == [swap.get(w, w) for w in a["text"].split()]
    assert 3 <= n_flipped <= 13


def test_batch_path_leaves_padding_alone():
    x = torch.stack([smooth_clip(T=6), torch.cat([smooth_clip(T=4), torch.zeros(2, 3, 24, 32, dtype=torch.uint8)])])
    lengths = torch.tensor([6, 4])
    out = ClipAugment.from_dict(STANDARD).batch(x, lengths, gen(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(out[1, 4:], x[1, 4:]) and not torch.equal(out[1, :4], x[1, :4])
    feats = torch.randn(2, 5, 8)
    assert ClipAugment.from_dict(STANDARD).batch(feats, torch.tensor([5, 3]), gen(0)) is feats


@pytest.mark.cuda
def test_pixel_transforms_run_on_the_gpu():
    clip = smooth_clip()
    aug = only(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.05, crop=0.2, scale=0.15, translate=0.1, blur=1.0)
    cpu, gpu = aug(clip, gen(2)), aug(clip.cuda(), gen(2))
    assert gpu.is_cuda and (gpu.cpu().float() - cpu.float()).abs().max() <= 2
    noisy = only(noise=0.1)(clip.cuda(), gen(2))
    assert noisy.is_cuda and noisy.shape == clip.shape


def test_config_validation():
    with pytest.raises(ValueError, match="hue"):
        ClipAugmentConfig(hue=0.7)
    with pytest.raises(ValueError, match="unknown"):
        ClipAugmentConfig.from_dict({"brightnes": 0.2})
    with pytest.raises(ValueError, match="drop"):
        ClipAugmentConfig(drop=0.8, repeat=0.5)


@pytest.mark.slow
def test_train_cli_with_clip_augmentation(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "crnn", "train", "--task", "actions", "--out", str(out), "--train-size", "8",
           "--val-size", "4", "--epochs", "1", "--batch-size", "4", "--no-tensorboard", "--no-progress",
           "--workers", "0", "--clip-augment", "standard", "--clip-hue", "0.1", "--clip-flip", "--hidden-size", "16",
           "--num-layers", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    ckpt = torch.load(out / "last.pt", weights_only=True)
    saved = ckpt["train_state"]["config"]["clip_augment"]
    assert saved == {**STANDARD, "hue": 0.1, "flip": True}
    bad = subprocess.run(cmd[:4] + ["--out", str(tmp_path / "bad"), "--clip-hue", "0.9"], capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 1 and bad.stderr.startswith("error:") and "hue" in bad.stderr
    audio = subprocess.run([sys.executable, "-m", "crnn", "train", "--task", "dtmf", "--out", str(tmp_path / "a"),
                            "--clip-augment", "standard", "--train-size", "4", "--val-size", "2", "--epochs", "1",
                            "--workers", "0"], capture_output=True, text=True, timeout=120)
    assert audio.returncode == 1 and "error:" in audio.stderr and "video" in audio.stderr


def test_recolouring_changes_the_look_and_keeps_the_motion():
    """Channel permutation, grey and negative clips: colours change, where things move does not."""
    clip = smooth_clip()
    motion = (clip[1:].float() - clip[:-1].float()).abs().sum(1) > 0  # (T-1, H, W) pixels that change
    shuffled = only(channel_shuffle=1.0)(clip, gen(1))
    assert not torch.equal(shuffled, clip)
    assert sorted(shuffled[0].flatten(1).sum(1).tolist()) == sorted(clip[0].flatten(1).sum(1).tolist())
    grey = only(grayscale=1.0)(clip, gen(1))
    assert torch.equal(grey[:, 0], grey[:, 1]) and torch.equal(grey[:, 1], grey[:, 2])
    negative = only(invert=1.0)(clip, gen(1))
    assert torch.equal(negative, 255 - clip)
    for out in (shuffled, negative):
        assert torch.equal((out[1:].float() - out[:-1].float()).abs().sum(1) > 0, motion)
    assert torch.equal(only(channel_shuffle=0.0, invert=0.0)(clip, gen(1)), clip)
    with pytest.raises(ValueError, match="invert"):
        ClipAugmentConfig(invert=1.5)

"""Built-in synthetic video task: a shape on a textured, noisy background performs 2-6 actions.

Each clip shows one "actor" shape (rectangle, triangle or ellipse; random colour, size, start
position and speed) and possibly a static distractor shape. The actor performs a sequence of actions
from :data:`ACTIONS`, each for a random number of frames; two neighbours are never the same action
(a repeat would look like one long action). The transcript is the ordered action list; frame-level
ground truth (one action per frame) comes with every clip for the frame-accuracy metric.

Clips are generated on the fly from ``(split, seed, index)`` with numpy, so a split is fixed by its
seed and the validation split never overlaps training; :func:`write_action_clips` writes them as
real mp4 files plus a ``manifest.jsonl``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from crnn.tokenizer import Tokenizer
from crnn.data.video import augment_indices, codec_degrade, write_video

ACTIONS = ("move_left", "move_right", "move_up", "move_down", "grow", "shrink", "rotate", "flash", "still")
SPLITS = {"train": 0, "valid": 1, "test": 2}  # part of every clip's random seed: splits never overlap
SHAPES = ("rect", "triangle", "ellipse")  # all elongated, so rotation is visible
PALETTE = np.array([[230, 40, 40], [40, 200, 60], [50, 90, 240], [240, 220, 40],
                    [40, 220, 230], [230, 60, 220], [250, 140, 20], [245, 245, 245]], dtype=np.float32)


@dataclass
class ActionsConfig:
    size: int = 64            # frame height and width in pixels
    fps: float = 10.0         # frames per second (stored in written files)
    min_actions: int = 2      # actions per clip ...
    max_actions: int = 6      # ... inclusive
    min_frames: int = 5       # frames per action ... (>= 4 keeps labels feasible after x4 subsampling)
    max_frames: int = 10      # ... inclusive
    max_distractors: int = 1  # static extra shapes
    noise: float = 8.0        # per-frame pixel noise standard deviation (0..255 scale)


def actions_tokenizer() -> Tokenizer:
    """Label tokenizer of the action task: id = 1 + index in ACTIONS (0 is the CTC blank)."""
    return Tokenizer(list(ACTIONS), kind="label")


# -- rendering --------------------------------------------------------------------------------------
def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth random colour field + a faint stripe texture: (3, size, size) float32."""
    coarse = torch.from_numpy(rng.uniform(50, 170, (1, 3, 5, 5)).astype(np.float32))
    bg = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=True)[0].numpy()
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    theta, freq = rng.uniform(0, np.pi), rng.uniform(0.3, 0.9)
    stripes = 12 * np.sin(freq * (np.cos(theta) * xx + np.sin(theta) * yy) + rng.uniform(0, 2 * np.pi))
    return np.clip(bg + stripes[None], 0, 255).astype(np.float32)


def _shape_alpha(kind: str, cx: float, cy: float, s: float, aspect: float, angle: float,
                 yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Antialiased coverage (H, W) in [0, 1] of a shape of scale ``s`` rotated by ``angle`` (radians)."""
    dx, dy = xx - cx, yy - cy
    c, si = np.cos(angle), np.sin(angle)
    u, v = c * dx + si * dy, -si * dx + c * dy  # shape coordinates
    a, b = s * np.sqrt(aspect), s / np.sqrt(aspect)  # half extents along u and v
    if kind == "rect":
        d = np.maximum(np.abs(u) - a, np.abs(v) - b)
    elif kind == "ellipse":
        d = (np.sqrt((u / a) ** 2 + (v / b) ** 2) - 1) * b
    else:  # triangle pointing along +u: vertices (a, 0), (-a, b), (-a, -b)
        n = np.hypot(2 * a, b)
        d = np.maximum.reduce([-a - u, (b * u + 2 * a * v - a * b) / n, (b * u - 2 * a * v - a * b) / n])
    return np.clip(0.5 - d, 0.0, 1.0).astype(np.float32)


@dataclass
class _Actor:
    kind: str
    cx: float
    cy: float
    s: float
    aspect: float
    angle: float
    color: np.ndarray


def _plan_action(action: str, actor: _Actor, n: int, size: int, rng: np.random.Generator):
    """Per-frame change for ``action`` over ``n`` frames, or None if it does not fit the frame."""
    r = actor.s * np.sqrt(actor.aspect) + 1  # bounding radius
    if action.startswith("move_"):
        room = {"move_left": actor.cx - r, "move_right": size - 1 - r - actor.cx,
                "move_up": actor.cy - r, "move_down": size - 1 - r - actor.cy}[action]
        v = min(rng.uniform(1.5, 3.0), room / n)
        return v if v >= 1.0 else None
    if action == "grow":
        g = min(rng.uniform(1.06, 1.1), (0.25 * size / actor.s) ** (1 / n))
        edge = min(actor.cx, actor.cy, size - 1 - actor.cx, size - 1 - actor.cy)
        g = min(g, (edge / r) ** (1 / n)) if edge > r else 0.0
        return g if g >= 1.04 else None
    if action == "shrink":
        g = min(rng.uniform(1.06, 1.1), (actor.s / 3.5) ** (1 / n))
        return g if g >= 1.04 else None
    if action == "rotate":
        return np.deg2rad(rng.uniform(12, 25)) * rng.choice([-1, 1])
    return 0.0  # flash, still


def generate_clip(rng: np.random.Generator, cfg: ActionsConfig | None = None) -> tuple[np.ndarray, list[str], np.ndarray]:
    """One clip of the action task.

    Returns:
        frames uint8 (T, 3, H, W), the ordered action names, frame_labels int64 (T,) (index into ACTIONS).
    """
    cfg = cfg or ActionsConfig()
    size = cfg.size
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    bg = _background(rng, size)
    # Static distractors are painted into the background once.
    for _ in range(int(rng.integers(0, cfg.max_distractors + 1))):
        s = rng.uniform(3, 6)
        alpha = _shape_alpha(str(rng.choice(["rect", "ellipse"])), rng.uniform(s, size - s), rng.uniform(s, size - s),
                             s, 1.0, 0.0, yy, xx)
        bg = bg * (1 - alpha) + PALETTE[rng.integers(len(PALETTE))][:, None, None] * 0.8 * alpha
    s = rng.uniform(6, 10)
    aspect = rng.uniform(1.7, 2.4)
    r = s * np.sqrt(aspect) + 2
    actor = _Actor(str(rng.choice(SHAPES)), rng.uniform(r, size - 1 - r), rng.uniform(r, size - 1 - r), s, aspect,
                   rng.uniform(0, 2 * np.pi), PALETTE[rng.integers(len(PALETTE))].copy())

    n_actions = int(rng.integers(cfg.min_actions, cfg.max_actions + 1))
    states, labels, actions = [], [], []  # per frame: (cx, cy, s, angle, inverted colour)
    prev = None
    for _ in range(n_actions):
        n = int(rng.integers(cfg.min_frames, cfg.max_frames + 1))
        plans = {a: _plan_action(a, actor, n, size, rng) for a in ACTIONS if a != prev}
        choices = [a for a, p in plans.items() if p is not None]  # flash/still/rotate always fit
        action = str(rng.choice(choices))
        step = plans[action]
        for k in range(n):
            if action == "move_left":
                actor.cx -= step
            elif action == "move_right":
                actor.cx += step
            elif action == "move_up":
                actor.cy -= step
            elif action == "move_down":
                actor.cy += step
            elif action == "grow":
                actor.s *= step
            elif action == "shrink":
                actor.s /= step
            elif action == "rotate":
                actor.angle += step
            states.append((actor.cx, actor.cy, actor.s, actor.angle, action == "flash" and k % 2 == 0))
            labels.append(ACTIONS.index(action))
        actions.append(action)
        prev = action
    # Render all frames at once: (T, 1, 1) parameters broadcast against the (H, W) grid.
    cx, cy, s, angle, inverted = (np.asarray(v, dtype=np.float32)[:, None, None] for v in zip(*states))
    alpha = _shape_alpha(actor.kind, cx, cy, s, actor.aspect, angle, yy, xx)[:, None]  # (T, 1, H, W)
    color = np.where(inverted.reshape(-1, 1) > 0, 255 - actor.color, actor.color)[:, :, None, None]  # (T, 3, 1, 1)
    frames = bg[None] * (1 - alpha) + color * alpha  # (T, 3, H, W)
    frames += cfg.noise * rng.standard_normal(frames.shape, dtype=np.float32)
    return np.clip(frames, 0, 255).astype(np.uint8), actions, np.asarray(labels, dtype=np.int64)


def clip_rng(split: str, seed: int, index: int, epoch: int = 0) -> np.random.Generator:
    """The random generator of clip ``index`` of ``split`` under ``seed`` (and ``epoch`` for fresh clips)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    key = [SPLITS[split], seed, index] + ([epoch] if epoch else [])
    return np.random.default_rng(key)


# -- dataset --------------------------------------------------------------------------------------
class ActionsDataset(Dataset):
    """``n`` clips of the action task, generated on the fly (deterministic per index).

    Args:
        n: number of clips.
        seed: seed of this set. (Default: 0)
        split: ``"train"``, ``"valid"`` or ``"test"``; splits never share a clip. (Default: ``"train"``
            when ``train`` is set, else ``"valid"``)
        config: ActionsConfig. (Default: ActionsConfig())
        train: apply temporal augmentation (random ±``speed`` clip-length rescaling) and, to a share
            ``codec_prob`` of the clips, the look of lossy video coding (``codec_degrade``), so that a
            model trained on rendered frames reads the same clips saved as mp4. Horizontal flip is
            never applied: it would turn move_left into move_right. (Default: False)
        speed: the rescaling range in training. (Default: 0.2)
        codec_prob: share of training clips given the codec look. (Default: 0.5)
        fresh_each_epoch: draw new clips every epoch (``set_epoch``); epoch 0 gives the same clips
            as ``write_action_clips``. (Default: ``train``)

    Items are dicts: ``signal`` uint8 (T, 3, H, W), ``tokens`` (L,), ``text``, ``path``, and
    ``frame_labels`` int64 (T,) token ids per frame.
    """

    def __init__(self, n: int, seed: int = 0, split: str | None = None, config: ActionsConfig | None = None,
                 train: bool = False, speed: float = 0.2, fresh_each_epoch: bool | None = None,
                 codec_prob: float = 0.5):
        split = split or ("train" if train else "valid")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
        self.n, self.seed, self.split = n, seed, split
        self.config = config or ActionsConfig()
        self.train, self.speed, self.codec_prob = train, speed, codec_prob
        self.fresh_each_epoch = train if fresh_each_epoch is None else fresh_each_epoch
        self.tokenizer = actions_tokenizer()
        self.epoch = 0  # set by the trainer: fresh clips and new augmentation each epoch

    def __len__(self) -> int:
        return self.n

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < self.n:
            raise IndexError(i)
        epoch = self.epoch if self.fresh_each_epoch else 0
        frames, actions, labels = generate_clip(clip_rng(self.split, self.seed, i, epoch), self.config)
        frames, labels = torch.from_numpy(frames), torch.from_numpy(labels) + 1  # ids: blank is 0
        if self.train and self.speed > 0:
            aug = np.random.default_rng([SPLITS[self.split], self.seed, i, self.epoch, 1])  # 5 keys: never a clip key
            idx = augment_indices(len(frames), aug, speed=self.speed)
            frames, labels = frames[idx], labels[idx]
        if self.train and self.codec_prob > 0:
            aug = np.random.default_rng([SPLITS[self.split], self.seed, i, self.epoch, 2])
            if aug.random() < self.codec_prob:
                frames = codec_degrade(frames, aug)
        return {
            "signal": frames,
            "tokens": torch.tensor(self.tokenizer.encode(actions), dtype=torch.long),
            "text": " ".join(actions),
            "path": f"actions:{self.split}:{self.seed}:{i}" + (f":{epoch}" if epoch else ""),
            "frame_labels": labels,
        }


def actions_splits(n_train: int, n_valid: int, seed: int = 0, config: ActionsConfig | None = None
                   ) -> tuple[ActionsDataset, ActionsDataset]:
    """Training set (augmented, fresh clips each epoch) and the fixed validation set (seed 0 of the valid split)."""
    return (ActionsDataset(n_train, seed, "train", config, train=True),
            ActionsDataset(n_valid, 0, "valid", config, train=False))


def write_action_clips(out_dir: str | Path, n: int, seed: int, split: str = "train",
                       config: ActionsConfig | None = None, codec: str = "libx264") -> Path:
    """Write ``n`` clips as mp4 files plus ``manifest.jsonl``; returns the manifest path.

    Rows: ``{"path": "clips/000000.mp4", "labels": [...], "text": "...", "frame_labels": [...], "fps": ...,
    "num_frames": T}`` with paths relative to the manifest and one action name per frame in ``frame_labels``.
    """
    cfg = config or ActionsConfig()
    out_dir = Path(out_dir)
    (out_dir / "clips").mkdir(parents=True, exist_ok=True)
    manifest = out_dir / "manifest.jsonl"
    tmp = manifest.with_suffix(".jsonl.tmp")
    with open(tmp, "w") as f:
        for i in range(n):
            frames, actions, labels = generate_clip(clip_rng(split, seed, i), cfg)
            rel = f"clips/{split}_{seed}_{i:06d}.mp4"
            write_video(out_dir / rel, frames, cfg.fps, codec=codec)
            row = {"path": rel, "labels": actions, "text": " ".join(actions),
                   "frame_labels": [ACTIONS[k] for k in labels], "fps": cfg.fps, "num_frames": len(frames)}
            f.write(json.dumps(row) + "\n")
    tmp.replace(manifest)
    return manifest

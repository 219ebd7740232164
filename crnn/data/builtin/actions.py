"""Built-in synthetic video task: a shape on a textured, noisy background performs 2-6 actions.

Two looks share the actions and their meaning. ``"varied"`` (the default) draws per clip one of many
actor shapes (polygons, blobs, DejaVu glyphs, textured or flat), one of several background families,
frame size and rate, moving distractors, lighting drift, camera shake, occlusion, blur, sensor noise
and the codec look (:mod:`crnn.data.builtin.action_scenes`); the ``test_look`` split draws only the shape and
background families that the other splits never use. ``"basic"`` is the original look: a rectangle,
triangle or ellipse (random colour, size, start position and speed) on one background family, with
possibly a static distractor shape. The actor performs a sequence of actions
from :data:`ACTIONS`, each for a random number of frames; two neighbours are never the same action
(a repeat would look like one long action). The transcript is the ordered action list; frame-level
ground truth (one action per frame) comes with every clip for the frame-accuracy metric.

Clips are generated on the fly from ``(split, seed, index)`` with numpy, so a split is fixed by its
seed and the validation split never overlaps training; :func:`write_action_clips` writes them as
real mp4 files plus a ``manifest.jsonl``.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from crnn.tokenizer import Tokenizer
from crnn.data.builtin import action_scenes as scenes
from crnn.data.video.augment import ClipAugment, flip_clip, label_map_for
from crnn.data.video.reader import augment_indices, codec_degrade, resample_indices, resize_frames, write_video

ACTIONS = ("move_left", "move_right", "move_up", "move_down", "grow", "shrink", "rotate", "flash", "still")
# Part of every clip's random seed: splits never overlap. test_look: the varied look's held-out families.
SPLITS = {"train": 0, "valid": 1, "test": 2, "test_look": 3}
LOOKS = ("varied", "basic")
SHAPES = ("rect", "triangle", "ellipse")  # all elongated, so rotation is visible
PALETTE = np.array([[230, 40, 40], [40, 200, 60], [50, 90, 240], [240, 220, 40],
                    [40, 220, 230], [230, 60, 220], [250, 140, 20], [245, 245, 245]], dtype=np.float32)


@dataclass
class ActionsConfig:
    look: str = "varied"      # "varied" (many shapes, backgrounds, sizes, rates, camera effects) or "basic"
    size: int = 64            # frame height and width in pixels (varied: clips are resized to it on the fly)
    fps: float = 10.0         # frames per second (varied: clips are resampled to it on the fly)
    min_actions: int = 2      # actions per clip ...
    max_actions: int = 6      # ... inclusive
    min_frames: int = 5       # frames per action ... (>= 4 keeps labels feasible after x4 subsampling)
    max_frames: int = 10      # ... inclusive
    max_distractors: int = 1  # basic: static extra shapes
    noise: float = 8.0        # basic: per-frame pixel noise standard deviation (0..255 scale)


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


def _generate_basic_clip(rng: np.random.Generator, cfg: ActionsConfig) -> tuple[np.ndarray, list[str], np.ndarray]:
    """One clip of the basic look at ``cfg.size`` and ``cfg.fps``."""
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
    states, labels, actions = _perform(
        actor, n_actions, rng, lambda: int(rng.integers(cfg.min_frames, cfg.max_frames + 1)),
        lambda a, n: _plan_action(a, actor, n, size, rng))
    # Render all frames at once: (T, 1, 1) parameters broadcast against the (H, W) grid.
    cx, cy, s, angle, inverted = (np.asarray(v, dtype=np.float32)[:, None, None] for v in zip(*states))
    alpha = _shape_alpha(actor.kind, cx, cy, s, actor.aspect, angle, yy, xx)[:, None]  # (T, 1, H, W)
    color = np.where(inverted.reshape(-1, 1) > 0, 255 - actor.color, actor.color)[:, :, None, None]  # (T, 3, 1, 1)
    frames = bg[None] * (1 - alpha) + color * alpha  # (T, 3, H, W)
    frames += cfg.noise * rng.standard_normal(frames.shape, dtype=np.float32)
    return np.clip(frames, 0, 255).astype(np.uint8), actions, np.asarray(labels, dtype=np.int64)


@dataclass
class RenderedClip:
    """A clip at its own frame size and rate."""

    frames: np.ndarray        # uint8 (T, 3, H, W)
    actions: list[str]        # the ordered action names
    labels: np.ndarray        # int64 (T,) index into ACTIONS per frame
    fps: float
    look: "scenes.SceneLook | None" = None  # the varied look it was drawn with


def _perform(actor: "_Actor", n_actions: int, rng: np.random.Generator, draw_frames, plan):
    """Act out ``n_actions`` random actions, never one twice in a row (both looks share this).

    ``draw_frames()`` gives an action's length in frames, ``plan(action, n)`` its motion plan (None where the
    action does not fit the frame; flash, still and rotate always fit). Returns per-frame states
    ``(cx, cy, s, angle, inverted colour)``, per-frame label ids and the action names.
    """
    states, labels, actions = [], [], []
    prev = None
    for _ in range(n_actions):
        n = draw_frames()
        plans = {a: plan(a, n) for a in ACTIONS if a != prev}
        action = str(rng.choice([a for a, p in plans.items() if p is not None]))
        for k in range(n):
            _step_action(actor, action, plans[action])
            states.append((actor.cx, actor.cy, actor.s, actor.angle, action == "flash" and k % 2 == 0))
            labels.append(ACTIONS.index(action))
        actions.append(action)
        prev = action
    return states, labels, actions


def _step_action(actor: _Actor, action: str, step: float) -> None:
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


def _plan_varied(action: str, actor: _Actor, n: int, h: int, w: int, unit: float, rate: float,
                 rng: np.random.Generator):
    """Per-frame change for ``action`` over ``n`` frames of an (h, w) clip, or None if it does not fit.

    ``unit`` is pixels per pixel of a 64-pixel frame and ``rate`` frames of a 10 fps clip per frame, so
    speeds mean the same at every size and frame rate.
    """
    r = actor.s * np.sqrt(actor.aspect) + 1  # bounding radius
    if action.startswith("move_"):
        room = {"move_left": actor.cx - r, "move_right": w - 1 - r - actor.cx,
                "move_up": actor.cy - r, "move_down": h - 1 - r - actor.cy}[action]
        v = min(rng.uniform(1.5, 3.0) * unit * rate, room / n)
        return v if v >= unit * rate else None
    if action == "grow":
        g = min(rng.uniform(1.06, 1.1) ** rate, (0.25 * min(h, w) / actor.s) ** (1 / n))
        edge = min(actor.cx, actor.cy, w - 1 - actor.cx, h - 1 - actor.cy)
        g = min(g, (edge / r) ** (1 / n)) if edge > r else 0.0
        return g if g >= 1.04 ** rate else None
    if action == "shrink":
        g = min(rng.uniform(1.06, 1.1) ** rate, (actor.s / (3.5 * unit)) ** (1 / n))
        return g if g >= 1.04 ** rate else None
    if action == "rotate":
        return np.deg2rad(rng.uniform(12, 25)) * rate * rng.choice([-1, 1])
    return 0.0  # flash, still


def _render_varied_clip(rng: np.random.Generator, cfg: ActionsConfig, held_out: bool,
                        look: scenes.SceneLook | None = None) -> RenderedClip:
    """One clip of the varied look at its own size and frame rate (see :mod:`crnn.data.builtin.action_scenes`)."""
    look = look or scenes.draw_look(rng, held_out)
    h, w, fps = look.height, look.width, look.fps
    unit, rate = min(h, w) / 64.0, 10.0 / fps
    m = int(np.ceil(look.shake))  # camera shake: a canvas larger by m on each side, cropped per frame
    canvas = scenes.background(look.background, rng, h + 2 * m, w + 2 * m)

    glyph = look.shape == "glyph"  # glyphs: larger and less stretched, so strokes stay visible
    s = rng.uniform(6, 10) * unit * (1.3 if glyph else 1.0)
    aspect = rng.uniform(1.2, 1.6) if glyph else rng.uniform(1.5, 2.4)
    r = s * np.sqrt(aspect) + 2
    actor = _Actor(look.shape, rng.uniform(r, w - 1 - r), rng.uniform(r, h - 1 - r), s, aspect,
                   rng.uniform(0, 2 * np.pi), scenes._actor_colour(rng, canvas.mean((1, 2))))
    alpha = torch.from_numpy(scenes.actor_alpha(look.shape, rng))
    colour = torch.from_numpy(scenes.actor_colours(rng, actor.color, look.texture))
    template = torch.cat([colour * alpha, alpha[None]])  # (4, S, S) premultiplied
    inverted = torch.cat([(255 - colour) * alpha, alpha[None]])

    n_actions = int(rng.integers(cfg.min_actions, cfg.max_actions + 1))
    states, labels, actions = _perform(
        actor, n_actions, rng, lambda: max(2, int(round(int(rng.integers(cfg.min_frames, cfg.max_frames + 1)) / rate))),
        lambda a, n: _plan_varied(a, actor, n, h, w, unit, rate, rng))
    T = len(states)
    cx, cy, size, angle, flash = (np.asarray(v, dtype=np.float64) for v in zip(*states))
    dy, dx = scenes.camera_offsets(rng, T, look.shake)
    frames = torch.from_numpy(np.stack([canvas[:, m + a: m + a + h, m + b: m + b + w] for a, b in zip(dy, dx)]))
    yy, xx = scenes._grid(h, w)
    for _ in range(look.distractors):  # small discs drifting at constant speed, wrapping around
        rd = rng.uniform(1.5, 3.5) * unit
        vy, vx = rng.uniform(-1, 1, 2) * unit * rate
        py = (rng.uniform(0, h) + vy * np.arange(T)) % h - dy
        px = (rng.uniform(0, w) + vx * np.arange(T)) % w - dx
        a = torch.from_numpy(scenes.disc_alpha(py, px, rd, yy, xx))[:, None]
        c = torch.from_numpy(scenes._random_colour(rng))[None, :, None, None]
        frames = frames * (1 - a) + c * a
    # The actor: one template sampled through every frame's pose (camera offsets move it with the scene).
    poses = (cx - dx, cy - dy, size * np.sqrt(aspect), size / np.sqrt(aspect), angle)
    drawn = scenes.sample_actor(template, *poses, h, w)  # (T, 4, h, w)
    if flash.any():
        idx = torch.from_numpy(np.nonzero(flash)[0])
        drawn[idx] = scenes.sample_actor(inverted, *(p[idx.numpy()] for p in poses), h, w)
    frames = frames * (1 - drawn[:, 3:]) + drawn[:, :3]
    if look.occluder:  # a static bar in front of everything
        bw, bh = rng.uniform(0.06, 0.14) * w, rng.uniform(0.3, 0.7) * h
        top, left = rng.uniform(0, h - bh), rng.uniform(0, w - bw)
        occ = np.zeros((T, 1, h, w), dtype=np.float32)
        for t in range(T):
            y0, x0 = int(round(top - dy[t])), int(round(left - dx[t]))
            occ[t, 0, max(0, y0): max(0, y0 + int(bh)), max(0, x0): max(0, x0 + int(bw))] = 1
        occ = torch.from_numpy(occ)
        frames = frames * (1 - occ) + torch.from_numpy(scenes._random_colour(rng, 20, 235))[None, :, None, None] * occ
    out = scenes.finish_frames(frames, look, rng)
    return RenderedClip(out.numpy(), actions, np.asarray(labels, dtype=np.int64), fps, look)


def render_clip(rng: np.random.Generator, cfg: ActionsConfig | None = None, held_out: bool = False,
                look: scenes.SceneLook | None = None) -> RenderedClip:
    """One clip at its own frame size and rate (the varied look draws both; basic uses ``cfg``'s).

    ``held_out`` draws the varied look's reserved shape and background families (the ``test_look`` split);
    ``look`` fixes the varied look instead of drawing it.
    """
    cfg = cfg or ActionsConfig()
    if cfg.look == "basic":
        if held_out:
            raise ValueError("the held-out look (split test_look) exists for the varied look only")
        frames, actions, labels = _generate_basic_clip(rng, cfg)
        return RenderedClip(frames, actions, labels, cfg.fps)
    if cfg.look != "varied":
        raise ValueError(f"look must be one of {LOOKS}, got {cfg.look!r}")
    return _render_varied_clip(rng, cfg, held_out, look)


def generate_clip(rng: np.random.Generator, cfg: ActionsConfig | None = None, held_out: bool = False
                  ) -> tuple[np.ndarray, list[str], np.ndarray]:
    """One clip of the action task at ``cfg.size`` x ``cfg.size`` and ``cfg.fps`` (resized and resampled
    as a reader would do with the written file).

    Returns:
        frames uint8 (T, 3, H, W), the ordered action names, frame_labels int64 (T,) (index into ACTIONS).
    """
    cfg = cfg or ActionsConfig()
    clip = render_clip(rng, cfg, held_out)
    if cfg.look == "basic":
        return clip.frames, clip.actions, clip.labels
    idx = resample_indices(len(clip.frames), clip.fps, cfg.fps)
    frames = resize_frames(torch.from_numpy(clip.frames[idx]), (cfg.size, cfg.size))
    return frames.numpy(), clip.actions, clip.labels[idx]


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
        clip_augment: training: frame dropping/repetition, flips (swapping move_left and move_right) and
            pixel augmentation (:class:`crnn.data.video.augment.ClipAugment`). (Default: None)
        augment_pixels: apply ``clip_augment``'s pixel transforms here; False leaves them to the trainer,
            which applies them to the batch on the GPU. (Default: True)
        frame_size: (height, width) of the frames handed out: the task's ``config.size`` clips resized with
            :func:`~crnn.data.video.reader.resize_frames`, as a video reader resizes files to a model's
            frame size (varied look: rendered clips are resized to it directly). (Default: ``config.size``)
        pool: pre-rendered clips of this split and seed at ``frame_size``
            (:class:`~crnn.data.builtin.clip_pool.ClipPool`): item ``i`` of epoch ``e`` is pool clip
            ``(i + e * n) % len(pool)`` with that epoch's augmentation, instead of a clip rendered now.
            (Default: None)

    Items are dicts: ``signal`` uint8 (T, 3, H, W), ``tokens`` (L,), ``text``, ``path``, and
    ``frame_labels`` int64 (T,) token ids per frame.
    """

    def __init__(self, n: int, seed: int = 0, split: str | None = None, config: ActionsConfig | None = None,
                 train: bool = False, speed: float = 0.2, fresh_each_epoch: bool | None = None,
                 codec_prob: float = 0.5, clip_augment: ClipAugment | None = None, augment_pixels: bool = True,
                 frame_size: tuple[int, int] | None = None, pool: "ClipPool | None" = None):  # noqa: F821
        split = split or ("train" if train else "valid")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
        self.n, self.seed, self.split = n, seed, split
        self.config = config or ActionsConfig()
        self.frame_size = tuple(frame_size) if frame_size else (self.config.size, self.config.size)
        if self.config.look == "varied" and self.frame_size[0] == self.frame_size[1]:
            self.config = replace(self.config, size=self.frame_size[0])  # one resize, from the rendered size
        self.train, self.speed, self.codec_prob = train, speed, codec_prob
        self.fresh_each_epoch = train if fresh_each_epoch is None else fresh_each_epoch
        self.tokenizer = actions_tokenizer()
        self.clip_augment, self.augment_pixels = clip_augment, augment_pixels
        self._mirror = label_map_for(ACTIONS) if clip_augment is not None and clip_augment.cfg.flip else None
        self.epoch = 0  # set by the trainer: fresh clips and new augmentation each epoch
        self.pool = None
        if pool is not None:
            self.use_pool(pool)

    def use_pool(self, pool) -> None:
        """Read clips from ``pool`` (a :class:`~crnn.data.builtin.clip_pool.ClipPool` of this very split,
        seed, look and frame size) instead of rendering them."""
        mine = dict(split=self.split, seed=self.seed, config=asdict(self.config), frame_shape=[3, *self.frame_size])
        theirs = {k: pool.meta[k] for k in mine}
        if theirs != mine:
            raise ValueError(f"{pool.folder}: the clip pool holds other clips ({theirs}) than this set's ({mine})")
        self.pool = pool

    def __len__(self) -> int:
        return self.n

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < self.n:
            raise IndexError(i)
        epoch = self.epoch if self.fresh_each_epoch else 0
        if self.pool is not None:  # the pool walks on each epoch: pool clip k is clip k of epoch 0
            k = (i + epoch * self.n) % len(self.pool)
            frames, actions, labels = self.pool.clip(k)
            source = f"actions:{self.split}:{self.seed}:pool{k}"
        else:
            frames, actions, labels = generate_clip(clip_rng(self.split, self.seed, i, epoch), self.config,
                                                    held_out=self.split == "test_look")
            source = f"actions:{self.split}:{self.seed}:{i}" + (f":{epoch}" if epoch else "")
        frames, labels = resize_frames(torch.from_numpy(frames), self.frame_size), torch.from_numpy(labels) + 1  # ids: blank is 0
        if self.train and self.speed > 0:
            aug = np.random.default_rng([SPLITS[self.split], self.seed, i, self.epoch, 1])  # 5 keys: never a clip key
            idx = augment_indices(len(frames), aug, speed=self.speed)
            frames, labels = frames[idx], labels[idx]
        tokens = torch.tensor(self.tokenizer.encode(actions), dtype=torch.long)
        if self.train and self.clip_augment is not None:
            g = torch.Generator().manual_seed(int(np.random.default_rng(
                [SPLITS[self.split], self.seed, i, self.epoch, 3]).integers(2**62)))
            if self.clip_augment.cfg.changes_length:
                idx = self.clip_augment.frame_indices(len(frames), g)
                frames, labels = frames[idx], labels[idx]
            if self._mirror is not None and float(torch.rand((), generator=g)) < 0.5:
                frames, tokens, labels = flip_clip(frames, self._mirror, tokens, labels)
            if self.augment_pixels:
                frames = self.clip_augment(frames, g)
        if self.train and self.codec_prob > 0:
            aug = np.random.default_rng([SPLITS[self.split], self.seed, i, self.epoch, 2])
            if aug.random() < self.codec_prob:
                frames = codec_degrade(frames, aug)
        return {
            "signal": frames.contiguous(),
            "tokens": tokens,
            "text": self.tokenizer.decode(tokens.tolist()),
            "path": source,
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

    Clips of the varied look keep their own frame size and rate (readers resize and resample them).

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
            clip = render_clip(clip_rng(split, seed, i), cfg, held_out=split == "test_look")
            rel = f"clips/{split}_{seed}_{i:06d}.mp4"
            write_video(out_dir / rel, clip.frames, clip.fps, codec=codec)
            row = {"path": rel, "labels": clip.actions, "text": " ".join(clip.actions),
                   "frame_labels": [ACTIONS[k] for k in clip.labels], "fps": clip.fps, "num_frames": len(clip.frames)}
            f.write(json.dumps(row) + "\n")
    tmp.replace(manifest)
    return manifest

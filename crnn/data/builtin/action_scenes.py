"""The varied look of the built-in action task: many actor shapes, background families and camera effects.

A clip is drawn in three parts, all from one random generator:

* the **look** (:class:`SceneLook`): frame size and rate, actor shape family and texture, background
  family, moving distractors, lighting drift, camera shake, occlusion, blur, sensor noise (the codec look
  comes from ``ActionsDataset``'s ``codec_prob`` on the fly, and from real H.264 coding in written files);
* the **actions**, planned in seconds and frame-size units (so they mean the same at any size and rate);
* the **rendering**: the actor is a template (alpha + colour, drawn once in its own coordinates) that
  every frame samples through its pose with one ``grid_sample`` call, so any shape, glyph or texture
  costs the same.

One shape family (``star``) and one background family (``rings``) are reserved for the held-out-look
split: :func:`draw_look` never picks them unless asked for the held-out look, and then picks only them.
"""
from __future__ import annotations

import functools
import glob
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


SHAPE_FAMILIES = ("basic", "polygon", "irregular", "glyph")  # training / valid / test
BACKGROUND_FAMILIES = ("smooth", "noise", "stripes", "tiles")
HELD_OUT_SHAPES = ("star",)  # the held-out look only
HELD_OUT_BACKGROUNDS = ("rings",)
FONT_GLOBS = ("/usr/share/fonts/truetype/dejavu/DejaVu*.ttf", "/usr/share/fonts/**/DejaVu*.ttf")
# Glyphs that look different when turned (no O, X, S, Z, H, N, I...): rotation stays visible.
GLYPHS = "AFGJKLPQRTUVY2457?&bdfhkpqtuy"
TEMPLATE = 64  # actor template resolution (pixels per side)


@dataclass
class SceneLook:
    """Everything about a clip's appearance that is not an action (drawn per clip by :func:`draw_look`)."""

    height: int
    width: int
    fps: float
    shape: str            # shape family
    background: str       # background family
    texture: float        # actor texture depth 0..1 (0: flat colour)
    distractors: int      # small shapes drifting at constant speed behind the actor
    light_from: float     # global gain at the first frame ...
    light_to: float       # ... and at the last (a slow lighting change)
    shake: float          # camera shake amplitude in pixels (0: steady)
    occluder: bool        # a static bar in front of the actor
    blur: float           # 0: sharp, else the share of a 3x3 binomial blur mixed in
    noise: float          # sensor noise standard deviation (0..255 scale; 0: none)


def font_files() -> list[str]:
    """DejaVu font files on this system (empty when none is installed: glyph actors fall back to polygons)."""
    found: list[str] = []
    for pattern in FONT_GLOBS:
        found += glob.glob(pattern, recursive=True)
    return sorted(set(found))


def draw_look(rng: np.random.Generator, held_out: bool = False) -> SceneLook:
    """Draw a clip's look; ``held_out`` gives the reserved shape and background families only."""
    height = 2 * int(rng.integers(24, 41))  # 48..80, even for yuv420p video files
    width = 2 * int(round(height * rng.uniform(1.0, 1.3) / 2))
    shapes = HELD_OUT_SHAPES if held_out else SHAPE_FAMILIES
    backgrounds = HELD_OUT_BACKGROUNDS if held_out else BACKGROUND_FAMILIES
    lit = rng.random() < 0.5
    return SceneLook(
        height=height, width=width, fps=float(rng.choice([8.0, 10.0, 12.0, 15.0])),
        shape=str(rng.choice(shapes)), background=str(rng.choice(backgrounds)),
        texture=float(rng.uniform(0.2, 0.6)) if rng.random() < 0.5 else 0.0,
        distractors=int(rng.integers(1, 4)) if rng.random() < 0.4 else 0,
        light_from=float(rng.uniform(0.7, 1.3)) if lit else 1.0, light_to=float(rng.uniform(0.7, 1.3)) if lit else 1.0,
        shake=float(rng.uniform(0.5, 2.0)) if rng.random() < 0.3 else 0.0,
        occluder=bool(rng.random() < 0.25),
        blur=float(rng.uniform(0.3, 1.0)) if rng.random() < 0.3 else 0.0,
        noise=float(rng.uniform(2.0, 12.0)) if rng.random() < 0.7 else 0.0,
    )


# -- colours and textures ---------------------------------------------------------------------------
def _random_colour(rng: np.random.Generator, lo: float = 0.0, hi: float = 255.0) -> np.ndarray:
    return rng.uniform(lo, hi, 3).astype(np.float32)


def _actor_colour(rng: np.random.Generator, bg_mean: np.ndarray) -> np.ndarray:
    """A colour far enough from the background's mean that the actor stays clearly visible."""
    for _ in range(12):
        c = _random_colour(rng)
        if float(np.linalg.norm(c - bg_mean)) > 150:
            return c
    # A background near mid-grey leaves few such colours: push a colour away from it instead.
    away = c - bg_mean if np.linalg.norm(c - bg_mean) > 1 else rng.standard_normal(3).astype(np.float32)
    return np.clip(bg_mean + 150 * away / np.linalg.norm(away), 0, 255).astype(np.float32)


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return yy, xx


def _upsampled_field(rng: np.random.Generator, cells: tuple[int, int], size: tuple[int, int],
                     channels: int, lo: float, hi: float, mode: str = "bicubic") -> np.ndarray:
    coarse = torch.from_numpy(rng.uniform(lo, hi, (1, channels, *cells)).astype(np.float32))
    kw = {"align_corners": True} if mode != "nearest" else {}
    return F.interpolate(coarse, size=size, mode=mode, **kw)[0].numpy()


def background(kind: str, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """One background family, (3, h, w) float32 in 0..255."""
    yy, xx = _grid(h, w)
    if kind == "flat":  # mid grey (never drawn: for inspecting the actor alone)
        bg = np.full((3, h, w), 128.0, dtype=np.float32)
    elif kind == "smooth":
        bg = _upsampled_field(rng, (int(rng.integers(2, 6)), int(rng.integers(2, 6))), (h, w), 3, 30, 220)
    elif kind == "noise":  # value noise over three octaves on a base colour
        base = _random_colour(rng, 40, 200)[:, None, None]
        bg = base + sum(_upsampled_field(rng, (max(2, h // c), max(2, w // c)), (h, w), 3, -a, a, "bilinear")
                        for c, a in ((16, 40.0), (6, 25.0), (2, 15.0)))
    elif kind == "stripes":
        a, b = _random_colour(rng, 20, 235), _random_colour(rng, 20, 235)
        theta, period = rng.uniform(0, np.pi), rng.uniform(4, 14) * h / 64
        phase = np.cos(theta) * xx + np.sin(theta) * yy
        wave = np.sin(2 * np.pi * phase / period + rng.uniform(0, 2 * np.pi))
        mix = np.clip(0.5 + rng.uniform(0.5, 3.0) * wave, 0, 1)  # soft sinusoid ... hard bars
        bg = a[:, None, None] * mix + b[:, None, None] * (1 - mix)
    elif kind == "tiles":  # a checker or a grid of random tile colours
        tile = int(rng.integers(5, 14) * h / 64) or 1
        ny, nx = -(-h // tile), -(-w // tile)
        if rng.random() < 0.5:
            a, b = _random_colour(rng, 20, 235), _random_colour(rng, 20, 235)
            checker = ((np.arange(ny)[:, None] + np.arange(nx)[None]) % 2).astype(np.float32)
            cells = a[:, None, None] * checker + b[:, None, None] * (1 - checker)
        else:
            cells = rng.uniform(30, 220, (3, ny, nx)).astype(np.float32)
        bg = np.repeat(np.repeat(cells, tile, 1), tile, 2)[:, :h, :w]
    elif kind == "rings":  # held out: concentric rings around a random centre
        a, b = _random_colour(rng, 20, 235), _random_colour(rng, 20, 235)
        cy, cx = rng.uniform(-0.5, 1.5) * h, rng.uniform(-0.5, 1.5) * w
        period = rng.uniform(5, 14) * h / 64
        mix = 0.5 + 0.5 * np.sin(2 * np.pi * np.hypot(yy - cy, xx - cx) / period)
        bg = a[:, None, None] * mix + b[:, None, None] * (1 - mix)
    else:
        raise ValueError(f"unknown background family {kind!r}")
    return np.clip(bg, 0, 255).astype(np.float32)


# -- actor templates: alpha (S, S) in shape coordinates [-1, 1]^2 -------------------------------------
def _polygon_alpha(vertices: np.ndarray, size: int = TEMPLATE, supersample: int = 2) -> np.ndarray:
    """Even-odd rasterisation of a polygon given in [-1, 1]^2, antialiased by supersampling."""
    n = size * supersample
    c = (np.arange(n, dtype=np.float32) + 0.5) / n * 2 - 1
    py, px = np.meshgrid(c, c, indexing="ij")
    inside = np.zeros((n, n), dtype=bool)
    x0, y0 = vertices[:, 0], vertices[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    for a, b, c_, d in zip(x0, y0, x1, y1):
        crosses = (b > py) != (d > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            xs = a + (py - b) * (c_ - a) / (d - b)
        inside ^= crosses & (px < xs)
    return inside.reshape(size, supersample, size, supersample).mean((1, 3)).astype(np.float32)


def _radial_polygon(radii: np.ndarray, rng: np.random.Generator, jitter: float = 0.0) -> np.ndarray:
    k = len(radii)
    angles = np.arange(k) * 2 * np.pi / k + rng.uniform(0, 2 * np.pi) + rng.uniform(-jitter, jitter, k)
    pts = np.stack([radii * np.cos(angles), radii * np.sin(angles)], 1)
    return (pts / np.abs(pts).max() * 0.95).astype(np.float32)


@functools.lru_cache(maxsize=256)
def glyph_alpha(font: str, char: str, size: int = TEMPLATE) -> np.ndarray | None:
    """A glyph filling the template (cached per font and character), or None when PIL cannot draw it."""
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:
        return None
    try:
        pil_font = ImageFont.truetype(font, 2 * size)
    except OSError:
        return None
    img = Image.new("L", (3 * size, 3 * size), 0)
    ImageDraw.Draw(img).text((size // 2, size // 2), char, fill=255, font=pil_font)
    box = img.getbbox()
    if box is None:
        return None
    glyph = img.crop(box).resize((size - 4, size - 4), Image.BILINEAR)
    out = np.zeros((size, size), dtype=np.float32)
    out[2:-2, 2:-2] = np.asarray(glyph, dtype=np.float32) / 255.0
    return out


def actor_alpha(family: str, rng: np.random.Generator) -> np.ndarray:
    """Template alpha (S, S) of one actor of a shape family."""
    if family == "glyph":
        fonts = font_files()
        if fonts:
            alpha = glyph_alpha(str(rng.choice(fonts)), str(rng.choice(list(GLYPHS))))
            if alpha is not None:
                return alpha
        family = "irregular"  # no font or no PIL: polygons instead
    if family == "basic":  # today's three shapes, elongated by the pose's aspect
        kind = rng.choice(["rect", "triangle", "ellipse"])
        if kind == "rect":
            return np.ones((TEMPLATE, TEMPLATE), dtype=np.float32)
        if kind == "triangle":
            return _polygon_alpha(np.array([[1, 0], [-1, 1], [-1, -1]], dtype=np.float32) * 0.98)
        c = (np.arange(TEMPLATE, dtype=np.float32) + 0.5) / TEMPLATE * 2 - 1
        r = np.hypot(c[:, None], c[None])
        return np.clip((1 - r) * TEMPLATE / 2 + 0.5, 0, 1).astype(np.float32)
    if family == "polygon":  # regular 3..8-gon (the pose stretches it, so turns stay visible)
        k = int(rng.integers(3, 9))
        return _polygon_alpha(_radial_polygon(np.ones(k), rng))
    if family == "irregular":  # random blob polygon
        k = int(rng.integers(5, 10))
        return _polygon_alpha(_radial_polygon(rng.uniform(0.45, 1.0, k), rng, jitter=0.25))
    if family == "star":  # held out: concave star, 4..7 points
        k = int(rng.integers(4, 8))
        radii = np.tile([1.0, float(rng.uniform(0.35, 0.6))], k)
        return _polygon_alpha(_radial_polygon(radii, rng))
    raise ValueError(f"unknown shape family {family!r}")


def actor_colours(rng: np.random.Generator, base: np.ndarray, texture: float) -> np.ndarray:
    """Template colour (3, S, S): a flat colour, or one modulated by stripes, spots or a checker."""
    out = np.broadcast_to(base[:, None, None], (3, TEMPLATE, TEMPLATE)).astype(np.float32)
    if texture <= 0:
        return out.copy()
    yy, xx = _grid(TEMPLATE, TEMPLATE)
    kind = rng.integers(3)
    if kind == 0:
        theta = rng.uniform(0, np.pi)
        pattern = 0.5 + 0.5 * np.sin((np.cos(theta) * xx + np.sin(theta) * yy) / rng.uniform(2, 5))
    elif kind == 1:
        pattern = _upsampled_field(rng, (6, 6), (TEMPLATE, TEMPLATE), 1, 0, 1)[0]
    else:
        cell = int(rng.integers(6, 16))
        pattern = ((yy // cell + xx // cell) % 2).astype(np.float32)
    shade = 1 + texture * (pattern - 0.5)  # lighter and darker about the base colour, so contrast is kept
    return np.clip(out * shade[None], 0, 255).astype(np.float32)


# -- compositing ------------------------------------------------------------------------------------
def camera_offsets(rng: np.random.Generator, n: int, shake: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame integer camera offsets (dy, dx) within ``±ceil(shake)`` (zeros when steady)."""
    m = int(np.ceil(shake))
    if m == 0:
        return np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    return rng.integers(-m, m + 1, n), rng.integers(-m, m + 1, n)


def disc_alpha(cy: np.ndarray, cx: np.ndarray, r: float, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Antialiased discs (T, H, W) centred at per-frame (cy, cx) (T,)."""
    d = np.hypot(yy[None] - cy.astype(np.float32)[:, None, None], xx[None] - cx.astype(np.float32)[:, None, None])
    return np.clip(r - d + 0.5, 0, 1).astype(np.float32)


def sample_actor(template: torch.Tensor, cx: np.ndarray, cy: np.ndarray, half_u: np.ndarray, half_v: np.ndarray,
                 angle: np.ndarray, h: int, w: int) -> torch.Tensor:
    """Draw a template through per-frame poses.

    Args:
        template: (4, S, S) premultiplied colour (3) and alpha (1), in shape coordinates [-1, 1]^2.
        cx, cy, half_u, half_v, angle: (T,) centre in pixels, half extents along the shape's axes, turn (radians).
        h, w: frame size.

    Returns:
        (T, 4, h, w) premultiplied colour and alpha.
    """
    yy, xx = _grid(h, w)
    dx = torch.from_numpy(xx[None] - cx[:, None, None].astype(np.float32))
    dy = torch.from_numpy(yy[None] - cy[:, None, None].astype(np.float32))
    c = torch.from_numpy(np.cos(angle).astype(np.float32))[:, None, None]
    s = torch.from_numpy(np.sin(angle).astype(np.float32))[:, None, None]
    u = (c * dx + s * dy) / torch.from_numpy(half_u.astype(np.float32))[:, None, None]
    v = (-s * dx + c * dy) / torch.from_numpy(half_v.astype(np.float32))[:, None, None]
    grid = torch.stack([u, v], -1)  # (T, h, w, 2): x then y, as grid_sample reads it
    return F.grid_sample(template[None].expand(len(cx), -1, -1, -1), grid, mode="bilinear",
                         padding_mode="zeros", align_corners=False)


def binomial_blur(frames: torch.Tensor, amount: float) -> torch.Tensor:
    """Mix ``amount`` of a 3x3 binomial blur into float frames (T, 3, H, W) (out-of-focus optics)."""
    p = F.pad(frames, (1, 1, 1, 1), mode="replicate")
    rows = p[..., :-2, :] + 2 * p[..., 1:-1, :] + p[..., 2:, :]  # separable [1, 2, 1] passes
    blurred = (rows[..., :-2] + 2 * rows[..., 1:-1] + rows[..., 2:]) / 16
    return frames + amount * (blurred - frames)


def finish_frames(frames: torch.Tensor, look: SceneLook, rng: np.random.Generator) -> torch.Tensor:
    """Camera effects on composited float frames (T, 3, H, W) -> uint8 (T, 3, H, W)."""
    n = len(frames)
    gain = np.linspace(look.light_from, look.light_to, n, dtype=np.float32)[:, None, None, None]
    cast = rng.uniform(0.9, 1.1, 3).astype(np.float32)[None, :, None, None] if look.light_from != 1.0 else 1.0
    frames = frames * torch.from_numpy(np.asarray(gain * cast, dtype=np.float32))
    if look.blur > 0:
        frames = binomial_blur(frames, look.blur)
    if look.noise > 0:
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        frames = frames + look.noise * torch.randn(frames.shape, generator=gen)
    return frames.round_().clamp_(0, 255).to(torch.uint8)

"""Training-time clip augmentation: one draw of parameters per clip, applied alike to every frame.

Pixel transforms (random resized crop / zoom / shift, colour jitter, blur, noise) use
``torchvision.transforms.v2.functional`` on clips ``(T, C, H, W)`` and run on whatever device the clip is
on, so a trainer can apply them to a batch on the GPU (:meth:`ClipAugment.batch`). Frame dropping and
repetition change the clip length, so they run per item in the dataset (:meth:`ClipAugment.frame_indices`),
where the same indices are applied to the frame labels. A horizontal flip swaps direction-bearing labels
(``move_left`` <-> ``move_right``) and is refused for a vocabulary where a direction has no counterpart.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields
from typing import Any, Sequence

import torch
import torch.nn.functional as F

MIRRORED_WORDS = {"left": "right", "right": "left", "links": "rechts", "rechts": "links"}  # PHOENIX glosses: German


@dataclass
class ClipAugmentConfig:
    brightness: float = 0.0   # brightness factor drawn from [1 - b, 1 + b]
    contrast: float = 0.0     # contrast factor drawn from [1 - c, 1 + c]
    saturation: float = 0.0   # saturation factor drawn from [1 - s, 1 + s]
    hue: float = 0.0          # hue shift drawn from [-h, h] of the colour circle (at most 0.5)
    crop: float = 0.0         # random resized crop keeping an area share in [1 - crop, 1] (aspect 3/4..4/3)
    scale: float = 0.0        # zoom factor drawn from [1 - scale, 1 + scale] (zooming out repeats the edges)
    translate: float = 0.0    # shift by up to this share of the width / height (edges repeated)
    blur: float = 0.0         # probability of a Gaussian blur (sigma 0.3..1.0 pixels)
    noise: float = 0.0        # Gaussian pixel noise, standard deviation drawn from [0, noise] (pixels in 0..1)
    drop: float = 0.0         # each frame is dropped with this probability (never two in a row)
    repeat: float = 0.0       # each frame is shown twice with this probability
    flip: bool = False        # mirror half of the clips left-right, swapping left/right labels
    # look invariance: what an action is does not depend on its colours
    channel_shuffle: float = 0.0  # probability of permuting the clip's colour channels (RGB -> e.g. BRG)
    grayscale: float = 0.0    # probability of a grey clip (luma in every channel)
    invert: float = 0.0       # probability of a negative clip (1 - x; a flash stays a flash)

    def __post_init__(self) -> None:
        for name in ("brightness", "contrast", "saturation", "crop", "scale"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"clip augmentation {name} must be in [0, 1), got {getattr(self, name)}")
        for name in ("translate", "blur", "drop", "repeat", "channel_shuffle", "grayscale", "invert"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"clip augmentation {name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f"clip augmentation hue must be in [0, 0.5], got {self.hue}")
        if self.noise < 0:
            raise ValueError(f"clip augmentation noise must be >= 0, got {self.noise}")
        if self.drop + self.repeat > 1:
            raise ValueError(f"clip augmentation drop + repeat must be <= 1, got {self.drop + self.repeat}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ClipAugmentConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown clip augmentation field(s) {unknown} (known: {sorted(known)})")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def changes_pixels(self) -> bool:
        return any((self.brightness, self.contrast, self.saturation, self.hue, self.crop, self.scale,
                    self.translate, self.blur, self.noise, self.channel_shuffle, self.grayscale, self.invert))

    @property
    def changes_length(self) -> bool:
        return self.drop > 0 or self.repeat > 0


# The setting the README's "after" recipe trains with.
STANDARD = dict(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.05, crop=0.2, scale=0.15, translate=0.1,
                blur=0.3, noise=0.03, drop=0.05, repeat=0.05)
# "standard" plus colour changes an appearance-reading model cannot lean on (for a held-out look).
LOOK_INVARIANT = dict(STANDARD, channel_shuffle=0.5, grayscale=0.1, invert=0.1)
PRESETS = {"standard": STANDARD, "look": LOOK_INVARIANT, "none": {}}


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g))


# RGB <-> YIQ (NTSC): a hue shift is a rotation of the (I, Q) chroma plane.
_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)


def rotate_hue(x: torch.Tensor, shift: float) -> torch.Tensor:
    """Shift the hue of RGB pixels (..., 3, H, W) in 0..1 by ``shift`` of the colour circle.

    A rotation of the chroma plane in YIQ (positive: red towards yellow, as in torchvision's
    ``adjust_hue``): one 3x3 matrix per clip, several times faster on a CPU than ``adjust_hue``'s HSV round
    trip; it keeps luma where HSV keeps the maximum channel, so the two differ for the same shift.
    """
    a = -2 * math.pi * shift
    rot = torch.tensor([[1.0, 0.0, 0.0], [0.0, math.cos(a), -math.sin(a)], [0.0, math.sin(a), math.cos(a)]])
    m = (_YIQ_TO_RGB @ rot @ _RGB_TO_YIQ).to(x.device, x.dtype)
    return torch.einsum("ij,...jhw->...ihw", m, x).clamp_(0, 1)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of frames (..., H, W), edges reflected; the same result as torchvision's
    ``gaussian_blur`` with kernel size ``2 ceil(2 sigma) + 1``, as weighted sums of shifted views (several
    times faster on a CPU than its k x k convolution of single-channel images)."""
    r = math.ceil(2 * sigma)
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).tolist()
    H, W = x.shape[-2:]
    shape = x.shape
    y = F.pad(x.reshape(-1, 1, H, W), (r, r, r, r), mode="reflect")
    y = sum(w * y[..., i: i + H, :] for i, w in enumerate(k))  # vertical pass
    y = sum(w * y[..., i: i + W] for i, w in enumerate(k))  # horizontal pass
    return y.reshape(shape)


def mirrored_label_ids(symbols: Sequence[str]) -> list[int]:
    """For each symbol, the index of its mirror image (itself unless it names a side).

    Raises:
        ValueError: a symbol names a side (left/right) and its mirrored name is not in the vocabulary.
    """
    index = {s: i for i, s in enumerate(symbols)}
    out = []
    for i, s in enumerate(symbols):
        parts = re.split(r"([_\-\s]+)", s)
        mirrored = "".join(_mirror_word(p) for p in parts)
        if mirrored == s:
            out.append(i)
        elif mirrored in index:
            out.append(index[mirrored])
        else:
            raise ValueError(f"flip: label {s!r} names a side and {mirrored!r} is not in the vocabulary, "
                             f"so a mirrored clip would carry a wrong label; leave flipping off")
    return out


def _mirror_word(word: str) -> str:
    m = MIRRORED_WORDS.get(word.lower())
    if m is None:
        return word
    return m.upper() if word.isupper() else m.capitalize() if word[:1].isupper() else m


class ClipAugment:
    """Clip augmentation under a :class:`ClipAugmentConfig`.

    Every method takes a ``torch.Generator`` (CPU) for its random draws, so a seed fixes the result.
    """

    def __init__(self, cfg: ClipAugmentConfig):
        self.cfg = cfg

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ClipAugment":
        return cls(ClipAugmentConfig.from_dict(d))

    # -- time ----------------------------------------------------------------------------------------
    def frame_indices(self, n_frames: int, g: torch.Generator) -> torch.Tensor:
        """Frame dropping and repetition as indices (T',) into a clip of ``n_frames``.

        Keeps the first frame and never drops two neighbours, so T' >= ceil(T / 2); repeats a frame at most
        once, so T' <= 2 T;
        apply the same indices to frame labels.
        """
        draws = torch.rand(n_frames, generator=g)
        out, dropped = [], True  # the first frame is always kept
        for i, r in enumerate(draws.tolist()):
            if r < self.cfg.drop and not dropped and i > 0:
                dropped = True
                continue
            dropped = False
            out.append(i)
            if self.cfg.drop <= r < self.cfg.drop + self.cfg.repeat:
                out.append(i)
        return torch.tensor(out, dtype=torch.long)

    # -- pixels --------------------------------------------------------------------------------------
    def __call__(self, clip: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Augment one clip (T, C, H, W), uint8 (0..255) or float (0..1), on its own device; same dtype out."""
        import torchvision.transforms.v2.functional as TF

        cfg = self.cfg
        if not cfg.changes_pixels or clip.numel() == 0:
            return clip
        dtype = clip.dtype
        x = clip.float() / 255.0 if dtype == torch.uint8 else clip.float()
        x = self._window(x, g)
        if cfg.brightness:
            x = TF.adjust_brightness(x, _uniform(g, 1 - cfg.brightness, 1 + cfg.brightness))
        if cfg.contrast:
            x = TF.adjust_contrast(x, _uniform(g, 1 - cfg.contrast, 1 + cfg.contrast))
        if cfg.saturation and x.size(-3) == 3:
            x = TF.adjust_saturation(x, _uniform(g, 1 - cfg.saturation, 1 + cfg.saturation))
        if cfg.hue and x.size(-3) == 3:
            x = rotate_hue(x, _uniform(g, -cfg.hue, cfg.hue))
        x = self._recolour(x, g)
        if cfg.blur and float(torch.rand((), generator=g)) < cfg.blur:
            x = gaussian_blur(x, _uniform(g, 0.3, 1.0))
        if cfg.noise:
            sigma = _uniform(g, 0.0, cfg.noise)
            seed = int(torch.randint(0, 2**62, (), generator=g))
            device_gen = torch.Generator(device=x.device).manual_seed(seed)  # noise drawn where the clip is
            x = (x + sigma * torch.randn(x.shape, generator=device_gen, device=x.device)).clamp_(0, 1)
        if dtype == torch.uint8:
            return (x * 255).round_().clamp_(0, 255).to(torch.uint8)
        return x.to(dtype)

    def _recolour(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Channel permutation, grey and negative clips (x (T, C, H, W) in 0..1), each drawn per clip."""
        cfg = self.cfg
        colour = x.size(-3) == 3
        if colour and cfg.channel_shuffle and float(torch.rand((), generator=g)) < cfg.channel_shuffle:
            order = torch.randperm(3, generator=g)
            while bool((order == torch.arange(3)).all()):  # a real change of colours, never the identity
                order = torch.randperm(3, generator=g)
            x = x[..., order.to(x.device), :, :]
        if colour and cfg.grayscale and float(torch.rand((), generator=g)) < cfg.grayscale:
            luma = (_RGB_TO_YIQ[0].to(x.device, x.dtype)[:, None, None] * x).sum(-3, keepdim=True)
            x = luma.expand_as(x).contiguous()
        if cfg.invert and float(torch.rand((), generator=g)) < cfg.invert:
            x = 1.0 - x
        return x

    def _window(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Random resized crop, zoom and shift as one window (edges repeated outside), resized back to (H, W)."""
        import torchvision.transforms.v2.functional as TF

        cfg = self.cfg
        if not (cfg.crop or cfg.scale or cfg.translate):
            return x
        H, W = x.shape[-2:]
        h, w = float(H), float(W)
        cy, cx = H / 2, W / 2
        if cfg.crop:
            area = _uniform(g, 1 - cfg.crop, 1.0) * H * W
            ratio = math.exp(_uniform(g, math.log(3 / 4), math.log(4 / 3)))  # width / height
            h, w = min(H, math.sqrt(area / ratio)), min(W, math.sqrt(area * ratio))
            cy, cx = _uniform(g, h / 2, H - h / 2), _uniform(g, w / 2, W - w / 2)
        if cfg.scale:
            zoom = _uniform(g, 1 - cfg.scale, 1 + cfg.scale)
            h, w = h / zoom, w / zoom
        if cfg.translate:
            cy += _uniform(g, -cfg.translate, cfg.translate) * H
            cx += _uniform(g, -cfg.translate, cfg.translate) * W
        hh, ww = max(1, round(h)), max(1, round(w))
        top, left = round(cy - hh / 2), round(cx - ww / 2)
        pad = (max(0, -left), max(0, left + ww - W), max(0, -top), max(0, top + hh - H))  # l, r, t, b
        if any(pad):
            x = F.pad(x, pad, mode="replicate")
        shrink = hh > H or ww > W  # antialiasing only matters when the window is scaled down (and is slower)
        return TF.resized_crop(x, top + pad[2], left + pad[0], hh, ww, [H, W], antialias=shrink)

    def batch(self, x: torch.Tensor, lengths: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Augment a padded batch (B, T, C, H, W) item by item on its device; padding frames are left alone."""
        if not self.cfg.changes_pixels or x.dim() != 5:  # (B, T, D) features: nothing to do
            return x
        out = x.clone()
        for i, n in enumerate(lengths.tolist()):
            if n > 0:
                out[i, :n] = self(x[i, :n], g)
        return out


def flip_clip(frames: torch.Tensor, label_map: torch.Tensor, *labels: torch.Tensor | None
              ) -> tuple[torch.Tensor, ...]:
    """Mirror frames (T, C, H, W) left-right and map label id tensors through ``label_map`` (-1 ids stay)."""
    out = [frames.flip(-1)]
    for lab in labels:
        if lab is None:
            out.append(None)
            continue
        valid = lab >= 0
        out.append(torch.where(valid, label_map[lab.clamp(min=0)], lab))
    return tuple(out)


def label_map_for(symbols: Sequence[str]) -> torch.Tensor:
    """Mirror map over token ids (blank 0 maps to itself; symbol ``i`` is id ``i + 1``)."""
    return torch.tensor([0] + [j + 1 for j in mirrored_label_ids(symbols)], dtype=torch.long)


def clip_augment_for(fields_: dict[str, Any], device: torch.device) -> tuple[ClipAugment | None, bool]:
    """A trainer's clip augmentation and whether its pixel transforms run on the batch on ``device``
    (True on a GPU; on a CPU they run in the data-loading workers instead)."""
    if not fields_:
        return None, False
    augment = ClipAugment.from_dict(fields_)
    return augment, device.type == "cuda" and augment.cfg.changes_pixels

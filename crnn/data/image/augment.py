"""Training augmentation of text-line images (torchvision ``transforms.v2`` functional ops).

Each draw is a pure function of the generator it is given, so a data-loader worker's items are
reproducible. The height never changes (the frontend's fixed height); the width may stretch, which
is what other fonts and scanners do to a line.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class LineAugmentConfig:
    stretch: float = 0.2        # width scaled by a factor in [1 - s, 1 + s]
    shear: float = 12.0         # italic-like horizontal shear, degrees (±)
    rotate: float = 1.0         # degrees (±)
    blur: float = 0.3           # share of lines blurred (sigma 0.3-1.2 px)
    contrast: float = 0.4       # contrast/brightness change, (±) fraction
    invert: float = 0.05        # share of lines turned light-on-dark
    jpeg: float = 0.2           # share of lines JPEG-compressed (quality 20-90)
    noise: float = 0.04         # Gaussian pixel noise, standard deviation at most


class LineAugment:
    """``(C, H, W)`` float in [0, 1] -> the same height, width within ``stretch``, in [0, 1]."""

    def __init__(self, cfg: LineAugmentConfig = LineAugmentConfig()):
        self.cfg = cfg

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        from torchvision.transforms.v2 import functional as TF

        c = self.cfg
        g = generator

        def u(lo: float, hi: float) -> float:
            return lo + (hi - lo) * float(torch.rand((), generator=g))

        h, w = x.shape[-2:]
        if c.stretch:
            new_w = max(4, round(w * u(1 - c.stretch, 1 + c.stretch)))
            x = F.interpolate(x[None], size=(h, new_w), mode="bilinear", align_corners=False)[0]
        paper = float(x[..., ::3].flatten().quantile(0.9))  # fill what the transform uncovers with the paper shade
        if c.shear or c.rotate:
            x = TF.affine(x, angle=u(-c.rotate, c.rotate), translate=[0, 0], scale=1.0,
                          shear=[u(-c.shear, c.shear), 0.0], fill=[paper] * x.shape[0])
        if u(0, 1) < c.blur:
            x = TF.gaussian_blur(x, kernel_size=[5, 5], sigma=[u(0.3, 1.2)] * 2)
        if c.contrast:
            mean = x.mean()
            x = (x - mean) * u(1 - c.contrast, 1 + c.contrast) + mean + u(-c.contrast, c.contrast) / 2
        if u(0, 1) < c.invert:
            x = 1 - x
        x = x.clamp(0, 1)
        if u(0, 1) < c.jpeg:
            q = int(u(20, 90))
            x = TF.jpeg((x * 255).round().to(torch.uint8), quality=q).float() / 255
        if c.noise:
            x = x + torch.randn(x.shape, generator=g) * u(0, c.noise)
        return x.clamp(0, 1).contiguous()

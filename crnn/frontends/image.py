"""Text-line image frontend: a VGG-style CNN whose height is pooled to 1, so the line's width is time.

Input ``(B, C, H, W)`` float in [0, 1], lines of different widths padded on the right, ``lengths`` the
valid widths in pixels. Output ``(B, T', D)`` with ``T' = W // 4`` (two width-halving pools) and
``lengths // 4``. Every convolution has a width receptive field that is cut at each line's valid width
(the padding is zeroed after each stage), so right padding never changes the valid outputs.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from crnn.frontends import config_from_args, register_frontend


@dataclass
class ImageFrontendConfig:
    height: int = 32                      # lines are resized to this height (aspect kept)
    channels: int = 1                     # 1 grey, 3 RGB
    widths: list[int] = field(default_factory=lambda: [32, 64, 128])  # conv channels per stage
    out_dim: int = 128
    mean: float = 0.5
    std: float = 0.5


@register_frontend("image", modality="image")
class ImageFrontend(nn.Module):
    """Stage i: conv3x3 -> BN -> ReLU, then pool; the first two pools halve height and width, later ones
    height only; a final mean over the remaining height gives one vector per column step."""

    width_stride = 4

    def __init__(self, cfg: ImageFrontendConfig):
        super().__init__()
        self.cfg = cfg
        self.height = cfg.height
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        c_in = cfg.channels
        for c in cfg.widths:
            self.convs.append(nn.Conv2d(c_in, c, 3, padding=1, bias=False))
            self.norms.append(nn.GroupNorm(1, c))  # per-sample statistics are padding-sensitive; see _masked
            c_in = c
        self.proj = nn.Linear(c_in, cfg.out_dim)
        self.output_size = cfg.out_dim

    @classmethod
    def from_args(cls, args: dict) -> "ImageFrontend":
        return cls(config_from_args(ImageFrontendConfig, "image", args))

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return torch.div(lengths, self.width_stride, rounding_mode="floor")

    @staticmethod
    def _mask(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, W) float: 1 on each line's valid columns."""
        cols = torch.arange(x.shape[-1], device=x.device)
        return (cols[None, :] < lengths[:, None]).to(x.dtype)

    @staticmethod
    def _norm(norm: nn.GroupNorm, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """GroupNorm(1, C) with statistics over valid columns only, so padding never shifts them.

        Reduced over channels and rows first, then masked per column: the big tensor is read twice
        (sum, sum of squares) and written once (one scale-and-shift), which keeps the frontend's cost
        in its convolutions.
        """
        n = (m.sum(-1) * x.shape[1] * x.shape[2]).clamp_min(1)  # (B,) valid elements
        mean = (x.sum(dim=(1, 2)) * m).sum(-1) / n  # (B,)
        var = ((x * x).sum(dim=(1, 2)) * m).sum(-1) / n - mean * mean
        scale = norm.weight[None, :] * torch.rsqrt(var.clamp_min(0) + norm.eps)[:, None]  # (B, C)
        shift = norm.bias[None, :] - mean[:, None] * scale
        return torch.addcmul(shift[:, :, None, None], x, scale[:, :, None, None])

    def forward_features(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, H, W), (B,) widths -> (B, T', D) column features, (B,) T' lengths."""
        x = (x - self.cfg.mean) / self.cfg.std
        lengths = lengths.to(x.device)
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            m = self._mask(x, lengths)  # (B, W)
            # padding is zeroed where it enters a convolution (a pool may carry one valid column past a
            # halved length); what a stage writes there is never read as valid
            x = F.relu(self._norm(norm, conv(x * m[:, None, None, :]), m))
            if i < 2:
                x = F.max_pool2d(x, 2, 2, ceil_mode=False)
                lengths = torch.div(lengths, 2, rounding_mode="floor")
            elif x.shape[2] > 1:
                x = F.max_pool2d(x, (2, 1), (2, 1))
        x = x.mean(dim=2)  # (B, C, T')
        x = (x * self._mask(x, lengths)[:, None, :]).transpose(1, 2)  # (B, T', C), padding zeroed
        return self.proj(x), lengths

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_features(x, lengths)

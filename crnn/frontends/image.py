"""Text-line image frontend: a VGG-style CNN whose height is pooled to 1, so the line's width is time.

Input ``(B, C, H, W)`` float in [0, 1], lines of different widths padded on the right, ``lengths`` the
valid widths in pixels. Output ``(B, T', D)`` with ``T' = W // 4`` (two width-halving pools) and
``lengths // 4``. Every convolution has a width receptive field that is cut at each line's valid width
(the padding is zeroed after each stage), so right padding never changes the valid outputs.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

from crnn.frontends import register_frontend


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
        known = {f.name for f in fields(ImageFrontendConfig)}
        unknown = set(args) - known
        if unknown:
            raise ValueError(f"image frontend: unknown argument(s) {', '.join(sorted(unknown))}")
        return cls(ImageFrontendConfig(**args))

    def config_dict(self) -> dict:
        return asdict(self.cfg)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return torch.div(lengths, self.width_stride, rounding_mode="floor")

    @staticmethod
    def _mask(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        cols = torch.arange(x.shape[-1], device=x.device)
        return (cols[None, :] < lengths[:, None]).to(x.dtype)[:, None, None, :]  # (B, 1, 1, W)

    def _norm(self, norm: nn.GroupNorm, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        # GroupNorm statistics over valid columns only, so padding never shifts them.
        n = m.sum(dim=(2, 3), keepdim=True).clamp_min(1) * x.shape[1] * x.shape[2]
        mean = (x * m).sum(dim=(1, 2, 3), keepdim=True) / n
        var = (((x - mean) * m) ** 2).sum(dim=(1, 2, 3), keepdim=True) / n
        x = (x - mean) / torch.sqrt(var + norm.eps)
        return x * norm.weight[None, :, None, None] + norm.bias[None, :, None, None]

    def forward_features(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, H, W), (B,) widths -> (B, T', D) column features, (B,) T' lengths."""
        x = (x - self.cfg.mean) / self.cfg.std
        lengths = lengths.to(x.device)
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            m = self._mask(x, lengths)
            x = F.relu(self._norm(norm, conv(x * m), m)) * m
            if i < 2:
                x = F.max_pool2d(x, 2, 2, ceil_mode=False)
                lengths = torch.div(lengths, 2, rounding_mode="floor")
            elif x.shape[2] > 1:
                x = F.max_pool2d(x, (2, 1), (2, 1))
        x = x.mean(dim=2).transpose(1, 2)  # (B, T', C)
        return self.proj(x), lengths

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_features(x, lengths)

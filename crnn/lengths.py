"""Length arithmetic shared by frontends, cells and the encoder: masks and conv output lengths."""
from __future__ import annotations

import torch


def length_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B,) lengths -> (B, max_len) bool mask, True on valid frames."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def conv_out_length(lengths: torch.Tensor, kernel: int, stride: int, padding: int) -> torch.Tensor:
    """Output length of a 1-D convolution/pooling along time (floor mode), for integer lengths."""
    return torch.div(lengths + 2 * padding - kernel, stride, rounding_mode="floor") + 1

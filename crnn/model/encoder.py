"""Stacked recurrent layers built from any registered cell."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from crnn.cells import get_cell
from crnn.lengths import length_mask


class RecurrentEncoder(nn.Module):
    """N recurrent layers, with optional dropout and LayerNorm between them.

    Args:
        input_size: feature size D of the input.
        hidden_size: hidden units per direction.
        num_layers: number of stacked layers.
        cell: registered cell name or layer class. (Default: ``"gru"``)
        bidirectional: run each layer in both directions. (Default: True)
        dropout: dropout between layers. (Default: 0.0)
        layer_norm: LayerNorm on each layer's output. (Default: False)
    """

    def __init__(
        self, input_size: int, hidden_size: int, num_layers: int, cell: str | type = "gru",
        bidirectional: bool = True, dropout: float = 0.0, layer_norm: bool = False,
    ):
        super().__init__()
        layer_cls = get_cell(cell)
        self.layers = nn.ModuleList()
        self.norms = nn.ModuleList()
        size = input_size
        for _ in range(num_layers):
            layer = layer_cls(size, hidden_size, bidirectional=bidirectional)
            self.layers.append(layer)
            size = layer.output_size
            self.norms.append(nn.LayerNorm(size) if layer_norm else nn.Identity())
        self.dropout = nn.Dropout(dropout)
        self.output_size = size

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor, state: list[Any] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, list[Any]]:
        """x (B, T, D), lengths (B,) -> y (B, T, output_size), lengths, per-layer states."""
        states = []
        mask = length_mask(lengths.to(x.device), x.size(1)).unsqueeze(-1)
        for i, (layer, norm) in enumerate(zip(self.layers, self.norms)):
            if i > 0:
                x = self.dropout(x)
            x, lengths, s = layer(x, lengths, None if state is None else state[i])
            x = norm(x) * mask
            states.append(s)
        return x, lengths, states

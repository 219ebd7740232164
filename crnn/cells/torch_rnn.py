"""cuDNN-backed layers: thin wrappers over ``torch.nn.GRU/LSTM/RNN`` with packed sequences."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from crnn.cells.registry import register_cell


class _TorchRNNLayer(nn.Module):
    """One (bi)directional layer of a ``torch.nn`` recurrent module, fed packed sequences.

    Packing makes the reverse direction start at each sequence's own last valid frame, so padding
    never leaks into valid outputs. Parameter names are those of a one-layer ``torch.nn`` module
    under ``.rnn`` (``rnn.weight_ih_l0``, ``rnn.weight_hh_l0_reverse`` ...).
    """

    rnn_class: type[nn.RNNBase] = nn.GRU

    def __init__(self, input_size: int, hidden_size: int, bidirectional: bool = True, **kwargs: Any):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bidirectional = bidirectional
        self.output_size = hidden_size * (2 if bidirectional else 1)
        self.rnn = self.rnn_class(input_size, hidden_size, batch_first=True, bidirectional=bidirectional, **kwargs)

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor, state: Any = None
    ) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """x: (B, T, D), lengths: (B,) -> y: (B, T, H * dirs), lengths, state (dirs, B, H) or a pair."""
        total = x.size(1)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        y, state = self.rnn(packed, state)
        y, _ = pad_packed_sequence(y, batch_first=True, total_length=total)
        return y, lengths, state


@register_cell("gru")
class GRULayer(_TorchRNNLayer):
    """``torch.nn.GRU`` (cuDNN on GPU)."""

    rnn_class = nn.GRU


@register_cell("lstm")
class LSTMLayer(_TorchRNNLayer):
    """``torch.nn.LSTM`` (cuDNN on GPU); state is ``(h, c)``."""

    rnn_class = nn.LSTM


@register_cell("rnn")
class RNNLayer(_TorchRNNLayer):
    """Elman ``torch.nn.RNN`` with tanh (cuDNN on GPU)."""

    rnn_class = nn.RNN

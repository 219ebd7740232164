"""GRU and LSTM written from their equations, stepping through time (``gru_ref``, ``lstm_ref``).

They are the readable ground truth for the cuDNN layers: same maths, same parameter names and
layout, same initialisation. Parameters live under ``.rnn`` with ``torch.nn.GRU/LSTM``'s one-layer
names (``rnn.weight_ih_l0``, ``rnn.bias_hh_l0_reverse`` ...), exactly as in the ``gru``/``lstm``
layers, so a state dict moves between ``cell="gru"`` and ``cell="gru_ref"`` (whole models included)
with a plain ``load_state_dict``, and ``layer.rnn.load_state_dict(torch.nn.GRU(...).state_dict())``
works for a one-layer torch module.

The input projection ``x @ W_ih^T + b_ih`` is computed for all frames in one matmul before the time
loop; only the recurrent part runs per step. On CUDA the per-step maths is compiled (``fast.py``).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from crnn.cells import fast
from crnn.cells.base import State, StepLayer
from crnn.cells.registry import register_cell


def gru_cell(gx: torch.Tensor, h: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
    """One GRU step. gx: (B, 3H) precomputed ``W_ih x + b_ih`` (gates r, z, n), h: (B, H) -> new h (B, H)."""
    gh = F.linear(h, w_hh, b_hh)  # (B, 3H)
    x_r, x_z, x_n = gx.chunk(3, dim=-1)
    h_r, h_z, h_n = gh.chunk(3, dim=-1)
    r = torch.sigmoid(x_r + h_r)  # reset gate
    z = torch.sigmoid(x_z + h_z)  # update gate
    n = torch.tanh(x_n + r * h_n)  # candidate; the reset gate scales the recurrent part only
    return (1 - z) * n + z * h


def lstm_cell(
    gx: torch.Tensor, h: torch.Tensor, c: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step. gx: (B, 4H) precomputed ``W_ih x + b_ih`` (gates i, f, g, o), h, c: (B, H) -> (h, c)."""
    gates = gx + F.linear(h, w_hh, b_hh)  # (B, 4H)
    i, f, g, o = gates.chunk(4, dim=-1)
    i = torch.sigmoid(i)  # input gate
    f = torch.sigmoid(f)  # forget gate
    g = torch.tanh(g)  # cell candidate
    o = torch.sigmoid(o)  # output gate
    c = f * c + i * g  # memory cell
    h = o * torch.tanh(c)
    return h, c


class TorchLayout(nn.Module):
    """Parameters named and shaped like a one-layer ``torch.nn.GRU/LSTM`` (gates stacked along dim 0).

    Args:
        input_size: D.
        hidden_size: H.
        gates: 3 for GRU, 4 for LSTM.
        bidirectional: also hold the ``*_reverse`` set.
    """

    def __init__(self, input_size: int, hidden_size: int, gates: int, bidirectional: bool):
        super().__init__()
        self.hidden_size = hidden_size
        self.suffixes = ["", "_reverse"][: 2 if bidirectional else 1]
        for sfx in self.suffixes:
            self.register_parameter(f"weight_ih_l0{sfx}", nn.Parameter(torch.empty(gates * hidden_size, input_size)))
            self.register_parameter(f"weight_hh_l0{sfx}", nn.Parameter(torch.empty(gates * hidden_size, hidden_size)))
            self.register_parameter(f"bias_ih_l0{sfx}", nn.Parameter(torch.empty(gates * hidden_size)))
            self.register_parameter(f"bias_hh_l0{sfx}", nn.Parameter(torch.empty(gates * hidden_size)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch.nn.RNNBase's initialisation: every tensor uniform in +-1/sqrt(H)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def weights(self, direction: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(W_ih, W_hh, b_ih, b_hh) of direction 0 (forward) or 1 (reverse)."""
        sfx = self.suffixes[direction]
        return (getattr(self, f"weight_ih_l0{sfx}"), getattr(self, f"weight_hh_l0{sfx}"),
                getattr(self, f"bias_ih_l0{sfx}"), getattr(self, f"bias_hh_l0{sfx}"))


class _ReferenceLayer(StepLayer):
    gates = 3

    def __init__(self, input_size: int, hidden_size: int, bidirectional: bool = True):
        super().__init__(input_size, hidden_size, bidirectional)
        self.rnn = TorchLayout(input_size, hidden_size, self.gates, bidirectional)

    def project(self, x: torch.Tensor, direction: int) -> torch.Tensor:
        """(B, T, D) -> (B, T, gates * H): the input half of every gate, all frames in one matmul."""
        w_ih, _, b_ih, _ = self.rnn.weights(direction)
        return F.linear(x, w_ih, b_ih)


@register_cell("gru_ref")
class GRURef(_ReferenceLayer):
    """GRU from the equations; same weights and outputs as ``torch.nn.GRU``. State: (dirs, B, H)."""

    gates = 3

    def step(self, gx: torch.Tensor, h: torch.Tensor, direction: int) -> torch.Tensor:
        _, w_hh, _, b_hh = self.rnn.weights(direction)
        return fast.step_function(gru_cell, gx.device)(gx, h, w_hh, b_hh)


@register_cell("lstm_ref")
class LSTMRef(_ReferenceLayer):
    """LSTM from the equations; same weights and outputs as ``torch.nn.LSTM``. State: ``(h, c)``, each (dirs, B, H)."""

    gates = 4

    def init_state(self, batch: int, x: torch.Tensor) -> State:
        return x.new_zeros(batch, self.hidden_size), x.new_zeros(batch, self.hidden_size)

    def step(self, gx: torch.Tensor, state: State, direction: int) -> tuple[torch.Tensor, State]:
        h, c = state
        _, w_hh, _, b_hh = self.rnn.weights(direction)
        h, c = fast.step_function(lstm_cell, gx.device)(gx, h, c, w_hh, b_hh)
        return h, (h, c)

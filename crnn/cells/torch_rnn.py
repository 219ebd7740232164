"""cuDNN-backed layers: thin wrappers over ``torch.nn.GRU/LSTM/RNN``.

On CUDA the input is packed, so cuDNN runs each sequence to its own length (a batch whose sequences all
have the full length goes to cuDNN as it is: nothing to pack, the same maths). ``CRNN_CUDA_RNN_INPUT=padded``
runs ragged CUDA batches the CPU's way instead, so ``bench/train_step.py`` can compare the two. On the CPU, PyTorch's
packed-sequence backward accumulates one full-size gradient per time step (quadratic in T), so there each
direction runs on the padded batch instead — the reverse direction on sequences reversed *within* their
lengths — which gives the same valid outputs several times faster.
"""
from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import _VF
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from crnn.cells.base import exporting, masked_scan, output_state_scan, reverse_index, reverse_within, run_directions
from crnn.cells.reference import gru_cell, lstm_cell
from crnn.cells.registry import register_cell
from crnn.lengths import length_mask


def cuda_input() -> str:
    """How ragged CUDA batches reach cuDNN: "packed" (default) or "padded" (``CRNN_CUDA_RNN_INPUT``)."""
    value = os.environ.get("CRNN_CUDA_RNN_INPUT", "packed")
    if value not in ("packed", "padded"):
        raise ValueError(f"CRNN_CUDA_RNN_INPUT must be packed or padded, got {value!r}")
    return value


class _TorchRNNLayer(nn.Module):
    """One (bi)directional layer of a ``torch.nn`` recurrent module.

    Parameter names are those of a one-layer ``torch.nn`` module under ``.rnn``
    (``rnn.weight_ih_l0``, ``rnn.weight_hh_l0_reverse`` ...), so its weights load as they are.
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
        """x: (B, T, D), lengths: (B,) -> y: (B, T, H * dirs), lengths, state (dirs, B, H) or an (h, c) pair."""
        if exporting():
            return self._forward_export(x, lengths, state)
        padded_wanted = not x.is_cuda or cuda_input() == "padded"
        if padded_wanted and self._padded_path_exact(lengths, x.size(1)):
            return self._forward_padded(x, lengths, state)
        return self._forward_packed(x, lengths, state)

    def _padded_path_exact(self, lengths: torch.Tensor, total: int) -> bool:
        # GRU/RNN states are read back from the outputs; an LSTM's memory cell is not among them.
        return not isinstance(self.rnn, nn.LSTM) or bool((lengths == total).all())

    def _forward_packed(self, x, lengths, state):
        total = x.size(1)
        lengths_cpu = lengths.cpu()  # packing needs host lengths: the one sync of this layer
        if bool((lengths_cpu == total).all()):  # nothing to pack: the padded call is the same maths
            y, state = self.rnn(x, state)
            return y, lengths, state
        packed = pack_padded_sequence(x, lengths_cpu, batch_first=True, enforce_sorted=False)
        y, state = self.rnn(packed, state)
        y, _ = pad_packed_sequence(y, batch_first=True, total_length=total)
        return y, lengths, state

    def _forward_export(self, x, lengths, state):
        """The same equations as a masked scan (``torch.export``/ONNX cannot take packed sequences, and
        the padded cuDNN/_VF call specialises on the length)."""
        lengths = lengths.to(device=x.device, dtype=torch.long)
        is_lstm = isinstance(self.rnn, nn.LSTM)
        B = x.size(0)

        def run(xd, lengths, s0, direction):
            sfx = "_reverse" if direction else ""
            w_ih, w_hh, b_ih, b_hh = (getattr(self.rnn, n + sfx) for n in
                                      ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"))
            mask = length_mask(lengths, xd.size(1)).unsqueeze(-1)  # (B, T, 1)
            if s0 is None:
                zeros = xd.new_zeros(B, self.hidden_size)
                s0 = (zeros, zeros) if is_lstm else zeros
            if is_lstm:
                def step(g, s):
                    h, c = lstm_cell(g, s[0], s[1], w_hh, b_hh)
                    return h, (h, c)
                return masked_scan(step, F.linear(xd, w_ih, b_ih), mask, s0)
            if isinstance(self.rnn, nn.GRU):
                return output_state_scan(lambda g, h: gru_cell(g, h, w_hh, b_hh), F.linear(xd, w_ih, b_ih),
                                         lengths, mask, s0)
            # Elman: both biases are added before the loop, so a step is one MatMul, one Add and one Tanh.
            return output_state_scan(lambda g, h: torch.tanh(g + F.linear(h, w_hh)), F.linear(xd, w_ih, b_ih + b_hh),
                                     lengths, mask, s0)

        y, final = run_directions(x, lengths, state, 2 if self.bidirectional else 1, run)
        return y, lengths, final

    def _run_direction(self, x: torch.Tensor, h0: Any, direction: int):
        suffix = "_reverse" if direction else ""
        names = ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
        params = [getattr(self.rnn, n + suffix) for n in names]
        args = (params, True, 1, 0.0, self.training, False, True)
        if isinstance(self.rnn, nn.LSTM):
            y, h, c = _VF.lstm(x, h0, *args)
            return y, (h, c)
        fn = _VF.gru if isinstance(self.rnn, nn.GRU) else _VF.rnn_tanh
        y, h = fn(x, h0, *args)
        return y, h

    def _forward_padded(self, x, lengths, state):
        B, T, _ = x.shape
        lengths_dev = lengths.to(x.device)
        is_lstm = isinstance(self.rnn, nn.LSTM)
        dirs = 2 if self.bidirectional else 1
        if state is None:
            zeros = x.new_zeros(dirs, B, self.hidden_size)
            state = (zeros, zeros) if is_lstm else zeros
        last = (lengths_dev - 1).clamp(min=0).view(B, 1, 1).expand(B, 1, self.hidden_size)
        outs, hs, cs = [], [], []
        rev = reverse_index(lengths_dev, T) if self.bidirectional else None
        for d in range(dirs):
            h0 = (state[0][d : d + 1].contiguous(), state[1][d : d + 1].contiguous()) if is_lstm \
                else state[d : d + 1].contiguous()
            xd = x if d == 0 else reverse_within(x, rev)
            y, h = self._run_direction(xd, h0, d)
            if is_lstm:  # only used with all lengths == T: the returned state is exact
                hs.append(h[0])
                cs.append(h[1])
            else:
                hs.append(y.gather(1, last).transpose(0, 1))  # state at each sequence's last valid frame
            outs.append(y if d == 0 else reverse_within(y, rev))
        y = torch.cat(outs, dim=-1) if dirs == 2 else outs[0]
        mask = (torch.arange(T, device=x.device)[None, :] < lengths_dev[:, None]).unsqueeze(-1)
        y = y * mask
        new_state = (torch.cat(hs), torch.cat(cs)) if is_lstm else torch.cat(hs)
        return y, lengths, new_state


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

"""Native ONNX ``GRU`` / ``LSTM`` operators for exported graphs.

By default an exported recurrent layer is a masked ``scan`` over time (one ONNX ``Scan`` of per-frame
ops per direction). Where a layer computes exactly what ONNX's recurrent operators compute — the
``gru`` and ``lstm`` cells and the reference ``gru_ref`` / ``lstm_ref`` cells, all holding
``torch.nn.GRU/LSTM``-shaped weights — :class:`NativeRNNEncoder` runs it as one operator per layer
instead, both directions in one call, with ``sequence_lens`` for padded batches (the reverse direction
then reverses each sequence within its own length, as the layer contract wants). onnxruntime runs
these operators as fused kernels. The Elman ``rnn`` cell would fit ONNX's ``RNN`` operator, but
onnxruntime's kernel ran slower than PyTorch at batch 16 on the 2-core CPU, where the scan of its step
runs faster than both (BENCHMARKS.md), so it keeps its scan. Between layers the activations stay
time-major, so a stack pays one transpose in and one out, not two per layer.

The operator is a ``torch.library`` custom op (``crnn::onnx_rnn``) whose ONNX translation is the
ONNX operator; in PyTorch it runs the same equations step by step (a reference, not a fast path).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from crnn.cells.reference import GRURef, LSTMRef, gru_cell, lstm_cell
from crnn.cells.torch_rnn import _TorchRNNLayer
from crnn.lengths import length_mask

# Gates per kind, and the torch gate order -> ONNX gate order (GRU: r z n -> z r n; LSTM: i f g o -> i o f g).
GATES = {"gru": 3, "lstm": 4}
ONNX_ORDER = {"gru": [1, 0, 2], "lstm": [0, 3, 1, 2]}


def native_kind(layer: nn.Module) -> str | None:
    """"gru" | "lstm" when ``layer`` is exactly an ONNX recurrent operator, else None."""
    if isinstance(layer, GRURef):
        return "gru"
    if isinstance(layer, LSTMRef):
        return "lstm"
    if isinstance(layer, _TorchRNNLayer):
        rnn = layer.rnn
        if isinstance(rnn, nn.GRU):
            return "gru"
        if isinstance(rnn, nn.LSTM) and rnn.proj_size == 0:
            return "lstm"
    return None


# -- the operator ---------------------------------------------------------------------------------
@torch.library.custom_op("crnn::onnx_rnn", mutates_args=())
def onnx_rnn(x: torch.Tensor, lengths: torch.Tensor, w: torch.Tensor, r: torch.Tensor, b: torch.Tensor,
             h0: torch.Tensor, c0: torch.Tensor, kind: str, hidden_size: int,
             bidirectional: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ONNX GRU (``linear_before_reset=1``) / LSTM, time-major.

    Args:
        x: (T, B, D). lengths: (B,) valid frames. w: (dirs, G*H, D), r: (dirs, G*H, H), b: (dirs, 2*G*H)
            in ONNX gate order. h0, c0: (dirs, B, H) (c0 is read by LSTM only). kind: "gru" | "lstm".
        hidden_size: H. bidirectional: dirs == 2 (the operator's attributes, so they are plain values).

    Returns:
        y (T, dirs, B, H) zero past each length, h_n and c_n (dirs, B, H) at each sequence's last
        valid frame (c_n is h_n for GRU).
    """
    T, B, _ = x.shape
    H = r.size(-1)
    G = GATES[kind]
    back = [ONNX_ORDER[kind].index(k) for k in range(G)]  # ONNX gate order -> torch order
    mask = length_mask(lengths.long(), T).t().unsqueeze(-1)  # (T, B, 1)
    ys, hs, cs = [], [], []
    for d in range(w.size(0)):
        def torch_order(t: torch.Tensor) -> torch.Tensor:
            return torch.cat([t.chunk(G)[k] for k in back])

        w_ih, w_hh = torch_order(w[d]), torch_order(r[d])
        b_ih, b_hh = torch_order(b[d, : G * H]), torch_order(b[d, G * H:])
        idx = torch.arange(T)[:, None].expand(T, B)
        if d == 1:  # reverse within each length
            last = lengths.long()[None, :] - 1
            idx = torch.where(idx <= last, last - idx, idx)
        xd = x.gather(0, idx.unsqueeze(-1).expand_as(x))
        h, c = h0[d], c0[d]
        out = []
        for t in range(T):
            gx = nn.functional.linear(xd[t], w_ih, b_ih)
            if kind == "gru":
                nh, nc = gru_cell(gx, h, w_hh, b_hh), c
            else:
                nh, nc = lstm_cell(gx, h, c, w_hh, b_hh)
            m = mask[t]
            h, c = torch.where(m, nh, h), torch.where(m, nc, c)
            out.append(nh * m)
        y = torch.stack(out) if out else x.new_zeros(0, B, H)
        ys.append(y.gather(0, idx.unsqueeze(-1).expand_as(y)))
        hs.append(h)
        cs.append(c if kind == "lstm" else h)
    return torch.stack(ys, 1), torch.stack(hs), torch.stack(cs)


@onnx_rnn.register_fake
def _(x, lengths, w, r, b, h0, c0, kind, hidden_size, bidirectional):
    T, B, dirs, H = x.size(0), x.size(1), w.size(0), r.size(-1)
    return x.new_empty(T, dirs, B, H), x.new_empty(dirs, B, H), x.new_empty(dirs, B, H)


def onnx_translation(x, lengths, w, r, b, h0, c0, kind: str, hidden_size: int, bidirectional: bool):
    """The ONNX graph of ``crnn::onnx_rnn``: one GRU / LSTM node."""
    from onnxscript import opset18 as op

    seq = op.Cast(lengths, to=6)  # int32, as the operators want
    attrs = dict(direction="bidirectional" if bidirectional else "forward", hidden_size=hidden_size)
    if kind == "lstm":
        y, h, c = op.LSTM(x, w, r, b, seq, h0, c0, **attrs)
        return y, h, c
    y, h = op.GRU(x, w, r, b, seq, h0, linear_before_reset=1, **attrs)
    return y, h, op.Identity(h)


def translation_table() -> dict:
    """What ``torch.onnx.export(custom_translation_table=...)`` needs for graphs with native layers."""
    return {torch.ops.crnn.onnx_rnn.default: onnx_translation}


# -- the encoder of an exported graph -------------------------------------------------------------
class NativeRNNEncoder(nn.Module):
    """``RecurrentEncoder`` for export: native operators where a layer allows, time-major in between.

    forward(x (B, T, D), lengths (B,), state: per-layer list or None) -> y (B, T, out), lengths, states
    (the ``RecurrentEncoder`` contract; states as the layers give them: (dirs, B, H), or (h, c) for LSTM).
    Layers without a native operator run their own exportable path (transposed around them).
    """

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.layers, self.norms = encoder.layers, encoder.norms
        self.output_size = encoder.output_size
        self.kinds = [native_kind(layer) for layer in self.layers]
        for i, (layer, kind) in enumerate(zip(self.layers, self.kinds)):
            if kind is not None:  # ONNX-ordered weights as constants of the graph
                w, r, b = _onnx_weights(layer.rnn, kind, 2 if layer.bidirectional else 1)
                self.register_buffer(f"w{i}", w, persistent=False)
                self.register_buffer(f"r{i}", r, persistent=False)
                self.register_buffer(f"b{i}", b, persistent=False)
                layer.rnn = None  # the torch-ordered copies would be stored in the file as well, unused

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, state: list[Any] | None = None):
        T = x.size(1)
        xt = x.transpose(0, 1)  # (T, B, D): the one transpose in
        mask = length_mask(lengths.to(x.device), T).t().unsqueeze(-1)  # (T, B, 1)
        states = []
        for i, (layer, norm, kind) in enumerate(zip(self.layers, self.norms, self.kinds)):
            s = None if state is None else state[i]
            if kind is None:
                y, _, s = layer(xt.transpose(0, 1), lengths, s)
                yt = y.transpose(0, 1)
            else:
                yt, s = self._native(i, kind, layer.hidden_size, xt, lengths, s)
            xt = norm(yt) * mask
            states.append(s)
        return xt.transpose(0, 1), lengths, states  # the one transpose out

    def _native(self, i: int, kind: str, H: int, xt: torch.Tensor, lengths: torch.Tensor, s: Any):
        w, r, b = getattr(self, f"w{i}"), getattr(self, f"r{i}"), getattr(self, f"b{i}")
        dirs, B = w.size(0), xt.size(1)
        if s is None:
            h0 = c0 = xt.new_zeros(dirs, B, H)
        elif kind == "lstm":
            h0, c0 = s
        else:
            h0 = c0 = s
        y, h, c = torch.ops.crnn.onnx_rnn(xt, lengths, w, r, b, h0, c0, kind, H, dirs == 2)  # y (T, dirs, B, H)
        yt = y.transpose(1, 2).reshape(xt.size(0), B, dirs * H)  # (T, B, dirs * H)
        ran = (lengths > 0).view(1, B, 1)  # onnxruntime zeroes the state of an empty sequence; it must carry
        h, c = torch.where(ran, h, h0), torch.where(ran, c, c0)
        return yt, ((h, c) if kind == "lstm" else h)


def _onnx_weights(rnn: nn.Module, kind: str, dirs: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """torch-layout weights -> ONNX W (dirs, G*H, D), R (dirs, G*H, H), B (dirs, 2*G*H)."""
    G = GATES[kind]

    def onnx_order(t: torch.Tensor) -> torch.Tensor:
        return torch.cat([t.chunk(G)[k] for k in ONNX_ORDER[kind]])

    ws, rs, bs = [], [], []
    for sfx in ["", "_reverse"][:dirs]:
        w_ih, w_hh, b_ih, b_hh = (getattr(rnn, n + sfx).detach() for n in
                                  ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"))
        ws.append(onnx_order(w_ih))
        rs.append(onnx_order(w_hh))
        bs.append(torch.cat([onnx_order(b_ih), onnx_order(b_hh)]))
    return torch.stack(ws), torch.stack(rs), torch.stack(bs)

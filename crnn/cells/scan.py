"""Parallel-scan cells ``mingru`` and ``minlstm`` (Feng et al. 2024, "Were RNNs All We Needed?").

Their gates read only the input, never the previous state, so every layer is a linear recurrence
``h_t = a_t * h_{t-1} + b_t`` that a log-space prefix scan (``cumsum`` + ``logcumsumexp``) computes
for all frames at once instead of stepping through time:

* minGRU:  z = sigmoid(k_z),  h~ = g(k_h),  h_t = (1 - z) * h_{t-1} + z * h~
* minLSTM: f = sigmoid(k_f),  i = sigmoid(k_i),  f' = f / (f + i),  i' = i / (f + i),
           h_t = f' * h_{t-1} + i' * h~

with ``k = Linear(x_t)`` and ``g(x) = x + 0.5`` for x >= 0, ``sigmoid(x)`` otherwise (positive, so
``log g`` exists). Each layer also defines ``step``, so ``forward_steps`` runs the same cell as a plain
loop (the reference the scan is tested against).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from crnn.cells.base import StepLayer, exporting
from crnn.cells.registry import register_cell
from crnn.lengths import length_mask


def g(x: torch.Tensor) -> torch.Tensor:
    """The paper's positive activation: x + 0.5 for x >= 0, sigmoid(x) below."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def log_g(x: torch.Tensor) -> torch.Tensor:
    """log(g(x)), computed without forming g (log-sigmoid branch stays finite for very negative x)."""
    return torch.where(x >= 0, torch.log(F.relu(x) + 0.5), -F.softplus(-x))


def scan_log(log_a: torch.Tensor, log_b: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
    """All h_t of ``h_t = a_t * h_{t-1} + b_t`` (a, b > 0) from log a, log b (B, T, H); h0 (B, H) -> (B, T, H).

    ``h_t = A_t * (h0 + sum_{k<=t} b_k / A_k)`` with ``A_t = prod_{k<=t} a_k``, in log space:
    ``log A = cumsum(log a)`` and the sum is a ``logcumsumexp``. The h0 term is added linearly, so
    any initial state works (zero or negative included, where a log would not exist).
    """
    log_A = torch.cumsum(log_a, dim=1)  # (B, T, H)
    h = torch.exp(log_A + torch.logcumsumexp(log_b - log_A, dim=1))
    if h0 is not None:
        h = h + torch.exp(log_A) * h0.unsqueeze(1)
    return h


def scan_linear_chunked(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor, chunk: int = 16) -> torch.Tensor:
    """All h_t of ``h_t = a_t * h_{t-1} + b_t`` from a in [0, 1] and b (B, T, H), h0 (B, H) -> (B, T, H).

    The export form of :func:`scan_log`: no logarithm, no division, so nothing overflows however long
    the input (a product of many a's underflows to 0, which is its limit). Within chunks of ``chunk``
    frames a Hillis-Steele prefix scan composes ``(a, b)`` pairs in log2(chunk) whole-tensor steps;
    one short loop then carries the state from chunk to chunk (T / chunk steps instead of T).
    """
    B, T, H = a.shape
    pad = (chunk - T % chunk) % chunk
    a = F.pad(a, (0, 0, 0, pad), value=1.0)  # padding frames keep the state as it is
    b = F.pad(b, (0, 0, 0, pad), value=0.0)
    a = a.reshape(B, -1, chunk, H)  # (B, C, L, H)
    b = b.reshape(B, -1, chunk, H)
    shift = 1
    while shift < chunk:  # (a, b)_t <- (a_t a_{t-s}, a_t b_{t-s} + b_t): pairs now span 2s frames
        b = a * F.pad(b[:, :, :-shift], (0, 0, shift, 0), value=0.0) + b
        a = a * F.pad(a[:, :, :-shift], (0, 0, shift, 0), value=1.0)
        shift *= 2
    starts = _chunk_starts(a[:, :, -1], b[:, :, -1], h0)  # (B, C, H): the state entering each chunk
    h = a * starts.unsqueeze(2) + b  # (B, C, L, H)
    return h.reshape(B, -1, H)[:, :T]


def _chunk_starts(a_end: torch.Tensor, b_end: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """State entering each chunk from each chunk's composed (a, b) (B, C, H) and h0 (B, H) -> (B, C, H)."""
    from torch._higher_order_ops.scan import scan

    def body(h: torch.Tensor, inputs: tuple[torch.Tensor, torch.Tensor]):
        a_c, b_c = inputs
        return a_c * h + b_c, h.clone()

    torch._check(a_end.size(1) > 0)  # an exported graph's time axis may be data-dependent: scan needs a step
    _, starts = scan(body, h0.clone(), (a_end.transpose(0, 1), b_end.transpose(0, 1)))  # (C, B, H)
    return starts.transpose(0, 1)


class ScanLayer(StepLayer):
    """Base for cells whose recurrence is ``h_t = a_t * h_{t-1} + b_t`` with input-only a, b.

    Subclasses define ``project`` (B, T, D) -> (B, T, P), ``log_coefficients`` (B, T, P) -> (log a,
    log b) each (B, T, H), optionally ``coefficients`` (the same a, b in linear space, for export) and ``step``
    (the same maths one frame at a time). State: (dirs, B, H).
    """

    # Export computes the recurrence in linear space (``coefficients``, scan_linear_chunked): ONNX's
    # translation of logcumsumexp is log(cumsum(exp(x))), which overflows over long inputs, and a scan of
    # ``step`` pays a runtime's per-iteration cost on every frame.

    def log_coefficients(self, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def run_direction(
        self, x: torch.Tensor, lengths: torch.Tensor, state: torch.Tensor | None, direction: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, D) -> (B, T, H) by one scan over all frames, final state at each last valid frame."""
        B, T, _ = x.shape
        log_a, log_b = self.log_coefficients(self.project(x, direction))
        h = scan_log(log_a, log_b, state)  # (B, T, H); frames past a length never reach earlier ones
        y = h * length_mask(lengths, T).unsqueeze(-1)
        last = (lengths - 1).clamp(min=0).view(B, 1, 1).expand(B, 1, self.hidden_size)
        final = h.gather(1, last).squeeze(1) if T > 0 else h.new_zeros(B, self.hidden_size)
        h0 = state if state is not None else h.new_zeros(B, self.hidden_size)
        return y, torch.where((lengths > 0).unsqueeze(-1), final, h0)

    def coefficients(self, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, P) projections -> a in [0, 1], b (B, T, H) each, in linear space (the export path).

        The default exponentiates ``log_coefficients``; the built-in cells compute them directly (no
        Softplus or Log in the exported graph)."""
        log_a, log_b = self.log_coefficients(k)
        return log_a.exp(), log_b.exp()

    def run_directions(self, x: torch.Tensor, lengths: torch.Tensor, state: torch.Tensor | None, run):
        """Exported: every direction by :func:`scan_linear_chunked`, the reverse one on the time-flipped
        coefficients (frames past a length keep the state, a = 1 and b = 0, so a reversed sequence
        starts at its own last frame without reordering the input). Otherwise the base class's driver."""
        if not exporting():
            return super().run_directions(x, lengths, state, run)
        lengths = self.check_input(x, lengths)
        B, T, _ = x.shape
        mask = length_mask(lengths, T).unsqueeze(-1)  # (B, T, 1)
        outputs, finals = [], []
        for d in range(self.num_directions):
            a, b = self.coefficients(self.project(x, d))
            a = torch.where(mask, a, torch.ones_like(a))
            b = torch.where(mask, b, torch.zeros_like(b))
            h0 = state[d] if state is not None else x.new_zeros(B, self.hidden_size)
            if d == 1:
                a, b = a.flip(1), b.flip(1)
            h = scan_linear_chunked(a, b, h0)  # (B, T, H)
            finals.append(h[:, -1])  # every sequence's final state: nothing changes past its length
            outputs.append((h.flip(1) if d == 1 else h) * mask)
        return torch.cat(outputs, dim=-1), lengths, torch.stack(finals)


@register_cell("mingru")
class MinGRU(ScanLayer):
    """minGRU: GRU gates from the input only, computed by a parallel scan. State: (dirs, B, H)."""

    def __init__(self, input_size: int, hidden_size: int, bidirectional: bool = True):
        super().__init__(input_size, hidden_size, bidirectional)
        # One Linear per direction gives [k_h | k_z].
        self.linear = nn.ModuleList(nn.Linear(input_size, 2 * hidden_size) for _ in range(self.num_directions))

    def project(self, x: torch.Tensor, direction: int) -> torch.Tensor:
        return self.linear[direction](x)  # (B, T, 2H)

    def log_coefficients(self, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k_h, k_z = k.chunk(2, dim=-1)
        log_z = -F.softplus(-k_z)  # log z
        log_one_minus_z = -F.softplus(k_z)  # log (1 - z)
        return log_one_minus_z, log_z + log_g(k_h)

    def coefficients(self, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k_h, k_z = k.chunk(2, dim=-1)
        return torch.sigmoid(-k_z), torch.sigmoid(k_z) * g(k_h)

    def step(self, k: torch.Tensor, h: torch.Tensor, direction: int) -> torch.Tensor:
        k_h, k_z = k.chunk(2, dim=-1)
        z = torch.sigmoid(k_z)
        return (1 - z) * h + z * g(k_h)


@register_cell("minlstm")
class MinLSTM(ScanLayer):
    """minLSTM: normalised forget/input gates from the input only, parallel scan. State: (dirs, B, H)."""

    def __init__(self, input_size: int, hidden_size: int, bidirectional: bool = True):
        super().__init__(input_size, hidden_size, bidirectional)
        # One Linear per direction gives [k_f | k_i | k_h].
        self.linear = nn.ModuleList(nn.Linear(input_size, 3 * hidden_size) for _ in range(self.num_directions))

    def project(self, x: torch.Tensor, direction: int) -> torch.Tensor:
        return self.linear[direction](x)  # (B, T, 3H)

    def log_coefficients(self, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k_f, k_i, k_h = k.chunk(3, dim=-1)
        # log f' = log f - log(f + i) = -softplus(log i - log f), with log f = -softplus(-k_f).
        diff = F.softplus(-k_f) - F.softplus(-k_i)  # = log i - log f
        return -F.softplus(diff), -F.softplus(-diff) + log_g(k_h)

    def coefficients(self, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k_f, k_i, k_h = k.chunk(3, dim=-1)
        f, i = torch.sigmoid(k_f), torch.sigmoid(k_i)
        return f / (f + i), i / (f + i) * g(k_h)

    def step(self, k: torch.Tensor, h: torch.Tensor, direction: int) -> torch.Tensor:
        k_f, k_i, k_h = k.chunk(3, dim=-1)
        f, i = torch.sigmoid(k_f), torch.sigmoid(k_i)
        return (f * h + i * g(k_h)) / (f + i)

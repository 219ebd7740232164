"""StepLayer: turn a per-time-step recurrent cell into a layer that obeys the layer contract.

A subclass supplies ``step`` (and optionally ``project`` and ``init_state``); the base class handles
both directions, variable lengths, zeroed padding and carried state::

    @register_cell("mycell")
    class MyCell(StepLayer):
        def __init__(self, input_size, hidden_size, bidirectional=True):
            super().__init__(input_size, hidden_size, bidirectional)
            self.cell = nn.ModuleList(nn.Linear(input_size + hidden_size, hidden_size)
                                      for _ in range(self.num_directions))

        def step(self, x_t, h, direction):
            return torch.tanh(self.cell[direction](torch.cat([x_t, h], dim=-1)))

State layout follows ``torch.nn.GRU/LSTM``: a tensor ``(dirs, B, H)``, or a tuple of such tensors for
cells whose ``init_state`` returns a tuple (LSTM's ``(h, c)``), so states of ``gru``/``gru_ref`` and
``lstm``/``lstm_ref`` are interchangeable.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Union

import torch
import torch.nn as nn

from crnn.lengths import length_mask

State = Union[torch.Tensor, tuple[torch.Tensor, ...]]

_export_mode = False


@contextlib.contextmanager
def export_mode() -> Iterator[None]:
    """Inside this block every layer takes its exportable path (see :func:`exporting`)."""
    global _export_mode
    saved, _export_mode = _export_mode, True
    try:
        yield
    finally:
        _export_mode = saved


def exporting() -> bool:
    """True under :func:`export_mode` or while ``torch.export`` traces.

    Layers then run their time loop as one ``scan`` over a length mask (a graph with a dynamic
    length) instead of Python loops, packed sequences or cuDNN calls, and skip data-dependent checks.
    The valid outputs are the same; training never takes this path, so its speed is unchanged.
    """
    return _export_mode or torch.compiler.is_exporting()


def masked_scan(
    step: Callable[[torch.Tensor, State], tuple[torch.Tensor, State]], xp: torch.Tensor, mask: torch.Tensor,
    state: State,
) -> tuple[torch.Tensor, State]:
    """The time loop as one ``torch`` scan (exportable with a dynamic length).

    Args:
        step: ``(x_t (B, P), state) -> (h_t (B, H), new_state)``.
        xp: (B, T, P) per-frame inputs.
        mask: (B, T, 1) bool, True on valid frames; past its length a sequence keeps its state.
        state: the initial state (a tensor or a tuple of tensors).

    Returns:
        y (B, T, H) zero at padded frames, the state at each sequence's last valid frame.
    """
    from torch._higher_order_ops.scan import scan

    def body(s: State, inputs: tuple[torch.Tensor, torch.Tensor]):
        x_t, m = inputs
        h, new = step(x_t, s)
        s = map_state(lambda a, b: torch.where(m, a, b), new, s)
        return s, h * m

    state = map_state(torch.clone, state)  # scan must not take views of graph inputs as its carry
    final, ys = scan(body, state, (xp.transpose(0, 1), mask.transpose(0, 1)))  # ys: (T, B, H)
    return ys.transpose(0, 1), final


def output_state_scan(
    step: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], xp: torch.Tensor, lengths: torch.Tensor,
    mask: torch.Tensor, h0: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`masked_scan` for cells whose output is their state (GRU, Elman): a leaner loop body.

    The body is the step alone: frames past a length update the state too, their outputs are zeroed
    after the loop, and each sequence's final state is read from its last valid output (h0 where it
    has none), so no per-frame masking runs inside the loop.

    Args:
        step: ``(x_t (B, P), h (B, H)) -> h_t (B, H)``.
        xp: (B, T, P) per-frame inputs. lengths: (B,). mask: (B, T, 1) bool, True on valid frames.
        h0: (B, H) initial state.
    Returns:
        y (B, T, H) zero at padded frames, the state at each sequence's last valid frame (B, H).
    """
    from torch._higher_order_ops.scan import scan

    def body(h: torch.Tensor, x_t: torch.Tensor):
        h = step(x_t, h)
        return h, h.clone()  # a scan's output must not alias its carry

    _, ys = scan(body, h0.clone(), xp.transpose(0, 1))  # (T, B, H)
    y = ys.transpose(0, 1)  # (B, T, H)
    last = (lengths - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, y.size(-1))
    final = torch.where((lengths > 0).unsqueeze(-1), y.gather(1, last).squeeze(1), h0)
    return y * mask, final


def run_directions(
    x: torch.Tensor, lengths: torch.Tensor, state: State | None, num_directions: int, run: Callable
) -> tuple[torch.Tensor, State]:
    """Run ``run(x, lengths, state_d, d) -> (y (B, T, H), state_d)`` per direction.

    The reverse direction sees each sequence reversed within its length and its output is
    un-reversed. Returns outputs concatenated (B, T, H * dirs) and states stacked (dirs, B, H).
    """
    outputs, finals = [], []
    for d in range(num_directions):
        s0 = None if state is None else map_state(lambda s: s[d], state)
        if d == 1:  # reverse each sequence within its length, run forward, un-reverse
            index = reverse_index(lengths, x.size(1))
            y, s = run(reverse_within(x, index), lengths, s0, d)
            y = reverse_within(y, index)
        else:
            y, s = run(x, lengths, s0, d)
        outputs.append(y)
        finals.append(s)
    return torch.cat(outputs, dim=-1), map_state(lambda *s: torch.stack(s), *finals)


def map_state(fn: Callable[..., torch.Tensor], *states: State) -> State:
    """Apply ``fn`` leaf-wise to one or more states of the same structure (a tensor or a tuple)."""
    if isinstance(states[0], torch.Tensor):
        return fn(*states)
    return tuple(fn(*leaves) for leaves in zip(*states))


def reverse_index(lengths: torch.Tensor, total: int) -> torch.Tensor:
    """(B,) lengths -> (B, total) time index that reverses each sequence within its length.

    Frames past a sequence's length stay where they are, so the index is its own inverse:
    gathering twice with it restores the original order.
    """
    t = torch.arange(total, device=lengths.device)[None, :]  # (1, T)
    last = lengths[:, None] - 1  # (B, 1)
    return torch.where(t <= last, last - t, t)


def reverse_within(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Reorder (B, T, D) along time by a (B, T) index from :func:`reverse_index`."""
    return x.gather(1, index.unsqueeze(-1).expand_as(x))


class StepLayer(nn.Module):
    """One (bi)directional recurrent layer driven by a per-time-step ``step`` function.

    Subclass hooks (``direction`` is 0 forward, 1 reverse; keep one set of weights per direction):

    * ``step(x_t (B, P), state, direction) -> h_t (B, H)`` or ``(h_t, new_state)``; returning a bare
      tensor means the output is the state (GRU-like cells).
    * ``project(x (B, T, D), direction) -> (B, T, P)``: per-frame input transform done for all frames
      at once before the time loop (e.g. the input matmul). (Default: identity)
    * ``init_state(batch, x) -> state``: the zero state of one direction. (Default: zeros (B, H))

    Args:
        input_size: feature size D of the input.
        hidden_size: hidden units H per direction.
        bidirectional: also run a reverse direction and concatenate. (Default: True)

    Attributes:
        output_size: ``H * num_directions``.
        exportable_fast_path: a subclass sets this when its ``run_direction`` exports as it is
            (else export runs the step loop as a scan). (Default: False)
    """

    exportable_fast_path = False

    def __init__(self, input_size: int, hidden_size: int, bidirectional: bool = True):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.bidirectional = bidirectional
        self.num_directions = 2 if bidirectional else 1
        self.output_size = hidden_size * self.num_directions

    # ---- hooks -------------------------------------------------------------------------------
    def step(self, x_t: torch.Tensor, state: State, direction: int) -> torch.Tensor | tuple[torch.Tensor, State]:
        """One frame: x_t (B, P) from ``project``, state of this direction -> h_t (B, H) [, new state]."""
        raise NotImplementedError(f"{type(self).__name__} must define step(x_t, state, direction)")

    def project(self, x: torch.Tensor, direction: int) -> torch.Tensor:
        """(B, T, D) -> (B, T, P) per-frame input transform, done once before the time loop."""
        return x

    def init_state(self, batch: int, x: torch.Tensor) -> State:
        """Zero state of one direction: (B, H), on x's device and dtype."""
        return x.new_zeros(batch, self.hidden_size)

    # ---- driver ------------------------------------------------------------------------------
    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor, state: State | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, State]:
        """Run every direction (``run_direction``: the step loop unless a subclass has a faster way).

        Args:
            x: (B, T, D) input; frames past each length may hold anything.
            lengths: (B,) valid frames per sequence.
            state: (dirs, B, H) (or a tuple of those) to start from, e.g. the state returned for the
                previous chunk of a stream. (Default: None = zeros)

        Returns:
            y (B, T, H * dirs) zero at padded frames, lengths, state at each sequence's last valid
            frame (for the reverse direction: after its first frame, as ``torch.nn.GRU``'s ``h_n``).
        """
        return self.run_directions(x, lengths, state, self.run_direction)

    def forward_steps(
        self, x: torch.Tensor, lengths: torch.Tensor, state: State | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, State]:
        """Like ``forward`` but always through the plain step loop (the reference for faster paths)."""
        return self.run_directions(x, lengths, state, self.run_steps)

    def run_directions(
        self, x: torch.Tensor, lengths: torch.Tensor, state: State | None, run: Callable
    ) -> tuple[torch.Tensor, torch.Tensor, State]:
        """Split the state per direction, ``run`` each one, concatenate outputs and stack states."""
        lengths = self.check_input(x, lengths)
        if exporting() and not self.exportable_fast_path:
            run = self.run_steps  # a subclass's faster path may hold Python loops or data-dependent code
        y, final = run_directions(x, lengths, state, self.num_directions, run)
        return y, lengths, final

    def run_direction(
        self, x: torch.Tensor, lengths: torch.Tensor, state: State | None, direction: int
    ) -> tuple[torch.Tensor, State]:
        """One direction over time-ordered input: (B, T, D) -> (B, T, H) zero-padded, final state."""
        return self.run_steps(x, lengths, state, direction)

    def run_steps(
        self, x: torch.Tensor, lengths: torch.Tensor, state: State | None, direction: int
    ) -> tuple[torch.Tensor, State]:
        """The time loop: ``step`` per frame, state frozen past each length, padded outputs zeroed."""
        B, T, _ = x.shape
        xp = self.project(x, direction)  # (B, T, P)
        mask = length_mask(lengths, T).unsqueeze(-1)  # (B, T, 1)
        s = self.init_state(B, x) if state is None else state
        if exporting():
            def step(x_t: torch.Tensor, s: State) -> tuple[torch.Tensor, State]:
                out = self.step(x_t, s, direction)
                return (out, out) if isinstance(out, torch.Tensor) else out

            return masked_scan(step, xp, mask, s)
        ys = []
        # unbind, not xp[:, t]: its backward stacks the T frame gradients once, where indexing would
        # build a full (B, T, P) gradient per step (quadratic in T).
        for x_t, m in zip(xp.unbind(1), mask.unbind(1)):
            out = self.step(x_t, s, direction)
            h, new = (out, out) if isinstance(out, torch.Tensor) else out
            # Past its length a sequence keeps its state, so the final state is the last valid one.
            s = map_state(lambda a, b: torch.where(m, a, b), new, s)
            ys.append(h * m)
        y = torch.stack(ys, dim=1) if ys else x.new_zeros(B, 0, self.hidden_size)
        return y, s

    def check_input(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Validate shapes; return lengths as int64 on x's device."""
        if x.dim() != 3 or x.size(-1) != self.input_size:
            raise ValueError(
                f"{type(self).__name__}: expected input (B, T, {self.input_size}), got {tuple(x.shape)}"
            )
        if lengths.dim() != 1 or lengths.size(0) != x.size(0):
            raise ValueError(f"{type(self).__name__}: expected lengths of shape ({x.size(0)},), got {tuple(lengths.shape)}")
        lengths = lengths.to(device=x.device, dtype=torch.long)
        if not exporting() and lengths.numel() and int(lengths.max()) > x.size(1):
            raise ValueError(f"{type(self).__name__}: a length ({int(lengths.max())}) exceeds the {x.size(1)} input frames")
        return lengths

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bidirectional={self.bidirectional}"


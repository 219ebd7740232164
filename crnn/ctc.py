"""CTC loss with a feasibility check, and forced alignment for timestamps."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


class InfeasibleLabelError(ValueError):
    """A label sequence cannot be aligned to its frames under CTC."""


def ctc_min_frames(tokens: Sequence[int]) -> int:
    """Frames CTC needs for a label: its length plus one blank between each pair of equal neighbours."""
    tokens = list(tokens)
    repeats = sum(1 for a, b in zip(tokens, tokens[1:]) if a == b)
    return len(tokens) + repeats


def ctc_min_frames_batch(targets: torch.Tensor, target_lengths: torch.Tensor) -> torch.Tensor:
    """(B, L) padded targets, (B,) lengths -> (B,) minimum frames, with tensor ops (no host sync)."""
    L = targets.size(1)
    valid = torch.arange(L, device=targets.device)[None, :] < target_lengths[:, None]
    same = (targets[:, 1:] == targets[:, :-1]) & valid[:, 1:]
    return target_lengths + same.sum(1)


def check_feasible(
    frames: torch.Tensor, targets: torch.Tensor, target_lengths: torch.Tensor, names: Sequence[str] | None = None
) -> None:
    """Raise InfeasibleLabelError naming every item whose label needs more frames than it has."""
    need = ctc_min_frames_batch(targets, target_lengths)
    bad = (need > frames.to(need.device)).nonzero().flatten().tolist()
    if bad:
        lines = [
            f"{names[i] if names else f'item {i}'}: label needs {int(need[i])} frames, input gives {int(frames[i])}"
            for i in bad
        ]
        raise InfeasibleLabelError("labels that cannot fit their input under CTC:\n  " + "\n  ".join(lines))


def ctc_loss(
    log_probs: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor, target_lengths: torch.Tensor,
    blank: int = 0, reduction: str = "mean",
) -> torch.Tensor:
    """CTC loss in fp32 on batch-first log-probs.

    Args:
        log_probs: (B, T, V) log-posteriors (cast to fp32 here, whatever autocast says).
        lengths: (B,) valid frames.
        targets: (B, L) padded label ids (no blanks).
        target_lengths: (B,) label lengths.
        reduction: "mean" (per-frame-normalised mean over the batch, as torch), "sum" or "none".

    Infeasible items give inf under torch; call ``check_feasible`` first to report them by name.
    """
    with torch.autocast(device_type=log_probs.device.type, enabled=False):
        return F.ctc_loss(
            log_probs.float().transpose(0, 1), targets, lengths, target_lengths,
            blank=blank, reduction=reduction, zero_infinity=False,
        )


def forced_path(log_probs: torch.Tensor, tokens: Sequence[int], blank: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The most likely CTC path (Viterbi) of one utterance through ``tokens``.

    Args:
        log_probs: (T, V) log-posteriors of one utterance (valid frames only).
        tokens: label ids without blanks (not empty).
        blank: the blank id. (Default: 0)

    Returns:
        path (T,) int64: per frame the id the path emits (``blank`` or a token), and its log-probabilities
        (T,) float32 (``log_probs[t, path[t]]``).

    Raises:
        InfeasibleLabelError: the label needs more frames than ``log_probs`` has.
    """
    import torchaudio.functional as AF

    need = ctc_min_frames(tokens)
    if need > log_probs.size(0):
        raise InfeasibleLabelError(f"label needs {need} frames, input gives {log_probs.size(0)}")
    lp = log_probs.detach().float().cpu().unsqueeze(0)  # (1, T, V)
    tgt = torch.tensor([list(tokens)], dtype=torch.int32)
    path, scores = AF.forced_align(lp, tgt, blank=blank)
    return path[0].long(), scores[0].float()


def path_spans(path: Sequence[int], blank: int = 0) -> list[tuple[int, int]]:
    """Per emitted token of a CTC path (T,), its (first_frame, last_frame), inclusive; a repeat of the same
    token after a blank starts a new token."""
    spans: list[tuple[int, int]] = []
    prev = blank
    for t, tok in enumerate(path):
        if tok != blank and tok != prev:
            spans.append((t, t))
        elif tok != blank:
            spans[-1] = (spans[-1][0], t)
        prev = tok
    return spans


def align(log_probs: torch.Tensor, tokens: Sequence[int], blank: int = 0) -> list[tuple[int, int]]:
    """Forced alignment of one utterance: per token, its (first_frame, last_frame), inclusive.

    Args:
        log_probs: (T, V) log-posteriors of one utterance (valid frames only).
        tokens: label ids without blanks.
    """
    if len(tokens) == 0:
        return []
    path, _ = forced_path(log_probs, tokens, blank)
    return path_spans(path.tolist(), blank)

"""Video metrics: label error rate (words = labels) and frame accuracy from CTC forced alignment.

CTC output frames are spiky: a label occupies a frame or two and blanks fill the rest. To score
frames, the forced alignment of a label sequence (``crnn.ctc.align``) is turned into a segmentation:
each output frame belongs to the nearest aligned label (boundaries halfway between neighbouring
spikes), and each input frame takes the label of the output frame it feeds (``frame // stride``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from crnn.ctc import align
from crnn.evaluation.metrics import error_rates


def label_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus label error rate: WER where every space-separated label is a word."""
    return error_rates(references, hypotheses)["wer"]


def segment_from_spans(spans: Sequence[tuple[int, int]], tokens: Sequence[int], n_frames: int) -> torch.Tensor:
    """Per-frame label ids (n_frames,) from per-token ``(first, last)`` frame spans.

    Frames inside a span take its token; frames between two spans are split at the midpoint; frames
    before the first (after the last) span take the first (last) token.
    """
    out = torch.empty(n_frames, dtype=torch.long)
    if not tokens:
        return out.fill_(0)
    starts = [0] + [(spans[i][1] + spans[i + 1][0]) // 2 + 1 for i in range(len(spans) - 1)]
    ends = starts[1:] + [n_frames]
    for tok, s, e in zip(tokens, starts, ends):
        out[s:e] = tok
    return out


def frame_predictions(log_probs: torch.Tensor, tokens: Sequence[int], n_input: int, stride: int,
                      blank: int = 0) -> torch.Tensor:
    """Per-input-frame label ids (n_input,) from one utterance's forced alignment.

    Args:
        log_probs: (T', V) log-posteriors of one utterance (valid frames only).
        tokens: the label sequence to align (the reference for alignment accuracy, or a hypothesis).
        n_input: input frames of the utterance.
        stride: input frames per output frame (the frontend's ``time_stride``).
    """
    spans = align(log_probs, list(tokens), blank=blank)
    seg = segment_from_spans(spans, list(tokens), log_probs.size(0))  # (T',)
    idx = torch.clamp(torch.arange(n_input) // stride, max=max(log_probs.size(0) - 1, 0))
    return seg[idx]


@dataclass
class FrameAccuracy:
    """Accumulates frame accuracy over a corpus; input frames labelled -1 (unknown) are ignored."""

    correct: int = 0
    total: int = 0

    def update(self, predicted: torch.Tensor, frame_labels: torch.Tensor) -> None:
        """predicted, frame_labels: (T,) label ids of the same input frames."""
        n = min(len(predicted), len(frame_labels))
        known = frame_labels[:n] >= 0
        self.correct += int((predicted[:n][known] == frame_labels[:n][known]).sum())
        self.total += int(known.sum())

    @property
    def accuracy(self) -> float:
        return self.correct / max(self.total, 1)


def frame_accuracy(
    log_probs: torch.Tensor, lengths: torch.Tensor, tokens: Sequence[Sequence[int]],
    frame_labels: Sequence[torch.Tensor], stride: int, blank: int = 0,
) -> FrameAccuracy:
    """Frame accuracy of a batch from the forced alignment of ``tokens``.

    Args:
        log_probs: (B, T', V) model outputs.
        lengths: (B,) valid output frames.
        tokens: per item, the label ids to align (references: alignment accuracy; hypotheses:
            segmentation accuracy).
        frame_labels: per item, ground-truth ids (T_i,) of its input frames (-1 = unknown).
        stride: input frames per output frame (``model.frontend.time_stride``).

    Returns:
        A FrameAccuracy (``.accuracy``, ``.correct``, ``.total``); items whose labels cannot be
        aligned (too few frames) count every frame as wrong.
    """
    acc = FrameAccuracy()
    for b, (toks, gt) in enumerate(zip(tokens, frame_labels, strict=True)):
        n = int(lengths[b])
        try:
            pred = frame_predictions(log_probs[b, :n], toks, len(gt), stride, blank)
        except ValueError:  # InfeasibleLabelError: no alignment exists
            pred = torch.full((len(gt),), -2, dtype=torch.long)
        acc.update(pred, gt)
    return acc

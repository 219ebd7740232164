"""Endpointing: where a live stream's utterance ends (sherpa-onnx style rules, judged on CTC output).

Two rules end an utterance:

1. **trailing silence**: ``trailing_silence`` seconds of silence after speech;
2. **max utterance**: the utterance has lasted ``max_utterance`` seconds (cut where it stands).

"Silence" is judged from the streaming recognizer's own output, not from the signal's energy: an output
frame is silent when its best token is the CTC blank (id 0), speech when it is any other token. A CTC model
emits a token as a spike of one or a few frames and blank elsewhere, so the blank run after the last
spike measures the time since the last token was heard; noise the model ignores counts as silence, and a
quiet token the model hears counts as speech. An utterance in which nothing was heard for
``trailing_silence`` seconds ends too, without a result (``"nothing"``): its frames are dropped, so an
idle stream holds no growing history.

Example::

    ep = Endpointer(EndpointRules(trailing_silence=0.8), frame_shift=0.04)
    reason = ep.update(log_probs)      # (N, V) new output frames of the current utterance
    if reason:                         # "silence", "max_utterance" or "nothing"
        ...                            # finish the utterance, then ep.reset()
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

BLANK = 0


@dataclass(frozen=True)
class EndpointRules:
    """When an utterance of a stream ends."""

    trailing_silence: float = 1.0  # rule 1: seconds of blank output after the last token end an utterance
    max_utterance: float = 20.0  # rule 2: seconds after which an utterance ends wherever it stands

    def __post_init__(self):
        for name in ("trailing_silence", "max_utterance"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 < value < float("inf")):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")


def endpoint(rules: EndpointRules, frames: int, last_speech: int | None, frame_shift: float) -> str | None:
    """Which rule ends an utterance now, or None.

    Args:
        rules: the thresholds.
        frames: output frames of the utterance so far.
        last_speech: frames up to and including the last non-blank one (None: nothing heard yet).
        frame_shift: seconds per output frame.

    Returns:
        ``"silence"`` (rule 1), ``"max_utterance"`` (rule 2), ``"nothing"`` (silence only, for
        ``trailing_silence``) or None.
    """
    eps = 1e-9  # frames * shift in floating point: 25 x 0.04 must reach 1.0
    if frames * frame_shift >= rules.max_utterance - eps:
        return "max_utterance"
    silent = frames - (last_speech or 0)
    if silent * frame_shift >= rules.trailing_silence - eps:
        return "nothing" if last_speech is None else "silence"
    return None


class Endpointer:
    """Applies :func:`endpoint` to one utterance's output frames as they arrive.

    Args:
        rules: the thresholds.
        frame_shift: seconds per output frame of the model.
    """

    def __init__(self, rules: EndpointRules, frame_shift: float):
        self.rules, self.frame_shift = rules, frame_shift
        self.reset()

    def reset(self) -> None:
        """A new utterance starts."""
        self.frames = 0
        self.last_speech: int | None = None

    def update(self, log_probs: torch.Tensor) -> str | None:
        """New output frames (N, V) of the utterance; returns the rule that ends it, or None."""
        if log_probs.numel():
            speech = torch.nonzero(log_probs.argmax(-1) != BLANK).flatten()  # (K,) frame indices
            if speech.numel():
                self.last_speech = self.frames + int(speech[-1]) + 1
            self.frames += log_probs.size(0)
        return endpoint(self.rules, self.frames, self.last_speech, self.frame_shift)

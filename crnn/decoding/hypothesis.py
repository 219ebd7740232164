"""The one result type every decoder returns."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Hypothesis:
    """A decoded labeling of one utterance.

    Attributes:
        tokens: token ids, blanks and repeats removed.
        score: natural-log probability of the labeling under the model (plus LM terms when used).
        spans: per token, the ``(first_frame, last_frame)`` it was emitted on (inclusive, in encoder
            frames; multiply by the model's frame stride in seconds for times).
        confidence: in [0, 1]; for greedy, the mean of per-token max posteriors.
        token_confidences: per token, in [0, 1].
        text: filled by the caller that knows the tokenizer (``tokenizer.decode(tokens)``).
        words: optional word-level items ``{"word", "start", "end", "confidence"}`` (seconds).
    """

    tokens: list[int]
    score: float
    spans: list[tuple[int, int]] = field(default_factory=list)
    confidence: float = 0.0
    token_confidences: list[float] = field(default_factory=list)
    text: str = ""
    words: list[dict] = field(default_factory=list)

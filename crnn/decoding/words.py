"""Word (or label) items with times and confidences from a decoded hypothesis, and CTM lines."""
from __future__ import annotations

from crnn.tokenizer import Tokenizer
from crnn.decoding.hypothesis import Hypothesis


def word_token_groups(hyp: Hypothesis, tokenizer: Tokenizer) -> list[list[int]]:
    """Token indices of each word of ``hyp``: characters between spaces, subword pieces from one ``▁``
    piece to the next, or one label per word."""
    sep, starts = tokenizer.word_separator, tokenizer.word_starts
    groups: list[list[int]] = [[]]
    for i, t in enumerate(hyp.tokens):
        if tokenizer.kind == "label":
            groups.append([i])
        elif t == sep:
            groups.append([])
        elif t in starts:
            groups.append([i])
        else:
            groups[-1].append(i)
    return [g for g in groups if g]


def hypothesis_words(hyp: Hypothesis, tokenizer: Tokenizer, frame_shift: float | None) -> list[dict]:
    """Group a hypothesis' tokens into words: characters between spaces, subword pieces from one
    ``▁`` piece to the next, or one label per word.

    Returns:
        ``[{"word", "start", "end", "confidence"}, ...]``: times in seconds when ``frame_shift`` is
        known (``end`` is the end of the word's last frame), else in frames; confidence is the
        mean of the word's token confidences.
    """
    scale = frame_shift if frame_shift is not None else 1.0
    confs = hyp.token_confidences or [hyp.confidence] * len(hyp.tokens)
    spans = hyp.spans or [(0, 0)] * len(hyp.tokens)
    words = []
    for g in word_token_groups(hyp, tokenizer):
        start, end = spans[g[0]][0], spans[g[-1]][1] + 1
        words.append(
            {
                "word": tokenizer.decode([hyp.tokens[i] for i in g]),
                "start": round(start * scale, 4) if frame_shift is not None else start,
                "end": round(end * scale, 4) if frame_shift is not None else end,
                "confidence": round(sum(confs[i] for i in g) / len(g), 4),
            }
        )
    return words

"""Error rates through jiwer (a well-kept edit-distance library)."""
from __future__ import annotations

from typing import Sequence

import jiwer


def error_counts(reference: str, hypothesis: str) -> dict[str, int]:
    """Character and word edit counts of one pair: {char_errors, chars, word_errors, words}."""
    ref_words = reference.split()
    out = {"chars": len(reference), "words": len(ref_words)}
    if reference:
        c = jiwer.process_characters(reference, hypothesis)
        out["char_errors"] = c.substitutions + c.deletions + c.insertions
    else:
        out["char_errors"] = len(hypothesis)
    if ref_words:
        w = jiwer.process_words(reference, hypothesis if hypothesis.strip() else "")
        out["word_errors"] = w.substitutions + w.deletions + w.insertions
    else:
        out["word_errors"] = len(hypothesis.split())
    return out


def error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> dict[str, float]:
    """Corpus CER and WER (total edits / total reference length)."""
    totals = {"chars": 0, "words": 0, "char_errors": 0, "word_errors": 0}
    for r, h in zip(references, hypotheses, strict=True):
        for k, v in error_counts(r, h).items():
            totals[k] += v
    return {
        "cer": totals["char_errors"] / max(totals["chars"], 1),
        "wer": totals["word_errors"] / max(totals["words"], 1),
    }

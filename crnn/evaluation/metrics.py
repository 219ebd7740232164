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


class EmptyMetricError(ValueError):
    """An error rate was asked for over nothing: no item, or references with no characters."""


def rates(totals: dict[str, int], what: str = "error rate") -> dict[str, float]:
    """CER and WER from summed counts; over zero reference characters it is an error, not 0 %."""
    if totals["chars"] <= 0 or totals["words"] <= 0:
        raise EmptyMetricError(f"{what}: no reference {'characters' if totals['chars'] <= 0 else 'words'} to score")
    return {"cer": totals["char_errors"] / totals["chars"], "wer": totals["word_errors"] / totals["words"]}


def error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> dict[str, float]:
    """Corpus CER and WER (total edits / total reference length); raises EmptyMetricError over nothing."""
    totals = {"chars": 0, "words": 0, "char_errors": 0, "word_errors": 0}
    for r, h in zip(references, hypotheses, strict=True):
        for k, v in error_counts(r, h).items():
            totals[k] += v
    return rates(totals)

"""Building n-gram LMs from text (``crnn lm build``): units from text lines, interpolated modified
Kneser-Ney estimation, pure Python. The result is an ``NGramLM`` that ``write_arpa`` stores."""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Iterable, Sequence

from crnn.decoding.lm import ARPA_ZERO, BOS, EOS, SPACE, UNK, NGramLM

def sentences_from_text(lines: Iterable[str], unit: str = "word") -> list[list[str]]:
    """Split text lines into units: words (whitespace-separated) or characters (space -> ``<space>``)."""
    out = []
    for line in lines:
        words = line.split()
        if not words:
            continue
        if unit == "word":
            out.append(words)
        elif unit == "char":
            out.append([SPACE if c == " " else c for c in " ".join(words)])
        else:
            raise ValueError(f"unit must be 'word' or 'char', got {unit!r}")
    return out


def _discounts(adjusted: dict[tuple[str, ...], int]) -> tuple[float, float, float]:
    """Modified Kneser-Ney discounts D1, D2, D3+ from counts-of-counts (Chen & Goodman 1998)."""
    n = [0, 0, 0, 0, 0]
    for c in adjusted.values():
        if c <= 4:
            n[c] += 1
    fallback = (0.5, 1.0, 1.5)
    if not (n[1] and n[2] and n[3] and n[4]):
        return fallback  # too little data to estimate: mild fixed discounts
    y = n[1] / (n[1] + 2 * n[2])
    d = (1 - 2 * y * n[2] / n[1], 2 - 3 * y * n[3] / n[2], 3 - 4 * y * n[4] / n[3])
    return tuple(di if 0 < di < i + 1 else fi for i, (di, fi) in enumerate(zip(d, fallback)))  # type: ignore[return-value]


def build_kneser_ney(sentences: Iterable[Sequence[str]], order: int = 3) -> NGramLM:
    """Interpolated modified Kneser-Ney n-gram model (Chen & Goodman 1998), written as backoff.

    The highest order uses raw counts; lower orders use continuation counts (the number of distinct
    words seen before the n-gram), except n-grams starting with ``<s>``, which keep raw counts.
    Unigrams interpolate with the uniform distribution over the vocabulary plus ``<unk>``, so every
    word has a non-zero probability. For a seen n-gram ``hw`` the stored probability is the
    interpolated ``p(w|h)``; the backoff weight of ``h`` is its interpolation weight ``gamma(h)``,
    which makes backoff lookups of unseen words equal to the interpolated model.
    """
    if order < 1:
        raise ValueError(f"order must be >= 1, got {order}")
    raw: list[dict[tuple[str, ...], int]] = [defaultdict(int) for _ in range(order + 1)]
    for sent in sentences:
        toks = [BOS, *sent, EOS]
        for n in range(1, order + 1):
            for i in range(len(toks) - n + 1):
                gram = tuple(toks[i : i + n])
                if gram == (BOS,):
                    continue
                raw[n][gram] += 1
    if not raw[1]:
        raise ValueError("no text to build a language model from")
    # Adjusted counts: raw at the top order and for <s>-initial n-grams; continuation counts below.
    adjusted: list[dict[tuple[str, ...], int]] = [dict() for _ in range(order + 1)]
    adjusted[order] = dict(raw[order])
    for n in range(order - 1, 0, -1):
        left: dict[tuple[str, ...], int] = defaultdict(int)
        for g in raw[n + 1]:
            left[g[1:]] += 1
        adjusted[n] = {g: (c if g[0] == BOS else left[g]) for g, c in raw[n].items()}
    vocab = sorted({g[0] for g in raw[1]} | {UNK})
    lm = NGramLM(order=order)
    lower: dict[tuple[str, ...], float] = {}  # interpolated p of the previous order (natural)
    for n in range(1, order + 1):
        d = _discounts(adjusted[n])
        totals: dict[tuple[str, ...], int] = defaultdict(int)
        kinds: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0, 0, 0])
        for g, c in adjusted[n].items():
            totals[g[:-1]] += c
            kinds[g[:-1]][min(c, 3) - 1] += 1
        gamma = {h: (d[0] * k[0] + d[1] * k[1] + d[2] * k[2]) / totals[h] for h, k in kinds.items()}
        current: dict[tuple[str, ...], float] = {}
        grams = list(adjusted[n].items())
        if n == 1:  # every vocabulary word gets a unigram, seen or not
            seen = adjusted[1]
            grams = [((w,), seen.get((w,), 0)) for w in vocab if w != BOS]
        for g, c in grams:
            h = g[:-1]
            disc = max(c - d[min(c, 3) - 1], 0.0) if c else 0.0
            back = 1.0 / len(vocab) if n == 1 else _backoff_prob(lower, lm, g[1:])
            p = disc / totals[h] + gamma[h] * back
            current[g] = p
            lm.probs[g] = math.log10(p)
        if n == 1:
            lm.probs[(BOS,)] = ARPA_ZERO
        for h, gm in gamma.items():
            if h:
                lm.bows[h] = math.log10(gm)
        lower = current
    # Keep file order: unigrams with <s> first for readability.
    lm.probs = dict(sorted(lm.probs.items(), key=lambda kv: (len(kv[0]), kv[0] != (BOS,), kv[0])))
    return lm


def _backoff_prob(lower: dict[tuple[str, ...], float], lm: NGramLM, gram: tuple[str, ...]) -> float:
    """p(gram[-1] | gram[:-1]) of the lower-order model, backing off where the n-gram is unseen."""
    p = lower.get(gram)
    if p is not None:
        return p
    return 10.0 ** lm.log10_prob(gram[:-1], gram[-1])


# -- tensor form for batched search -----------------------------------------------------------

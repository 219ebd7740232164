"""Real running text for the built-in text lines: a plain-text file of sentences, one per line.

Sentences are brought to the lines' character set (typographic quotes and dashes to their ASCII forms;
a sentence with any other character left out), and split by a stable hash of the sentence: one in five
is kept for the ``test`` split, so held-out lines read text that training never drew. A line takes a
word-aligned window of a sentence near the length it asks for.
"""
from __future__ import annotations

import random
import zlib
from functools import lru_cache
from pathlib import Path

# typographic forms a corpus may hold, written as the ASCII the lines' character set has
_ASCII_FORMS = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-",
                              "\u2014": "-", "\u2026": "...", "\u00a0": " ", "`": "'"})
HELD_OUT_ONE_IN = 5


def is_held_out(sentence: str) -> bool:
    """Whether a sentence belongs to the test split (a stable hash: the same on every machine)."""
    return zlib.crc32(sentence.encode("utf-8")) % HELD_OUT_ONE_IN == 0


@lru_cache(maxsize=4)
def load_corpus(path: str, charset: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(train, test) sentences of the file at ``path`` that ``charset`` can write.

    Raises:
        FileNotFoundError: the file is missing or holds no usable sentence.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{path}: text corpus not found")
    allowed = set(charset)
    train: list[str] = []
    test: list[str] = []
    for raw in p.read_text(encoding="utf-8", errors="replace").splitlines():
        s = " ".join(raw.translate(_ASCII_FORMS).split())
        if len(s) < 2 or not set(s) <= allowed:
            continue
        (test if is_held_out(s) else train).append(s)
    if not train or not test:
        raise FileNotFoundError(f"{path}: no usable sentence for both splits (one per line, "
                                f"in the characters {''.join(sorted(allowed)).strip()!r})")
    return tuple(train), tuple(test)


def corpus_window(rng: random.Random, sentences: tuple[str, ...], target_chars: int) -> str:
    """A word-aligned stretch of a random sentence, about ``target_chars`` long (a whole short sentence
    when it is shorter)."""
    words = rng.choice(sentences).split()
    start = rng.randrange(len(words))
    out = [words[start]]
    for w in words[start + 1:]:
        if len(" ".join(out)) + 1 + len(w) > target_chars:
            break
        out.append(w)
    return " ".join(out)

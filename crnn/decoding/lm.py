"""N-gram language models for the search: the ARPA format (``NGramLM``, reading and writing) and a
tensor form of the model that scores a whole beam at once (CPU or CUDA). ``crnn.decoding.lm_build``
builds models from text.

Units: a *word* LM scores whole words (at word boundaries); a *character* LM is an ARPA file whose
"words" are single characters, with the space written as ``<space>``. Label vocabularies use a
word LM whose words are the labels.
"""
from __future__ import annotations

import gzip
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence, TextIO

import torch

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
SPACE = "<space>"  # the space character as a unit of a character LM
LN10 = math.log(10.0)
# ARPA's convention for "impossible": log10 p = -99.
ARPA_ZERO = -99.0


class ArpaFormatError(ValueError):
    """An ARPA file is malformed."""


@dataclass
class NGramLM:
    """An n-gram backoff model held as dictionaries (log10 values, as in ARPA).

    Attributes:
        order: the highest n-gram order.
        probs: n-gram tuple -> log10 p(last word | preceding words).
        bows: n-gram tuple -> log10 backoff weight (missing means 0).
    """

    order: int
    probs: dict[tuple[str, ...], float] = field(default_factory=dict)
    bows: dict[tuple[str, ...], float] = field(default_factory=dict)

    @property
    def vocab(self) -> list[str]:
        """Unigram words, in file order."""
        return [g[0] for g in self.probs if len(g) == 1]

    def log10_prob(self, context: Sequence[str], word: str) -> float:
        """log10 p(word | context) by standard backoff; unknown words score as ``<unk>``."""
        if (word,) not in self.probs:
            word = UNK
            if (word,) not in self.probs:
                return ARPA_ZERO
        context = tuple(context)[-(self.order - 1):] if self.order > 1 else ()
        backoff = 0.0
        while True:
            p = self.probs.get(context + (word,))
            if p is not None:
                return p + backoff
            backoff += self.bows.get(context, 0.0)
            context = context[1:]

    def sentence_log10_prob(self, words: Sequence[str]) -> float:
        """log10 p of a whole sentence, ``</s>`` included."""
        context: list[str] = [BOS]
        total = 0.0
        for w in list(words) + [EOS]:
            total += self.log10_prob(context, w)
            context.append(w)
        return total


# -- ARPA I/O --------------------------------------------------------------------------------
def _utf8_lines(text: TextIO, path: Path) -> Iterator[str]:
    try:
        yield from text
    except UnicodeDecodeError:
        raise ArpaFormatError(f"{path}: not UTF-8 text") from None
    except (EOFError, OSError) as e:  # a torn or foreign .gz file
        raise ArpaFormatError(f"{path}: unreadable compressed language model ({e})") from None


def read_arpa(path: str | Path) -> NGramLM:
    """Read an ARPA file, plain or gzip-compressed (``.gz``). Raises ArpaFormatError naming the file and
    line on malformed input."""
    path = Path(path)
    try:
        text = gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8")
    except OSError as e:
        raise ArpaFormatError(f"{path}: cannot read language model ({e.strerror})") from None
    counts: dict[int, int] = {}
    lm = NGramLM(order=0)
    section = None  # None before \data\, 0 inside \data\, n inside \n-grams:
    with text:
        for lineno, raw in enumerate(_utf8_lines(text, path), 1):
            line = raw.strip()
            if not line:
                continue
            if line == "\\data\\":
                section = 0
                continue
            if line == "\\end\\":
                break
            m = re.fullmatch(r"\\(\d+)-grams:", line)
            if m:
                section = int(m.group(1))
                if section not in counts:
                    raise ArpaFormatError(f"{path}:{lineno}: section {line} not announced in \\data\\")
                continue
            if section is None:
                continue  # header text before \data\ is allowed
            if section == 0:
                m = re.fullmatch(r"ngram\s+(\d+)\s*=\s*(\d+)", line)
                if not m:
                    raise ArpaFormatError(f"{path}:{lineno}: expected 'ngram N=count', got {line!r}")
                counts[int(m.group(1))] = int(m.group(2))
                continue
            parts = line.split()
            n = section
            if len(parts) not in (n + 1, n + 2):
                raise ArpaFormatError(f"{path}:{lineno}: a {n}-gram line needs {n + 1} or {n + 2} fields")
            try:
                logp = float(parts[0])
                bow = float(parts[n + 1]) if len(parts) == n + 2 else None
            except ValueError:
                raise ArpaFormatError(f"{path}:{lineno}: bad number in {line!r}") from None
            gram = tuple(parts[1 : n + 1])
            lm.probs[gram] = logp
            if bow is not None and bow != 0.0:
                lm.bows[gram] = bow
    if not counts:
        raise ArpaFormatError(f"{path}: no \\data\\ section; not an ARPA file")
    lm.order = max(counts)
    found = defaultdict(int)
    for g in lm.probs:
        found[len(g)] += 1
    for n, c in counts.items():
        if found[n] != c:
            raise ArpaFormatError(f"{path}: header announces {c} {n}-grams, file holds {found[n]}")
    return lm


def write_arpa(lm: NGramLM, out: TextIO) -> None:
    """Write ``lm`` in ARPA format (n-grams grouped by order, in insertion order)."""
    by_order: dict[int, list[tuple[str, ...]]] = defaultdict(list)
    for g in lm.probs:
        by_order[len(g)].append(g)
    out.write("\\data\\\n")
    for n in range(1, lm.order + 1):
        out.write(f"ngram {n}={len(by_order[n])}\n")
    for n in range(1, lm.order + 1):
        out.write(f"\n\\{n}-grams:\n")
        for g in by_order[n]:
            line = f"{lm.probs[g]:.6f}\t{' '.join(g)}"
            if n < lm.order and g in lm.bows:
                line += f"\t{lm.bows[g]:.6f}"
            out.write(line + "\n")
    out.write("\n\\end\\\n")


class TensorLM:
    """An NGramLM compiled to sorted key tables, scoring many (state, word) pairs at once.

    A *state* is the id of the longest n-gram context the model holds (0 = empty context). Every
    n-gram ``g`` has an id ``e`` with key ``id(g[:-1]) * W + word(g[-1])``; a lookup walks at most
    ``order`` backoff levels with ``searchsorted`` on the sorted keys, all pairs in parallel.
    Probabilities are natural logs.

    Args:
        lm: the model.
    """

    def __init__(self, lm: NGramLM):
        self.order = lm.order
        self.words = lm.vocab
        self.word_id = {w: i for i, w in enumerate(self.words)}
        if UNK not in self.word_id:
            # A model without <unk> cannot score unknown words: give them ARPA's zero.
            self.word_id[UNK] = len(self.words)
            self.words = self.words + [UNK]
            lm = NGramLM(lm.order, dict(lm.probs), dict(lm.bows))
            lm.probs[(UNK,)] = ARPA_ZERO
        W = len(self.words)
        grams = list(lm.probs)
        gid = {g: i + 1 for i, g in enumerate(grams)}  # 0 is the empty context
        gid[()] = 0
        E = len(grams) + 1
        # Python lists first, one tensor each at the end: element-wise tensor writes cost microseconds
        # apiece, minutes for a few million n-grams.
        keys_l: list[int] = []
        logp_l, bow_l, suffix_l, nxt_l = [0.0], [0.0], [0], [0]  # entry 0: the empty context
        word_id, probs, bows, order = self.word_id, lm.probs, lm.bows, self.order
        for e, g in enumerate(grams, start=1):
            ctx = g[:-1]
            c = gid.get(ctx)
            if c is None:
                raise ArpaFormatError(f"n-gram {' '.join(g)!r} has no entry for its context {' '.join(ctx)!r}")
            keys_l.append(c * W + word_id[g[-1]])
            logp_l.append(max(probs[g], ARPA_ZERO) * LN10)
            bow_l.append(bows.get(g, 0.0) * LN10)
            back = gid[self._longest_held(g[1:], gid)]  # backoff context: the longest held proper suffix
            suffix_l.append(back)
            nxt_l.append(e if len(g) < order else back)  # the state after this n-gram was scored
        keys = torch.tensor(keys_l, dtype=torch.int64)
        logp, bow = torch.tensor(logp_l), torch.tensor(bow_l)
        suffix, nxt = torch.tensor(suffix_l, dtype=torch.int64), torch.tensor(nxt_l, dtype=torch.int64)
        order_idx = torch.argsort(keys)
        self.keys = keys[order_idx]
        self.key_entry = order_idx + 1
        self.logp, self.bow, self.suffix, self.next_state = logp, bow, suffix, nxt
        # Per context, its whole backoff chain (itself, its suffix, ..., the empty context) and the
        # backoff weight paid to reach each level, so a lookup probes every level at once.
        chain = torch.zeros(E, self.order, dtype=torch.int64)
        paid = torch.zeros(E, self.order)
        chain[:, 0] = torch.arange(E)
        for lvl in range(1, self.order):
            chain[:, lvl] = suffix[chain[:, lvl - 1]]
            paid[:, lvl] = paid[:, lvl - 1] + bow[chain[:, lvl - 1]]
        self.chain, self.paid = chain, paid
        self.num_words = W
        self.unk = self.word_id[UNK]
        self.bos_state = gid.get((BOS,), 0) if self.order > 1 else 0
        self.eos = self.word_id.get(EOS, self.unk)
        self._device_cache: dict[torch.device, tuple[torch.Tensor, ...]] = {}

    @staticmethod
    def _longest_held(words: tuple[str, ...], gid: dict) -> tuple[str, ...]:
        while words not in gid:
            words = words[1:]
        return words

    def _tables(self, device: torch.device) -> tuple[torch.Tensor, ...]:
        if device not in self._device_cache:
            self._device_cache[device] = tuple(
                t.to(device) for t in (self.keys, self.key_entry, self.logp, self.next_state, self.chain, self.paid)
            )
        return self._device_cache[device]

    def score(self, state: torch.Tensor, word: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Score ``word`` after ``state``, elementwise.

        Args:
            state: (...) int64 LM states.
            word: (...) int64 word ids (``unk`` for unknown words).

        Returns:
            ``(log_prob, next_state)``, both shaped like ``state``: natural-log p(word | state)
            and the state after it.
        """
        keys, key_entry, logp, next_state, chain, paid = self._tables(state.device)
        ctx = lookup(chain, state)  # (..., order) contexts from longest to empty
        key = ctx * self.num_words + word[..., None]
        pos = torch.searchsorted(keys, key).clamp_max(keys.numel() - 1)
        hit = lookup(keys, pos) == key  # the empty context always hits (every word has a unigram)
        level = hit.to(torch.uint8).argmax(-1, keepdim=True)  # first (longest) hit
        entry = lookup(key_entry, pos.gather(-1, level).squeeze(-1))
        return lookup(paid, state).gather(-1, level).squeeze(-1) + lookup(logp, entry), lookup(next_state, entry)


def lookup(table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``table[idx]`` for a table indexed along dim 0: idx.shape + table.shape[1:].

    ``index_select`` on the flattened index is several times faster than advanced indexing for the
    small batched lookups of the search.
    """
    return table.index_select(0, idx.reshape(-1)).view(*idx.shape, *table.shape[1:])

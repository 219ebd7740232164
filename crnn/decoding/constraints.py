"""Search constraints and biasing over token sequences, as dense tables a batched search gathers from:
a lexicon trie (only listed words), a hotword automaton (bonus for listed words/phrases) and a
label grammar (allowed successors).
"""
from __future__ import annotations

import sys
from collections import deque
from pathlib import Path
from typing import Sequence

import torch

from crnn.tokenizer import Tokenizer, UnknownSymbolError


def read_word_list(path: str | Path) -> list[str]:
    """One entry per line (first whitespace field for a lexicon; blank lines and ``#`` comments skipped)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ValueError(f"{path}: cannot read word list ({e.strerror})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def _spellings(tokenizer: Tokenizer, word: str, source: str) -> list[list[int]]:
    try:
        return tokenizer.spellings(word)
    except UnknownSymbolError as e:
        raise ValueError(f"{source}: entry {word!r}: {e}") from None


def trie_step(edge_keys: torch.Tensor, edge_child: torch.Tensor, vocab_size: int, node: torch.Tensor,
              token: torch.Tensor) -> torch.Tensor:
    """The trie node after ``token`` from ``node`` (elementwise, any shape), or -1 where there is no edge.

    Edges are stored sparsely, sorted by ``node * vocab_size + token``: a lexicon of 30,000 words
    spelled in 500 subword units has a few hundred thousand nodes, whose dense ``(nodes, V)`` table
    would take gigabytes."""
    if edge_keys.numel() == 0:
        return torch.full_like(node, -1)
    key = node * vocab_size + token
    pos = torch.searchsorted(edge_keys, key).clamp_max(edge_keys.numel() - 1)
    flat = pos.reshape(-1)  # index_select: much faster than advanced indexing for these small lookups
    found = edge_keys.index_select(0, flat).view(pos.shape) == key
    return torch.where(found, edge_child.index_select(0, flat).view(pos.shape), -1)


class Lexicon:
    """A prefix trie over the token spellings of the allowed words.

    ``next_node(node, token)`` is the next node or -1 (edges sorted in ``edge_keys``/``edge_child``);
    ``word[node]`` is the index of the word ending at ``node`` or -1. Node 0 is the root. Words
    containing the separator token are rejected. With a subword vocabulary every word is entered under
    each of its spellings (``Tokenizer.spellings``: the canonical segmentation and sampled
    alternatives), each starting with a ``▁`` piece.

    Args:
        words: the allowed words.
        tokenizer: spells each word into token ids.
        source: name used in error messages (e.g. the lexicon file).
    """

    def __init__(self, words: Sequence[str], tokenizer: Tokenizer, source: str = "lexicon"):
        if tokenizer.units == "word":
            raise ValueError(f"{source}: the model's units are whole words, so every output is already a word of "
                             "its vocabulary; a lexicon adds nothing (use an LM or a grammar to weigh or restrict them)")
        if tokenizer.kind == "label":
            raise ValueError(f"{source}: a lexicon needs a character or subword vocabulary; use a grammar for labels")
        sep, starts = tokenizer.word_separator, tokenizer.word_starts
        self.words: list[str] = []
        children: list[dict[int, int]] = [{}]
        ends: list[int] = [-1]
        unique = list(dict.fromkeys(x.split()[0] for x in words))  # first field; duplicates dropped
        for w, found in zip(unique, tokenizer.spellings_many(unique)):
            if found is None:
                _spellings(tokenizer, w, source)  # raises, naming the entry and the symbol
            spellings = [ids for ids in found
                         if ids and (sep is None or sep not in ids)
                         and (not starts or (ids[0] in starts and not starts.intersection(ids[1:])))]
            if not spellings:
                continue
            for ids in spellings:
                node = 0
                for t in ids:
                    nxt = children[node].get(t)
                    if nxt is None:
                        nxt = len(children)
                        children[node][t] = nxt
                        children.append({})
                        ends.append(-1)
                    node = nxt
                ends[node] = len(self.words)
            self.words.append(w)
        if not self.words:
            raise ValueError(f"{source}: no usable words (empty, or none spellable in the vocabulary)")
        self.vocab_size = V = len(tokenizer)
        edges = sorted((n * V + t, m) for n, ch in enumerate(children) for t, m in ch.items())
        self.edge_keys = torch.tensor([k for k, _ in edges], dtype=torch.int64)  # (E,) node * V + token
        self.edge_child = torch.tensor([m for _, m in edges], dtype=torch.int64)  # (E,)
        self.root_child = torch.full((V,), -1, dtype=torch.int64)  # (V,) where each token leads from the root
        for t, m in children[0].items():
            self.root_child[t] = m
        self.word = torch.tensor(ends, dtype=torch.int64)

    def next_node(self, node: torch.Tensor | int, token: torch.Tensor | int) -> torch.Tensor:
        """The node after ``token`` from ``node`` (elementwise), or -1."""
        node, token = torch.as_tensor(node, dtype=torch.int64), torch.as_tensor(token, dtype=torch.int64)
        return trie_step(self.edge_keys, self.edge_child, self.vocab_size, node, token)

    @classmethod
    def from_file(cls, path: str | Path, tokenizer: Tokenizer) -> "Lexicon":
        return cls(read_word_list(path), tokenizer, source=str(path))

    @property
    def num_nodes(self) -> int:
        return self.word.numel()


class Hotwords:
    """An Aho-Corasick automaton over hotword token sequences for score biasing.

    A hypothesis in automaton state ``s`` holds a running bonus ``weight * depth[s]`` (tokens matched
    so far inside a hotword). Reaching the end of a hotword banks the bonus and returns to the root;
    a partial match that breaks off loses its bonus again, and so does one left unfinished at the end
    of the utterance — only completed hotwords are rewarded in the end.

    Args:
        phrases: words or phrases (for label vocabularies: space-separated labels).
        tokenizer: spells each phrase into token ids.
        weight: bonus per matched token, natural-log units. (Default: 1.5)
    """

    def __init__(self, phrases: Sequence[str], tokenizer: Tokenizer, weight: float = 1.5, source: str = "hotwords"):
        V = len(tokenizer)
        children: list[dict[int, int]] = [{}]
        depth = [0]
        end = [False]
        self.dropped: list[str] = []  # phrases with symbols outside the vocabulary: warned about, not fatal
        for p in phrases:
            try:
                ids = tokenizer.encode(p)
            except UnknownSymbolError as e:
                print(f"warning: {source}: hotword {p!r} dropped: {e}", file=sys.stderr)
                self.dropped.append(p)
                continue
            if not ids:
                continue
            node = 0
            for t in ids:
                if t not in children[node]:
                    children[node][t] = len(children)
                    children.append({})
                    depth.append(depth[node] + 1)
                    end.append(False)
                node = children[node][t]
            end[node] = True
        N = len(children)
        # Dense goto function with failure links folded in (breadth-first order).
        goto = torch.zeros((N, V), dtype=torch.int64)
        fail = [0] * N
        queue = deque()
        for t, m in children[0].items():
            goto[0, t] = m
            queue.append(m)
        while queue:
            n = queue.popleft()
            goto[n] = goto[fail[n]]
            for t, m in children[n].items():
                fail[m] = int(goto[fail[n], t])
                goto[n, t] = m
                queue.append(m)
        is_end = torch.tensor(end)
        # Completing a hotword banks its bonus and restarts matching from the root.
        self.goto = torch.where(is_end[goto], torch.zeros_like(goto), goto)
        depth_t = torch.tensor(depth, dtype=torch.float32)
        # Bonus of moving s -> goto[s, t]: potential difference; a completion keeps its full depth.
        self.bonus = weight * (depth_t[goto] - depth_t[:, None])
        self.potential = weight * depth_t  # (N,) removed at the end of the utterance
        self.weight = weight

    @classmethod
    def parse(cls, spec: str | Sequence[str], tokenizer: Tokenizer, weight: float) -> "Hotwords":
        """From a comma-separated string, a file of one phrase per line, or a sequence of phrases."""
        if isinstance(spec, str):
            if Path(spec).is_file():
                return cls(read_word_list(spec), tokenizer, weight, source=spec)
            spec = [p.strip() for p in spec.split(",")]
        phrases = [tokenizer.normalize(p) if tokenizer.units != "label" else p for p in spec if p.strip()]
        return cls(phrases, tokenizer, weight)


class Grammar:
    """Allowed successors between tokens (labels): ``allowed[prev, next]``, row 0 is the start.

    File format, one rule per line: ``FROM TO1 TO2 ...`` — ``FROM`` may be followed only by the
    listed labels. ``<s>`` as ``FROM`` lists the allowed first labels and ``</s>`` as a ``TO`` marks
    an allowed last label. A label with no line may be followed by anything; if ``</s>`` never
    appears, any label may end the utterance.
    """

    def __init__(self, rules: dict[str, list[str]], tokenizer: Tokenizer, source: str = "grammar"):
        V = len(tokenizer)
        self.allowed = torch.ones((V, V), dtype=torch.bool)
        self.allowed[:, 0] = False  # blank is never a label
        any_end = not any("</s>" in succ for succ in rules.values())
        self.final = torch.full((V,), any_end, dtype=torch.bool)
        self.final[0] = True  # the empty labeling
        ids = {s: i + 1 for i, s in enumerate(tokenizer.symbols)}

        def lookup(sym: str) -> int:
            if sym not in ids:
                raise ValueError(f"{source}: label {sym!r} is not in the vocabulary")
            return ids[sym]

        for frm, succ in rules.items():
            row = 0 if frm == "<s>" else lookup(frm)
            self.allowed[row] = False
            for s in succ:
                if s == "</s>":
                    self.final[row] = True
                else:
                    self.allowed[row, lookup(s)] = True

    @classmethod
    def from_file(cls, path: str | Path, tokenizer: Tokenizer) -> "Grammar":
        rules: dict[str, list[str]] = {}
        for line in read_word_list(path):
            frm, *succ = line.split()
            rules.setdefault(frm, []).extend(succ)
        if not rules:
            raise ValueError(f"{path}: grammar has no rules")
        return cls(rules, tokenizer, source=str(path))

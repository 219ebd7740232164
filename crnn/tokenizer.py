"""Tokenizers: characters (speech, DTMF) or whole labels (actions, sign glosses). Blank is id 0."""
from __future__ import annotations

import re
import unicodedata
from typing import Iterable, Sequence

BLANK = "<blank>"


class UnknownSymbolError(ValueError):
    """A transcript holds a symbol the vocabulary does not know."""


class Tokenizer:
    """Maps transcripts to token ids and back. Id 0 is the CTC blank.

    Args:
        symbols: the vocabulary without the blank, in id order (id = index + 1).
        kind: ``"char"`` (a transcript is a string of characters, word separator ``" "``) or
            ``"label"`` (a transcript is a list of labels, or a string of space-separated labels).
        lowercase: lower-case text before encoding (char tokenizers). (Default: False)
        keep: for ``char``: a regex character class of characters to keep after normalisation;
            others are dropped. None keeps everything. (Default: None)
    """

    def __init__(self, symbols: Sequence[str], kind: str = "char", lowercase: bool = False, keep: str | None = None):
        if kind not in ("char", "label"):
            raise ValueError(f"tokenizer kind must be 'char' or 'label', got {kind!r}")
        if len(set(symbols)) != len(symbols):
            raise ValueError("tokenizer symbols must be unique")
        self.kind = kind
        self.symbols = list(symbols)
        self.lowercase = lowercase
        self.keep = keep
        self._ids = {s: i + 1 for i, s in enumerate(self.symbols)}
        self._drop = re.compile(f"[^{keep}]") if keep else None

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def build(
        cls, transcripts: Iterable[str | Sequence[str]], kind: str = "char", lowercase: bool = False,
        keep: str | None = None,
    ) -> "Tokenizer":
        """Build a vocabulary from training transcripts (sorted for a stable id order)."""
        probe = cls([], kind=kind, lowercase=lowercase, keep=keep)
        seen: set[str] = set()
        for t in transcripts:
            seen.update(probe.split(t))
        return cls(sorted(seen), kind=kind, lowercase=lowercase, keep=keep)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "symbols": self.symbols, "lowercase": self.lowercase, "keep": self.keep}

    @classmethod
    def from_dict(cls, d: dict) -> "Tokenizer":
        return cls(d["symbols"], kind=d.get("kind", "char"), lowercase=d.get("lowercase", False), keep=d.get("keep"))

    # -- text <-> ids -------------------------------------------------------------------------
    def normalize(self, text: str) -> str:
        """Unicode NFKC, optional lower-casing, whitespace collapsed, unwanted characters dropped."""
        text = unicodedata.normalize("NFKC", text)
        if self.lowercase:
            text = text.lower()
        if self._drop is not None:
            text = self._drop.sub("", text)
        return " ".join(text.split())

    def split(self, transcript: str | Sequence[str]) -> list[str]:
        """Transcript -> list of symbols (characters or labels)."""
        if self.kind == "label":
            return list(transcript.split()) if isinstance(transcript, str) else list(transcript)
        if not isinstance(transcript, str):
            transcript = " ".join(transcript)
        return list(self.normalize(transcript))

    def encode(self, transcript: str | Sequence[str]) -> list[int]:
        """Transcript -> token ids (no blanks). Raises UnknownSymbolError naming the symbol."""
        ids = []
        for s in self.split(transcript):
            try:
                ids.append(self._ids[s])
            except KeyError:
                raise UnknownSymbolError(f"symbol {s!r} is not in the vocabulary") from None
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Token ids -> text (labels joined by spaces; blanks ignored)."""
        syms = [self.symbols[i - 1] for i in ids if i != 0]
        return " ".join(syms) if self.kind == "label" else "".join(syms)

    def decode_labels(self, ids: Iterable[int]) -> list[str]:
        """Token ids -> list of symbols."""
        return [self.symbols[i - 1] for i in ids if i != 0]

    @property
    def word_separator(self) -> int | None:
        """Id of the space character for char tokenizers (None if absent or label kind)."""
        return self._ids.get(" ") if self.kind == "char" else None

    def __len__(self) -> int:
        """Vocabulary size including the blank."""
        return len(self.symbols) + 1

    def __repr__(self) -> str:
        return f"Tokenizer(kind={self.kind!r}, size={len(self)})"

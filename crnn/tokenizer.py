"""Tokenizers: characters (speech, DTMF), SentencePiece subwords, or whole labels (actions, sign
glosses), with the transcript policies they normalise text under. Blank is id 0.

Text policies (``text_norm``), stored in the checkpoint with the vocabulary:

* ``english``: NFKC, lower case, only ``a-z``, the apostrophe and the space kept
  ("Don't STOP, 2 go!" -> "don't stop go").
* ``basic``: NFKC, lower case, punctuation and symbols turned into spaces (an apostrophe inside a
  word is kept), letters, marks and digits of every script kept ("Grüße, Москва!" -> "grüße москва").
* ``none``: as written (whitespace collapsed only).

Scripts written without spaces (Chinese, Japanese) are modelled character by character.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Iterable, Sequence

BLANK = "<blank>"
TEXT_NORMS = ("english", "basic", "none")
UNITS = ("char", "word", "bpe", "unigram")  # word: whole words; bpe / unigram: a SentencePiece model of that type
ENGLISH_KEEP = "a-z' "  # regex character class of the characters the english policy keeps
WORD_START = "\u2581"  # SentencePiece's word-boundary mark "▁" at the start of a word's first piece
_APOSTROPHES = "'\u2019\u02bc"
_LONE_APOSTROPHE = re.compile(r"(?<!\w)'|'(?!\w)")


def normalize_text(text: str, policy: str) -> str:
    """Apply a transcript policy (one of TEXT_NORMS; see the module docstring)."""
    if policy == "none":
        return " ".join(text.split())
    text = unicodedata.normalize("NFKC", text).lower()
    if policy == "english":
        return " ".join(re.sub(f"[^{ENGLISH_KEEP}]", "", text).split())
    if policy != "basic":
        raise ValueError(f"text_norm must be one of {', '.join(TEXT_NORMS)}, got {policy!r}")
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in _APOSTROPHES:
            out.append("'")
        elif cat[0] in "PSZ" or ch.isspace():
            out.append(" ")
        elif cat[0] == "C":
            continue  # control and format characters (zero-width joiners, BOMs ...)
        else:
            out.append(ch)  # letters, marks, digits
    return " ".join(_LONE_APOSTROPHE.sub(" ", "".join(out)).split())


class UnknownSymbolError(ValueError):
    """A transcript holds a symbol the vocabulary does not know."""


class Tokenizer:
    """Maps transcripts to token ids and back. Id 0 is the CTC blank.

    Args:
        symbols: the vocabulary without the blank, in id order (id = index + 1).
        kind: ``"char"`` (a transcript is a string of characters, word separator ``" "``) or
            ``"label"`` (a transcript is a list of labels, or a string of space-separated labels). A
            label tokenizer with a ``text_norm`` is a word tokenizer: text is normalised, then split
            into words, each word one token (units ``"word"``: small closed vocabularies such as digits).
        lowercase: lower-case text before encoding (char tokenizers). (Default: False)
        keep: for ``char``: a regex character class of characters to keep after normalisation;
            others are dropped. None keeps everything. (Default: None)
        text_norm: a named transcript policy (TEXT_NORMS) used instead of ``lowercase``/``keep``.
            (Default: None: NFKC plus ``lowercase``/``keep``, the policy of older checkpoints)
    """

    def __init__(self, symbols: Sequence[str], kind: str = "char", lowercase: bool = False, keep: str | None = None,
                 text_norm: str | None = None):
        if text_norm is not None and text_norm not in TEXT_NORMS:
            raise ValueError(f"text_norm must be one of {', '.join(TEXT_NORMS)}, got {text_norm!r}")
        if text_norm is None and lowercase and keep == ENGLISH_KEEP:
            text_norm = "english"  # older checkpoints stored the english policy as these two fields
        self.text_norm = text_norm
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
        keep: str | None = None, text_norm: str | None = None,
    ) -> "Tokenizer":
        """Build a vocabulary from training transcripts (sorted for a stable id order)."""
        probe = cls([], kind=kind, lowercase=lowercase, keep=keep, text_norm=text_norm)
        seen: set[str] = set()
        for t in transcripts:
            seen.update(probe.split(t))
        return cls(sorted(seen), kind=kind, lowercase=lowercase, keep=keep, text_norm=text_norm)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "symbols": self.symbols, "lowercase": self.lowercase, "keep": self.keep,
                "text_norm": self.text_norm, "units": self.units}

    @classmethod
    def from_dict(cls, d: dict) -> "Tokenizer":
        if d.get("kind") == "subword":
            return SubwordTokenizer(d["model_proto"], text_norm=d.get("text_norm") or "none")
        return cls(d["symbols"], kind=d.get("kind", "char"), lowercase=d.get("lowercase", False), keep=d.get("keep"),
                   text_norm=d.get("text_norm"))

    @property
    def units(self) -> str:
        """What a token is: ``"char"``, ``"word"``, ``"label"``, or the SentencePiece model type (``"bpe"``,
        ``"unigram"``)."""
        if self.kind == "label" and self.text_norm is not None:
            return "word"
        return self.kind

    # -- text <-> ids -------------------------------------------------------------------------
    def normalize(self, text: str) -> str:
        """The transcript policy: ``text_norm`` when set; else NFKC, optional lower-casing, unwanted
        characters dropped, whitespace collapsed."""
        if self.text_norm is not None:
            return normalize_text(text, self.text_norm)
        text = unicodedata.normalize("NFKC", text)
        if self.lowercase:
            text = text.lower()
        if self._drop is not None:
            text = self._drop.sub("", text)
        return " ".join(text.split())

    def split(self, transcript: str | Sequence[str]) -> list[str]:
        """Transcript -> list of symbols (characters or labels)."""
        if self.kind == "label":
            if isinstance(transcript, str):
                return (self.normalize(transcript) if self.text_norm is not None else transcript).split()
            return list(transcript)
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

    @property
    def word_separator(self) -> int | None:
        """Id of the space character for char tokenizers (None if absent or label kind)."""
        return self._ids.get(" ") if self.kind == "char" else None

    @property
    def word_starts(self) -> frozenset[int]:
        """Ids of tokens that begin a word (subword pieces with ``▁``); empty for chars and labels,
        whose words end at ``word_separator`` instead."""
        return frozenset()

    @property
    def reserved_ids(self) -> frozenset[int]:
        """Ids no transcript ever encodes to (a subword model's unknown piece); none for characters."""
        return frozenset()

    def spellings(self, word: str, n: int = 1) -> list[list[int]]:
        """Token spellings of one word, canonical first (characters and labels have just one)."""
        return [self.encode(word)]

    def spellings_many(self, words: Sequence[str], n: int = 1) -> list[list[list[int]] | None]:
        """:meth:`spellings` of each word; None for a word this vocabulary cannot spell."""
        out: list[list[list[int]] | None] = []
        for word in words:
            try:
                out.append(self.spellings(word, n))
            except UnknownSymbolError:
                out.append(None)
        return out

    def __len__(self) -> int:
        """Vocabulary size including the blank."""
        return len(self.symbols) + 1

    def __repr__(self) -> str:
        return f"Tokenizer(kind={self.kind!r}, size={len(self)})"


class SubwordTokenizer(Tokenizer):
    """SentencePiece subword units (BPE or unigram); the model travels inside the checkpoint.

    Token id = SentencePiece id + 1 (id 0 is the CTC blank). Text is normalised by ``text_norm``
    before SentencePiece sees it (whose own normalisation is off), so text -> ids -> text gives the
    normalised text back exactly. A word starts at a piece beginning with ``▁``.

    Args:
        model_proto: the serialized SentencePiece model (``ModelProto`` bytes).
        text_norm: the transcript policy (TEXT_NORMS). (Default: "basic")
    """

    def __init__(self, model_proto: bytes, text_norm: str = "basic"):
        import sentencepiece as spm

        self.model_proto = bytes(model_proto)
        self.sp = spm.SentencePieceProcessor(model_proto=self.model_proto)
        super().__init__([self.sp.id_to_piece(i) for i in range(self.sp.get_piece_size())], text_norm=text_norm)
        self.kind = "subword"
        self._word_starts = frozenset(i + 1 for i, s in enumerate(self.symbols) if s.startswith(WORD_START))
        self._model_type = _model_type(self.model_proto)

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, model_type: str = "bpe", text_norm: str = "basic",
              ) -> "SubwordTokenizer":
        """Train a SentencePiece model on (normalised) training transcripts, in memory.

        ``vocab_size`` is an upper bound: a small corpus gets the pieces it supports. Every
        character of the training text is covered (``character_coverage=1``).
        """
        import io

        import sentencepiece as spm

        if model_type not in ("bpe", "unigram"):
            raise ValueError(f"subword model type must be 'bpe' or 'unigram', got {model_type!r}")
        lines = [t for t in (normalize_text(x, text_norm) for x in texts) if t]
        if not lines:
            raise ValueError("no training text to build a subword vocabulary from")
        chars = {c for t in lines for c in t if c != " "}
        if vocab_size < len(chars) + 2:
            raise ValueError(f"--bpe-size {vocab_size} is smaller than the {len(chars)} distinct characters "
                             f"of the training text (+2); use at least {len(chars) + 2}")
        proto = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines), model_writer=proto, vocab_size=vocab_size, model_type=model_type,
            character_coverage=1.0, normalization_rule_name="identity", hard_vocab_limit=False,
            unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1, minloglevel=2, num_threads=1,
            max_sentence_length=1 << 16, split_digits=True,
        )
        return cls(proto.getvalue(), text_norm=text_norm)

    def to_dict(self) -> dict:
        return {"kind": "subword", "units": self.units, "symbols": self.symbols, "text_norm": self.text_norm,
                "model_proto": self.model_proto}

    @property
    def units(self) -> str:
        return self._model_type

    def split(self, transcript: str | Sequence[str]) -> list[str]:
        if not isinstance(transcript, str):
            transcript = " ".join(transcript)
        return self.sp.encode(self.normalize(transcript), out_type=str)

    def encode(self, transcript: str | Sequence[str]) -> list[int]:
        """Transcript -> piece ids + 1. Raises UnknownSymbolError for characters the model lacks."""
        if not isinstance(transcript, str):
            transcript = " ".join(transcript)
        text = self.normalize(transcript)
        ids = self.sp.encode(text)
        if self.sp.unk_id() in ids:
            unknown = sorted({c for c in text if c != " " and self.sp.piece_to_id(c) == self.sp.unk_id()
                              and self.sp.unk_id() in self.sp.encode(c)})
            raise UnknownSymbolError(f"characters {''.join(unknown)!r} are not in the subword vocabulary")
        return [i + 1 for i in ids]

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text; ``▁`` marks become spaces between words."""
        return self.sp.decode([i - 1 for i in ids if i != 0])

    @property
    def word_separator(self) -> int | None:
        return None

    @property
    def word_starts(self) -> frozenset[int]:
        return self._word_starts

    @property
    def reserved_ids(self) -> frozenset[int]:
        return frozenset({self.sp.unk_id() + 1})  # encode() refuses text that would need it

    def spellings(self, word: str, n: int = 8) -> list[list[int]]:
        """The canonical spelling of ``word`` and up to ``n - 1`` other segmentations sampled from the
        model (a trained model may emit any of them); a fixed seed keeps this reproducible. Raises
        UnknownSymbolError for a word with characters the model lacks."""
        found = self.spellings_many([word], n)[0]
        if found is None:
            self.encode(word)  # raises, naming the characters
        return found

    def spellings_many(self, words: Sequence[str], n: int = 8) -> list[list[list[int]] | None]:
        """:meth:`spellings` of many words, one SentencePiece call per word for all its samples (a
        30,000-word lexicon takes seconds, not minutes); None for a word with characters the model lacks."""
        import sentencepiece as spm

        texts = [self.normalize(w) for w in words]
        canonical = self.sp.encode(texts, num_threads=1)
        draws = 2 * (n - 1)  # samples per word: distinct segmentations get rarer with each draw
        alpha = 0.1 if self.units == "bpe" else 0.5
        unk = self.sp.unk_id()
        out: list[list[list[int]] | None] = []
        for text, ids in zip(texts, canonical):
            if unk in ids:
                out.append(None)
                continue
            sampled: list[list[int]] = []
            if draws > 0 and text:
                spm.set_random_generator_seed(1234)  # per word: its spellings do not depend on its neighbours
                sampled = self.sp.encode([text] * draws, enable_sampling=True, alpha=alpha, nbest_size=-1,
                                         num_threads=1)
            found = {tuple(ids): None}  # a dict keeps the canonical spelling first
            for alt in sampled:
                if len(found) >= n:
                    break
                if unk not in alt:
                    found.setdefault(tuple(alt))
            out.append([[i + 1 for i in s] for s in found])
        return out

    def __repr__(self) -> str:
        return f"SubwordTokenizer(units={self.units!r}, size={len(self)}, text_norm={self.text_norm!r})"


def _model_type(model_proto: bytes) -> str:
    """"bpe" or "unigram" from a serialized SentencePiece model."""
    from sentencepiece import sentencepiece_model_pb2 as model_pb2

    m = model_pb2.ModelProto()
    m.ParseFromString(model_proto)
    return {1: "unigram", 2: "bpe", 3: "word", 4: "char"}.get(m.trainer_spec.model_type, "unigram")


def build_tokenizer(
    texts: Sequence[str], kind: str = "char", text_norm: str = "auto", units: str = "char", bpe_size: int = 256,
) -> Tokenizer:
    """The tokenizer policy for training transcripts: one place that picks normalisation and units.

    Args:
        texts: the training transcripts.
        kind: ``"char"`` for text (speech), ``"label"`` for label sequences (units and policy ignored).
        text_norm: one of TEXT_NORMS, or ``"auto"``: ``english`` when every transcript is plain
            English text (ASCII letters and punctuation), else ``none`` (DTMF keys, symbols, other
            scripts are taken as written). (Default: "auto")
        units: ``"char"``, ``"word"`` (each distinct normalised word one token), or a SentencePiece model
            type: ``"bpe"`` / ``"unigram"``. (Default: "char")
        bpe_size: SentencePiece vocabulary size (an upper bound on small corpora). (Default: 256)
    """
    if kind == "label":
        return Tokenizer.build(texts, kind="label")
    if units not in UNITS:
        raise ValueError(f"units must be one of {', '.join(UNITS)}, got {units!r}")
    if text_norm == "auto":
        english = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ '.,?!;:-\"")
        text_norm = "english" if all(set(t) <= english for t in texts) else "none"
    if units == "char":
        return Tokenizer.build(texts, kind="char", text_norm=text_norm)
    if units == "word":
        return Tokenizer.build(texts, kind="label", text_norm=text_norm)
    return SubwordTokenizer.train(texts, bpe_size, model_type=units, text_norm=text_norm)

"""The decoder: one frozen options dataclass and the Decoder that applies it (greedy or beam search with
LM, lexicon, hotwords and grammar). Command-line flags for it live in ``crnn.cli.decode_args``."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from crnn.tokenizer import Tokenizer
from crnn.decoding.beam import ctc_beam_search
from crnn.decoding.greedy import ctc_greedy
from crnn.decoding.hypothesis import Hypothesis
from crnn.decoding.constraints import Grammar, Hotwords, Lexicon
from crnn.decoding.lm import TensorLM, read_arpa
from crnn.decoding.scorers import GrammarScorer, HotwordScorer, TokenLMScorer, WordScorer, lm_unit
from crnn.decoding.words import hypothesis_words
from crnn.pretrained import resolve_language_model

__all__ = ["DecodeOptions", "Decoder"]


@dataclass(frozen=True)
class DecodeOptions:
    """How to turn log-posteriors into hypotheses."""

    beam_size: int = 1  # 1: greedy best path (unless a constraint or LM needs the search)
    nbest: int = 1  # hypotheses per utterance (<= beam_size)
    lm: str | None = None  # ARPA n-gram LM: words, characters (``<space>`` = space) or labels
    alpha: float = 0.5  # LM weight (on natural-log probabilities)
    beta: float = 1.0  # bonus per LM unit (word, or token for character/label LMs)
    lm_unit: str = "auto"  # "word" (scored at spaces), "token" (every token) or "auto" (from the LM's vocabulary)
    lexicon: str | None = None  # file of allowed words, one per line (character vocabularies)
    hotwords: tuple[str, ...] = ()  # words/phrases to favour, or one path to a file of them
    hotword_weight: float = 1.5  # bonus per token inside a hotword (kept only if it completes)
    grammar: str | None = None  # label grammar file: "FROM TO1 TO2 ..." lines
    token_prune: int | None = None  # extend only by each frame's top-k tokens (None: all)
    blank_skip: float | None = None  # skip frames with blank posterior above this (e.g. 0.999)
    cuda_graph: bool = False  # on CUDA, replay the per-frame search step as one captured graph


class Decoder:
    """Decodes batches of log-posteriors with fixed options; LM, lexicon etc. are loaded once.

    Args:
        tokenizer: the model's vocabulary (fills ``text`` and ``words``).
        options: DecodeOptions.
        frame_shift: seconds per output frame, for word times in seconds (None: times in frames).
    """

    def __init__(self, tokenizer: Tokenizer, options: DecodeOptions = DecodeOptions(), frame_shift: float | None = None):
        o = options
        if o.beam_size < 1:
            raise ValueError(f"beam size must be >= 1, got {o.beam_size}")
        if o.nbest < 1 or o.nbest > o.beam_size:
            raise ValueError(f"nbest must be between 1 and the beam size ({o.beam_size}), got {o.nbest}")
        if o.lm_unit not in ("auto", "word", "token"):
            raise ValueError(f"lm_unit must be 'auto', 'word' or 'token', got {o.lm_unit!r}")
        for name in ("alpha", "beta", "hotword_weight"):
            if not math.isfinite(getattr(o, name)):
                raise ValueError(f"{name} must be a finite number, got {getattr(o, name)}")
        if o.token_prune is not None and o.token_prune < 1:
            raise ValueError(f"token_prune must be >= 1, got {o.token_prune}")
        if o.blank_skip is not None and not 0 < o.blank_skip < 1:
            raise ValueError(f"blank_skip must lie strictly between 0 and 1, got {o.blank_skip}")
        self.tokenizer, self.options, self.frame_shift = tokenizer, o, frame_shift
        self.scorers: list = []
        lm = TensorLM(read_arpa(resolve_language_model(o.lm))) if o.lm else None
        lexicon = Lexicon.from_file(o.lexicon, tokenizer) if o.lexicon else None
        unit = None
        if lm is not None:
            unit = lm_unit(lm, tokenizer) if o.lm_unit == "auto" else o.lm_unit
            if tokenizer.kind == "label":
                unit = "token"  # every label is a word
        if unit == "token":
            self.scorers.append(TokenLMScorer(lm, tokenizer, o.alpha, o.beta))
        if unit == "word" or lexicon is not None:
            self.scorers.append(WordScorer(tokenizer, lm if unit == "word" else None, lexicon, o.alpha, o.beta))
        if o.hotwords:
            spec = o.hotwords[0] if len(o.hotwords) == 1 and Path(o.hotwords[0]).is_file() else list(o.hotwords)
            self.scorers.append(HotwordScorer(Hotwords.parse(spec, tokenizer, o.hotword_weight)))
        if o.grammar:
            self.scorers.append(GrammarScorer(Grammar.from_file(o.grammar, tokenizer)))
        self.lm_unit = unit

    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[list[Hypothesis]]:
        """Decode (B, T, V) log-posteriors with (B,) valid lengths: per utterance, n-best hypotheses."""
        o = self.options
        if log_probs.size(-1) != len(self.tokenizer):
            raise ValueError(f"log_probs have {log_probs.size(-1)} classes, the vocabulary {len(self.tokenizer)}")
        if o.beam_size == 1 and not self.scorers:
            nbest = [[h] for h in ctc_greedy(log_probs, lengths)]
        else:
            # Several beams can spell one text (a trailing word separator, say): ask for the whole beam
            # when an n-best list is wanted, and keep the best of each distinct text.
            nbest = ctc_beam_search(
                log_probs, lengths, beam_size=o.beam_size, nbest=o.beam_size if o.nbest > 1 else 1,
                token_prune=o.token_prune, blank_skip=o.blank_skip, scorers=self.scorers, cuda_graph=o.cuda_graph,
            )
        out = []
        for hyps in nbest:
            distinct: dict[str, Hypothesis] = {}
            for h in hyps:  # best first
                h.text = " ".join(self.tokenizer.decode(h.tokens).split())
                distinct.setdefault(h.text, h)
            kept = list(distinct.values())[: o.nbest]
            for h in kept:
                h.words = hypothesis_words(h, self.tokenizer, self.frame_shift)
            out.append(kept)
        return out

"""The decoding flags (``--beam``, ``--lm``, ``--lexicon`` ...) shared by ``crnn decode`` and ``crnn eval``.

Values are checked as they are parsed: an out-of-range value is a usage error (exit 2), never a
traceback or a silent clamp.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from crnn.cli.common import finite_float, open_fraction, positive_int
from crnn.decoding import DecodeOptions


def add_decode_args(parser: argparse.ArgumentParser) -> None:
    """Add the decoding flags to a command's parser."""
    g = parser.add_argument_group("decoding")
    d = DecodeOptions()
    g.add_argument("--beam", type=positive_int, default=d.beam_size, help="beam size; 1 = greedy (default: %(default)s)")
    g.add_argument("--nbest", type=positive_int, default=d.nbest, help="hypotheses per utterance (default: %(default)s)")
    g.add_argument("--lm", default=None, help="ARPA n-gram LM file, plain or .gz (build one with 'crnn lm build'), or a shipped LM's name (crnn models), e.g. chars-en")
    g.add_argument("--alpha", type=finite_float, default=d.alpha, help="LM weight (default: %(default)s)")
    g.add_argument("--beta", type=finite_float, default=d.beta, help="bonus per LM word/token (default: %(default)s)")
    g.add_argument("--lm-unit", choices=["auto", "word", "token"], default=d.lm_unit,
                   help="score the LM per word or per token (default: from the LM's vocabulary)")
    g.add_argument("--lexicon", default=None, help="file of allowed words, one per line")
    g.add_argument("--hotwords", default=None, help="comma-separated words/phrases to favour, or a file of them")
    g.add_argument("--hotword-weight", type=finite_float, default=d.hotword_weight,
                   help="bonus per token inside a hotword (default: %(default)s)")
    g.add_argument("--grammar", default=None, help="label grammar file: 'FROM TO1 TO2 ...' per line")
    g.add_argument("--token-prune", type=positive_int, default=None, help="extend by each frame's top-k tokens only")
    g.add_argument("--blank-skip", type=open_fraction, default=None,
                   help="skip frames whose blank probability exceeds this, e.g. 0.999")


def options_from_args(args: argparse.Namespace) -> DecodeOptions:
    """DecodeOptions from parsed ``add_decode_args`` flags."""
    hot = getattr(args, "hotwords", None)
    if not hot:
        hotwords: tuple[str, ...] = ()
    elif Path(hot).is_file():
        hotwords = (hot,)
    else:
        hotwords = tuple(p.strip() for p in hot.split(",") if p.strip())
    return DecodeOptions(
        beam_size=args.beam, nbest=args.nbest, lm=args.lm, alpha=args.alpha, beta=args.beta, lm_unit=args.lm_unit,
        lexicon=args.lexicon, hotwords=hotwords, hotword_weight=args.hotword_weight, grammar=args.grammar,
        token_prune=args.token_prune, blank_skip=args.blank_skip,
    )

"""``crnn synth``: write the built-in data sets to disk (real files + manifest.jsonl)."""
from __future__ import annotations

import argparse
import sys

from crnn.data.builtin.textlines import DEFAULT_HELD_OUT


def main(args: argparse.Namespace) -> int:
    if args.kind == "dtmf":
        from crnn.data.builtin.dtmf import write_dtmf_dataset

        manifest = write_dtmf_dataset(args.out, args.n, args.seed, sample_rate=args.sample_rate)
    elif args.kind == "textlines":
        from crnn.data.builtin.textlines import TextLinesConfig, write_textlines

        if args.split == "test_look":
            print("error: --split test_look is the action clips' held-out look; text lines have train, "
                  "valid and test (held-out fonts and words)", file=sys.stderr)
            return 2
        held_out = tuple(h.strip() for h in args.held_out_fonts.split(",") if h.strip())
        config = TextLinesConfig(split=args.split, fonts=tuple(args.fonts) if args.fonts else None, held_out=held_out,
                                 height=args.height, plain=args.plain, corpus=args.text_corpus, clean=args.clean)
        try:
            if args.text_only:
                from pathlib import Path

                from crnn.data.builtin.textlines import write_textlines_text

                print(write_textlines_text(Path(args.out) / "text.txt", args.n, args.seed, config))
                return 0
            manifest = write_textlines(args.out, args.n, args.seed, config)
        except FileNotFoundError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    else:
        from crnn.data.builtin.actions import ActionsConfig, write_action_clips

        if args.split == "test_look" and args.look == "basic":
            print("error: --split test_look draws the varied look's held-out shapes and backgrounds; "
                  "it has no basic-look clips", file=sys.stderr)
            return 1
        manifest = write_action_clips(args.out, args.n, args.seed, split=args.split,
                                      config=ActionsConfig(look=args.look))
    print(manifest)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("synth", help="write built-in data (DTMF audio, action clips, text lines) as files",
                              description=__doc__)
    p.add_argument("kind", choices=["dtmf", "actions", "textlines"])
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--n", type=int, default=100, help="number of utterances / clips")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sample-rate", type=int, help="dtmf: fixed sample rate (default: 8 or 16 kHz at random)")
    p.add_argument("--split", default="train", choices=["train", "valid", "test", "test_look"],
                   help="textlines: test draws held-out fonts and words; actions: which split's clips (splits never share a clip; test_look: shapes and backgrounds "
                        "that the other splits never draw; default: train)")
    p.add_argument("--fonts", action="append", metavar="PATH",
                   help="textlines: font folder, file or glob (repeatable; default: the system's fonts and matplotlib's)")
    p.add_argument("--text-corpus", metavar="FILE",
                   help="textlines: a text file of real sentences, one per line; half the lines are drawn from it "
                        "(--split test draws the one sentence in five that training never does)")
    p.add_argument("--held-out-fonts", default=",".join(DEFAULT_HELD_OUT), metavar="NAMES",
                   help="textlines: comma-separated parts of font file names kept for --split test only "
                        "(default: %(default)s)")
    p.add_argument("--height", type=int, default=32, help="textlines: line height in pixels (default: %(default)s)")
    p.add_argument("--text-only", action="store_true",
                   help="textlines: write only OUT/text.txt, the lines' transcripts (text for 'crnn lm build')")
    p.add_argument("--plain", action="store_true",
                   help="textlines: words only, lower case, no numbers or punctuation (for --lexicon decoding)")
    p.add_argument("--clean", action="store_true",
                   help="textlines: born-digital lines (black on white, upright, no blur, noise or degradation; "
                        "only the font size varies) instead of the training look")
    p.add_argument("--look", default="varied", choices=["varied", "basic"],
                   help="actions: the varied look (default) or the original basic one (the actions_basic task)")
    p.set_defaults(func=main)

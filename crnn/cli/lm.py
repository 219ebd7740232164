"""``crnn lm build``: an ARPA n-gram LM (interpolated modified Kneser-Ney) from a text file, in pure Python."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from crnn.cli.common import positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("lm", help="build n-gram language models for decoding")
    sub = p.add_subparsers(dest="lm_command", metavar="ACTION", required=True)
    b = sub.add_parser("build", help="build an ARPA LM (interpolated modified Kneser-Ney) from text")
    b.add_argument("text", help="training text, one sentence per line")
    b.add_argument("--order", type=positive_int, default=3, help="n-gram order (default: %(default)s)")
    b.add_argument("--unit", choices=["word", "char"], default="word",
                   help="model words, or characters with the space as <space> (default: %(default)s)")
    b.add_argument("-o", "--output", default="-", help="output ARPA file (default: stdout)")
    b.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from crnn.decoding.lm import write_arpa
    from crnn.decoding.lm_build import build_kneser_ney, sentences_from_text

    path = Path(args.text)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        print(f"error: {path}: cannot read ({e.strerror})", file=sys.stderr)
        return 1
    except UnicodeDecodeError:
        print(f"error: {path}: not UTF-8 text", file=sys.stderr)
        return 1
    sentences = sentences_from_text(lines, unit=args.unit)
    if not sentences:
        print(f"error: {path}: no text", file=sys.stderr)
        return 1
    lm = build_kneser_ney(sentences, order=args.order)
    if args.output == "-":
        write_arpa(lm, sys.stdout)
        return 0
    try:
        with open(args.output, "w", encoding="utf-8") as f:
            write_arpa(lm, f)
    except OSError as e:
        print(f"error: {args.output}: cannot write ({e.strerror or e})", file=sys.stderr)
        return 1
    return 0

"""``crnn synth``: write the built-in data sets to disk (real files + manifest.jsonl)."""
from __future__ import annotations

import argparse
import sys


def main(args: argparse.Namespace) -> int:
    if args.kind == "dtmf":
        from crnn.data.builtin.dtmf import write_dtmf_dataset

        manifest = write_dtmf_dataset(args.out, args.n, args.seed, sample_rate=args.sample_rate)
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
    p = subparsers.add_parser("synth", help="write built-in data (DTMF audio, action clips) as files",
                              description=__doc__)
    p.add_argument("kind", choices=["dtmf", "actions"])
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--n", type=int, default=100, help="number of utterances / clips")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sample-rate", type=int, help="dtmf: fixed sample rate (default: 8 or 16 kHz at random)")
    p.add_argument("--split", default="train", choices=["train", "valid", "test", "test_look"],
                   help="actions: which split's clips (splits never share a clip; test_look: shapes and backgrounds "
                        "that the other splits never draw; default: train)")
    p.add_argument("--look", default="varied", choices=["varied", "basic"],
                   help="actions: the varied look (default) or the original basic one (the actions_basic task)")
    p.set_defaults(func=main)

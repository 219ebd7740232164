"""``crnn average``: one model whose weights are the mean of several checkpoints of the same run."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("average", help="average the weights of checkpoints of one model (e.g. last epochs)")
    p.add_argument("checkpoints", nargs="+", help="checkpoints of the same model, e.g. runs/x/epochs/epoch-*.pt")
    p.add_argument("-o", "--output", required=True, help="the averaged checkpoint to write")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from crnn.model.checkpoint import write_checkpoint
    from crnn.training.averaging import average_checkpoints

    out = Path(args.output)
    if out.resolve() in {Path(p).resolve() for p in args.checkpoints}:
        print(f"error: {out}: the output would overwrite one of the checkpoints being averaged", file=sys.stderr)
        return 2
    averaged = average_checkpoints(args.checkpoints)
    averaged["train_state"].pop("best", None)  # not validated here: `crnn eval` scores it
    write_checkpoint(out, averaged)
    print(f"averaged {len(args.checkpoints)} checkpoint(s) -> {out}", file=sys.stderr)
    return 0

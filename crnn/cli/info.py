"""``crnn info``: list cells, presets and frontends, or describe a checkpoint."""
from __future__ import annotations

import argparse
import json
import sys


def main(args: argparse.Namespace) -> int:
    from crnn.cli.common import load_plugins

    load_plugins(args.plugin)
    import crnn

    if args.checkpoint:
        from crnn.model.checkpoint import CheckpointError, model_from_checkpoint, read_checkpoint

        try:
            ckpt = read_checkpoint(args.checkpoint)
            model = model_from_checkpoint(ckpt, source=args.checkpoint)
        except CheckpointError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        n = sum(p.numel() for p in model.parameters())
        state = ckpt.get("train_state", {})
        tok = model.tokenizer
        print(json.dumps({"config": ckpt["config"], "vocabulary": tok.symbols, "parameters": n,
                          "tokenizer": {"units": tok.units, "text_norm": tok.text_norm, "size": len(tok)},
                          "frame_shift_s": model.frame_shift, "epochs_trained": state.get("epoch", 0),
                          "best": state.get("best")}, indent=2))
        return 0
    print("cells:     " + ", ".join(crnn.list_cells()))
    print("presets:   " + ", ".join(crnn.list_models()))
    print("frontends: " + ", ".join(crnn.list_frontends()))
    return 0


def register(subparsers) -> None:
    from crnn.cli.common import add_plugin_arg

    p = subparsers.add_parser("info", help="list cells/presets/frontends, or describe a checkpoint",
                              description=__doc__)
    p.add_argument("checkpoint", nargs="?")
    add_plugin_arg(p)
    p.set_defaults(func=main)

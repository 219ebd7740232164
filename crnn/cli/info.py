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
    print("frontends: " + ", ".join(crnn.list_frontends()))
    print("presets:")
    for row in preset_rows():
        print("  " + row)
    return 0


def preset_rows() -> list[str]:
    """One line per preset: name, modality, what it reads, recurrent layers, parameters (vocabulary of 32)."""
    import crnn
    from crnn.model.presets import PRESETS

    rows = []
    for name in crnn.list_models():
        model = crnn.create_model(name, vocab_size=32)
        reader = model.reader_args
        if model.modality == "audio":
            reads = f"{int(reader['sample_rate']) // 1000} kHz audio"
        elif model.modality == "image":
            reads = f"{'grey' if reader.get('channels', 1) == 1 else 'colour'} lines {reader['height']} px high"
        elif model.modality == "video":
            reads = f"{reader['height']}x{reader['width']} frames at {reader['fps']:g} fps"
        else:
            reads = f"{model.frontend.cfg.input_dim}-d features at {reader['fps']:g} fps"
        cfg = PRESETS[name]
        layers = f"{'Bi' if model.cfg.bidirectional else ''}{model.cfg.cell.upper()} {cfg['num_layers']}x{cfg['hidden_size']}"
        size = sum(p.numel() for p in model.parameters()) / 1e6
        rows.append(f"{name:<18} {model.modality:<9} {reads:<28} {layers:<13} {size:6.2f} M parameters")
    return rows


def register(subparsers) -> None:
    from crnn.cli.common import add_plugin_arg

    p = subparsers.add_parser("info", help="list cells/presets/frontends, or describe a checkpoint",
                              description=__doc__)
    p.add_argument("checkpoint", nargs="?")
    add_plugin_arg(p)
    p.set_defaults(func=main)

"""``crnn export``: write a checkpoint as one ONNX file (features inside) or a torch.export program.

A forward-only model also gets its streaming graph (encoder + head, state in and out) beside the
ONNX file, as ``NAME.streaming.onnx``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def streaming_path(path: Path) -> Path:
    """model.onnx -> model.streaming.onnx"""
    return path.with_name(path.stem + ".streaming" + path.suffix)


def main(args: argparse.Namespace) -> int:
    from crnn.checkpoint import CheckpointError, load_model
    from crnn.cli.common import load_plugins
    from crnn.export import ExportError, export_onnx, export_streaming_onnx, quantize_onnx, save_program

    load_plugins(args.plugin)
    out = Path(args.output)
    try:
        model = load_model(args.checkpoint)
        start = time.perf_counter()
        if args.format == "torch":
            if args.quantize:
                print("error: --quantize needs --format onnx", file=sys.stderr)
                return 2
            written = [save_program(model, out)]
        else:
            if args.quantize == "int8":  # the fp32 graph beside, then its int8 copy at --output
                fp32 = out.with_name(out.stem + ".fp32" + out.suffix)
                written = [export_onnx(model, fp32), quantize_onnx(fp32, out)]
            else:
                written = [export_onnx(model, out)]
            if not model.cfg.bidirectional and not args.no_streaming:
                written.append(export_streaming_onnx(model, streaming_path(out)))
    except (CheckpointError, ExportError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    print(f"exported in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0


def register(subparsers) -> None:
    from crnn.cli.common import add_plugin_arg

    p = subparsers.add_parser("export", help="write a checkpoint as ONNX or a torch.export program",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", "-c", required=True, help="a checkpoint written by crnn train (best.pt)")
    p.add_argument("--format", choices=["onnx", "torch"], default="onnx",
                   help="onnx: one .onnx file for onnxruntime; torch: a torch.export program (.pt2) (default: onnx)")
    p.add_argument("--output", "-o", required=True, help="file to write (model.onnx / model.pt2)")
    p.add_argument("--no-streaming", action="store_true",
                   help="forward-only models: skip the streaming graph (NAME.streaming.onnx)")
    p.add_argument("--quantize", choices=["int8"], default=None,
                   help="onnx only: write an int8 copy (onnxruntime dynamic quantization) at --output, "
                        "the fp32 graph beside it as NAME.fp32.onnx")
    add_plugin_arg(p)
    p.set_defaults(func=main)

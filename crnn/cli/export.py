"""``crnn export``: write a checkpoint as one ONNX file (features inside) or a torch.export program.

A forward-only model also gets its streaming graph beside the ONNX file, as ``NAME.streaming.onnx``:
for audio models the whole model (raw samples in chunks, every state carried), else the encoder and
head (frontend features in). ``--quantize int8`` writes an int8 copy, ``--check`` measures what it costs.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def streaming_path(path: Path) -> Path:
    """model.onnx -> model.streaming.onnx"""
    return path.with_name(path.stem + ".streaming" + path.suffix)


def check_int8(fp32: Path, int8: Path, manifest: str, limit: float, force: bool) -> bool:
    """Decode ``manifest`` with both ONNX files and print their WERs; False when int8 loses more than
    ``limit`` WER points and ``force`` is not set (a warning line when it is)."""
    from crnn.deploy.runner import OnnxModel
    from crnn.evaluation.manifest import manifest_wer, wer_loss_report

    line, ok = wer_loss_report(manifest_wer(OnnxModel(fp32), manifest), manifest_wer(OnnxModel(int8), manifest), limit)
    print(f"check on {manifest}: {line}")
    if not ok and force:
        print(f"warning: {int8}: int8 loses more than {limit:g} WER points on {manifest}; kept (--force)",
              file=sys.stderr)
    elif not ok:
        print(f"error: {int8}: int8 loses more than {limit:g} WER points on {manifest}; not written "
              f"(the fp32 graph is {fp32}; --force keeps the int8 file)", file=sys.stderr)
    return ok or force


def write_streaming(model, path: Path, encoder_head) -> Path:
    """The whole-model streaming graph (samples in) for a log-mel audio model, else encoder and head."""
    from crnn.deploy.streaming_graph import export_streaming_model_onnx
    from crnn.model.modality import is_log_mel

    if not is_log_mel(model.frontend):
        return encoder_head(model, path)
    if model.frontend.cfg.normalize == "utterance":
        print(f"note: {path}: per-utterance normalisation streams with the statistics heard so far, close to "
              "offline decoding but not equal (train with --frontend-arg normalize=global for equal)", file=sys.stderr)
    return export_streaming_model_onnx(model, path)


def main(args: argparse.Namespace) -> int:
    from crnn.model.checkpoint import CheckpointError, load_model
    from crnn.cli.common import load_plugins
    from crnn.deploy import ExportError, export_onnx, export_streaming_onnx, quantize_onnx, save_program
    from crnn.model.modality import forward_only

    load_plugins(args.plugin)
    if (args.check or args.force) and args.quantize != "int8":
        print("error: --check and --force go with --quantize int8", file=sys.stderr)
        return 2
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
                if args.check and not check_int8(fp32, out, args.check, args.max_wer_loss, args.force):
                    out.unlink()
                    return 1
            else:
                written = [export_onnx(model, out)]
            if forward_only(model) and not args.no_streaming:
                written.append(write_streaming(model, streaming_path(out), export_streaming_onnx))
    except (CheckpointError, ExportError, OSError, ValueError) as e:  # ValueError: an unusable --check manifest
        print(f"error: {e}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    print(f"exported in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return value


def register(subparsers) -> None:
    from crnn.cli.common import add_plugin_arg

    p = subparsers.add_parser("export", help="write a checkpoint as ONNX or a torch.export program",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", "-c", "--model", dest="checkpoint", required=True, metavar="CK|NAME",
                   help="a model: a checkpoint written by crnn train (best.pt), an exported .onnx file (decode, eval), or the name of a shipped model (crnn models)")
    p.add_argument("--format", choices=["onnx", "torch"], default="onnx",
                   help="onnx: one .onnx file for onnxruntime; torch: a torch.export program (.pt2) (default: onnx)")
    p.add_argument("--output", "-o", required=True, help="file to write (model.onnx / model.pt2)")
    p.add_argument("--no-streaming", action="store_true",
                   help="forward-only models: skip the streaming graph (NAME.streaming.onnx)")
    p.add_argument("--quantize", choices=["int8"], default=None,
                   help="onnx only: write an int8 copy (onnxruntime dynamic quantization) at --output, "
                        "the fp32 graph beside it as NAME.fp32.onnx")
    p.add_argument("--check", metavar="MANIFEST", default=None,
                   help="with --quantize int8: decode this held-out manifest with the fp32 and int8 files, print "
                        "both WERs, and refuse (exit 1, int8 file removed) if int8 loses more than --max-wer-loss")
    p.add_argument("--max-wer-loss", type=non_negative_float, default=0.5, metavar="POINTS",
                   help="with --check: the most WER points int8 may lose (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="with --check: keep the int8 file anyway, with a warning")
    add_plugin_arg(p)
    p.set_defaults(func=main)

"""``crnn decode``: transcribe audio, video or text-line image files with a trained checkpoint.

Long recordings are cut into segments (``--segment``), results go to stdout or, with ``--output-dir``,
to one file per input and format (txt, json, srt, vtt, ctm).
"""
from __future__ import annotations

import argparse
import sys

from crnn.cli.common import add_plugin_arg, load_plugins, non_negative_int, positive_float, positive_int


def load_decoding_model(checkpoint: str, device):
    """The model ``--checkpoint`` names, in eval mode with its tokenizer: a checkpoint, or an exported
    ``.onnx`` file run by onnxruntime (raises CheckpointError / ExportError naming the file)."""
    if checkpoint.endswith(".onnx"):
        from crnn.deploy.runner import OnnxModel

        return OnnxModel(checkpoint)
    from crnn.model.checkpoint import load_model

    return load_model(checkpoint, device=device)


def build_decoder(args: argparse.Namespace, model):
    """Greedy or beam-search decoder (LM, lexicon, hotwords, grammar) from the CLI options."""
    from crnn.cli.decode_args import options_from_args
    from crnn.decoding import Decoder

    return Decoder(model.tokenizer, options_from_args(args), model.frame_shift)


def dumps(row: dict) -> str:
    """One JSON line; a non-finite number (a damaged model's score) becomes null, never a bare NaN."""
    from crnn.inference.outputs import json_line

    return json_line(row)


def progress(total: int, quiet: bool):
    """A tqdm bar on stderr for many inputs; off with --quiet or when stderr is not a terminal."""
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="file", file=sys.stderr, dynamic_ncols=True, leave=False,
                disable=quiet or total < 2 or not sys.stderr.isatty())


def main(args: argparse.Namespace) -> int:
    import torch

    from crnn.model.checkpoint import CheckpointError
    from crnn.data.media import empty_folders, expand_inputs, folder_problem
    from crnn.inference.api import SegmentOptions, transcribe_files
    from crnn.inference.outputs import output_paths, parse_formats
    from crnn.runtime import cpu_threads, pick_device

    load_plugins(args.plugin)
    try:
        segment = SegmentOptions.parse(args.segment)
        formats = parse_formats(args.format)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.format != "txt" and not args.output_dir:
        print("error: --format needs --output-dir (stdout takes --json or --ctm)", file=sys.stderr)
        return 2
    try:
        device = pick_device(args.device)
        if device.type == "cpu":
            torch.set_num_threads(cpu_threads(args.workers or 1, requested=args.threads))
        model = load_decoding_model(args.checkpoint, device)
        if args.int8:
            from crnn.deploy.int8 import int8_for_decoding

            model = int8_for_decoding(model, device)
        decoder = build_decoder(args, model)
    except (CheckpointError, RuntimeError, OSError, ValueError) as e:  # unusable checkpoint, LM, lexicon ...
        print(f"error: {e}", file=sys.stderr)
        return 1
    timed = [f for f in formats if f in ("srt", "vtt", "ctm")] + (["--ctm"] if getattr(args, "ctm", False) else [])
    if model.modality == "image" and timed:
        print(f"error: {', '.join(timed)} are timed outputs, and a text-line model reads images (positions in "
              f"pixels: use --json)", file=sys.stderr)
        return 2
    if model.modality != "audio" and segment.mode == "fixed":
        print(f"error: --segment {args.segment} needs an audio model (this one reads {model.modality})",
              file=sys.stderr)
        return 2
    if args.stream:
        return stream_main(args, model, decoder, segment)
    paths = expand_inputs(args.inputs, model.modality)
    empty = empty_folders(args.inputs, model.modality)
    for folder in empty:
        print(f"error: {folder_problem(folder, model.modality)}", file=sys.stderr)
    if not paths:
        if not empty:
            print("error: no input files", file=sys.stderr)
        return 1 if empty else 2
    try:
        targets = output_paths(paths, args.output_dir, formats) if args.output_dir else None
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    nbest = getattr(args, "nbest", 1) or 1
    failed = len(empty)
    with progress(len(paths), args.quiet) as bar:
        for r in transcribe_files(model, paths, decoder, batch_size=args.batch_size, device=device,
                                  workers=args.workers, segment=segment):
            bar.update(1)
            if r.error:
                failed += 1
                bar.write(f"error: {r.error}", file=sys.stderr)
                if args.json:
                    print(dumps(r.to_json(nbest)), flush=True)
                continue
            try:
                emit(args, r, nbest, targets)
            except OSError as e:  # a full disk, a read-only --output-dir
                failed += 1
                bar.write(f"error: {e.filename or r.path}: cannot write output ({e.strerror or e})", file=sys.stderr)
    if failed:
        print(f"{failed} of {len(paths) + len(empty)} file(s) failed", file=sys.stderr)
    return 1 if failed else 0


def emit(args: argparse.Namespace, r, nbest: int, targets) -> None:
    """Print one result (text, --json or --ctm), or write its files under --output-dir."""
    from crnn.inference.outputs import render, write_outputs

    if targets is not None:
        write_outputs(r, targets[r.path], nbest)
    elif args.json:
        print(dumps(r.to_json(nbest)), flush=True)
    elif args.ctm:
        print(render(r, "ctm"), end="", flush=True)
    else:
        print(f"{r.path}\t{r.text}", flush=True)
        for h in r.hypotheses[1:nbest]:
            print(f"{r.path}\t{h.text}\t(n-best, score {h.score:.3f})", flush=True)


def stream_main(args: argparse.Namespace, model, decoder, segment) -> int:
    """``--stream``: feed each input chunk by chunk as if it arrived live; partial and final transcripts.

    Long streams are decoded a segment at a time (ending at pauses, ``--segment`` seconds at most),
    so memory stays bounded by the segment, not the stream.
    """
    from crnn.data.audio import AudioReadError
    from crnn.data.media import expand_inputs
    from crnn.inference.api import FileResult
    from crnn.inference.outputs import output_paths, parse_formats
    from crnn.inference.streaming import SegmentedStream, StreamingError, StreamingRecognizer, audio_chunks

    try:
        stream = StreamingRecognizer(model)
    except StreamingError as e:
        print(f"error: {args.checkpoint}: {e}", file=sys.stderr)
        return 2
    if segment.mode == "auto":  # live input has no length to compare: segments end at pauses, 20 s at most
        segment = type(segment)("fixed", length=segment.length, overlap=0.0)
    sr = model.sample_rate
    chunk = max(1, int(args.chunk_ms / 1000 * sr))
    paths = [p for item in args.inputs for p in ([item] if item == "-" else expand_inputs([item], "audio"))]
    targets = output_paths([p if p != "-" else "stdin" for p in paths], args.output_dir,
                           parse_formats(args.format)) if args.output_dir else None
    nbest = getattr(args, "nbest", 1) or 1
    failed = 0
    for path in paths:
        stream.reset()
        pieces = SegmentedStream(model, decoder, segment)
        shown = ""
        try:
            for piece in audio_chunks(path, sr, chunk):
                pieces.add(piece, stream.accept(piece))
                stream.log_probs.clear()  # the segmenter keeps the undecoded frames; the rest is done with
                if args.partial and pieces.partial_text() != shown:
                    shown = pieces.partial_text()
                    print(f"{path}\tpartial\t{shown}", flush=True)
        except AudioReadError as e:
            failed += 1
            print(f"error: {e}", file=sys.stderr)
            if args.json:
                print(dumps({"path": path, "error": str(e)}), flush=True)
            continue
        pieces.finish(stream.finish())
        r = FileResult(path, pieces.result(), duration=stream.n_samples / sr, segments=len(pieces.pieces))
        if targets is not None:
            r.path = "stdin" if path == "-" else path
        try:
            emit(args, r, nbest, targets)
        except OSError as e:
            failed += 1
            print(f"error: {e.filename or r.path}: cannot write output ({e.strerror or e})", file=sys.stderr)
    if failed:
        print(f"{failed} of {len(paths)} input(s) failed", file=sys.stderr)
    return 1 if failed else 0


def register(subparsers) -> None:
    from crnn.cli.decode_args import add_decode_args

    p = subparsers.add_parser("decode", help="transcribe files with a checkpoint", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", help="audio/video/text-line image files, frame folders, or folders of files")
    p.add_argument("--checkpoint", "-c", "--model", dest="checkpoint", required=True, metavar="CK|NAME",
                   help="a model: a checkpoint written by crnn train (best.pt), an exported .onnx file (decode, eval), or the name of a shipped model (crnn models)")
    p.add_argument("--json", action="store_true", help="JSON lines: path, text, score, confidence, words with times")
    p.add_argument("--ctm", action="store_true", help="CTM lines: utterance, channel, start, duration, word, confidence")
    p.add_argument("--output-dir", metavar="DIR", help="write one file per input and format (call.wav -> DIR/call.srt)")
    p.add_argument("--format", default="txt", metavar="LIST",
                   help="with --output-dir: any of txt,json,srt,vtt,ctm, comma-separated (default: txt)")
    p.add_argument("--segment", default="auto", metavar="auto|none|N",
                   help="long recordings: 'auto' cuts those over 30 s at pauses (20 s at most), N cuts fixed "
                        "N-second windows with overlap, 'none' decodes whole files (default: auto)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument("--batch-size", type=positive_int, default=16)
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=non_negative_int, help="file reading processes (default: 0 for a few files, else up to 4)")
    p.add_argument("--threads", type=positive_int, help="CPU compute threads (default: the cores the readers leave free)")
    p.add_argument("--int8", action="store_true",
                   help="CPU: decode with int8 weights (PyTorch dynamic quantization of the recurrent and linear layers)")
    st = p.add_argument_group("streaming (forward-only audio models)")
    st.add_argument("--stream", action="store_true",
                    help="feed each input chunk by chunk as it would arrive live; '-' reads 16-bit mono PCM "
                         "at the model's rate from stdin")
    st.add_argument("--chunk-ms", type=positive_float, default=100.0, help="chunk length in milliseconds (default: 100)")
    st.add_argument("--partial", action="store_true", help="also print 'path<TAB>partial<TAB>text' as it grows")
    add_decode_args(p)
    add_plugin_arg(p)
    p.set_defaults(func=main)

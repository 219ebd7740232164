"""``crnn decode``: transcribe audio or video files with a trained checkpoint."""
from __future__ import annotations

import argparse
import json
import math
import sys

from crnn.cli.common import add_plugin_arg, load_plugins


def build_decoder(args: argparse.Namespace, model):
    """Beam search / LM / lexicon decoder from the CLI options, or greedy when those are absent."""
    from crnn.cli.decode_args import options_from_args
    from crnn.decoding import Decoder

    return Decoder(model.tokenizer, options_from_args(args), model.frame_shift)


def dumps(row: dict) -> str:
    """One JSON line; a non-finite number (a damaged model's score) becomes null, never a bare NaN."""
    try:
        return json.dumps(row, allow_nan=False)
    except ValueError:
        return json.dumps(_finite_or_none(row), allow_nan=False)


def _finite_or_none(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    return value


def result_json(r, nbest: int) -> dict:
    if r.error:
        return {"path": r.path, "error": r.error}
    best = r.hypotheses[0]
    row = {"path": r.path, "text": best.text, "score": round(best.score, 4),
           "confidence": round(best.confidence, 4), "words": best.words}
    if nbest > 1:
        row["nbest"] = [{"text": h.text, "score": round(h.score, 4)} for h in r.hypotheses[:nbest]]
    return row


def main(args: argparse.Namespace) -> int:
    import torch

    from crnn.inference import AUDIO_SUFFIXES, VIDEO_SUFFIXES, expand_inputs, transcribe_files
    from crnn.checkpoint import CheckpointError, load_model
    from crnn.runtime import cpu_threads, pick_device

    load_plugins(args.plugin)
    try:
        device = pick_device(args.device)
        if device.type == "cpu":
            torch.set_num_threads(cpu_threads(args.workers or 1, requested=args.threads))
        if args.checkpoint.endswith(".onnx"):  # an exported file, run by onnxruntime
            from crnn.export import OnnxModel

            model = OnnxModel(args.checkpoint)
        else:
            model = load_model(args.checkpoint, device=device)
        decoder = build_decoder(args, model)
    except (CheckpointError, RuntimeError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.stream:
        return stream_main(args, model, decoder)
    suffixes = AUDIO_SUFFIXES if model.cfg.frontend == "audio" else VIDEO_SUFFIXES
    paths = expand_inputs(args.inputs, suffixes)
    if not paths:
        print("error: no input files", file=sys.stderr)
        return 2
    nbest = getattr(args, "nbest", 1) or 1
    failed = 0
    if args.ctm:
        from crnn.decoding import format_ctm
    for r in transcribe_files(model, paths, decoder, batch_size=args.batch_size, device=device,
                              workers=args.workers):
        if r.error:
            failed += 1
            print(f"error: {r.error}", file=sys.stderr)
            if args.json:
                print(dumps(result_json(r, nbest)), flush=True)
            continue
        if args.json:
            print(dumps(result_json(r, nbest)), flush=True)
        elif args.ctm:
            from pathlib import Path

            print(format_ctm(Path(r.path).stem, r.hypotheses[0]), flush=True)
        else:
            print(f"{r.path}\t{r.hypotheses[0].text}", flush=True)
            for h in r.hypotheses[1:nbest]:
                print(f"{r.path}\t{h.text}\t(n-best, score {h.score:.3f})", flush=True)
    if failed:
        print(f"{failed} of {len(paths)} file(s) failed", file=sys.stderr)
    return 1 if failed else 0


def _chunks_of(path: str, sample_rate: int, chunk: int):
    """Waveform chunks (S_i,) of a file, or of 16-bit little-endian mono PCM on stdin for ``-``."""
    import numpy as np
    import torch

    if path == "-":
        while True:
            data = sys.stdin.buffer.read(2 * chunk)
            if not data:
                return
            data = data[: len(data) // 2 * 2]
            yield torch.from_numpy(np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0)
        return
    from crnn.data.audio import read_audio

    wav = read_audio(path, sample_rate)  # AudioReadError names the file
    for i in range(0, wav.numel(), chunk):
        yield wav[i:i + chunk]


def stream_main(args: argparse.Namespace, model, decoder) -> int:
    """``--stream``: feed each input chunk by chunk as if it arrived live; partial and final transcripts."""
    import torch

    from crnn.data.audio import AudioReadError
    from crnn.inference import AUDIO_SUFFIXES, FileResult, expand_inputs
    from crnn.streaming import StreamingError, StreamingRecognizer

    try:
        stream = StreamingRecognizer(model)
    except StreamingError as e:
        print(f"error: {args.checkpoint}: {e}", file=sys.stderr)
        return 2
    sr = int(model.cfg.frontend_args["sample_rate"])
    chunk = max(1, int(args.chunk_ms / 1000 * sr))
    paths = [p for item in args.inputs for p in ([item] if item == "-" else expand_inputs([item], AUDIO_SUFFIXES))]
    nbest = getattr(args, "nbest", 1) or 1
    failed = 0
    for path in paths:
        stream.reset()
        shown = ""
        try:
            for piece in _chunks_of(path, sr, chunk):
                stream.accept(piece)
                if args.partial and stream.text != shown:
                    shown = stream.text
                    print(f"{path}\tpartial\t{shown}", flush=True)
        except AudioReadError as e:
            failed += 1
            print(f"error: {e}", file=sys.stderr)
            if args.json:
                print(dumps({"path": path, "error": str(e)}), flush=True)
            continue
        stream.finish()
        lp = stream.frames  # (T', V): the final decoder (beam, LM, ...) sees the whole utterance
        hyps = decoder(lp[None], torch.tensor([lp.size(0)], device=lp.device))[0]
        r = FileResult(path, hyps, duration=stream.n_samples / sr)
        if args.json:
            print(dumps(result_json(r, nbest)), flush=True)
        else:
            print(f"{path}\t{hyps[0].text}", flush=True)
    if failed:
        print(f"{failed} of {len(paths)} input(s) failed", file=sys.stderr)
    return 1 if failed else 0


def register(subparsers) -> None:
    p = subparsers.add_parser("decode", help="transcribe files with a checkpoint", description=__doc__)
    p.add_argument("inputs", nargs="+", help="audio/video files, frame folders, or folders of files")
    p.add_argument("--checkpoint", "-c", required=True, help="a checkpoint written by crnn train (best.pt)")
    p.add_argument("--json", action="store_true", help="JSON lines: path, text, score, confidence, words with times")
    p.add_argument("--ctm", action="store_true", help="CTM lines: utterance, channel, start, duration, word, confidence")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, help="file reading processes (default: 0 for a few files, else up to 4)")
    p.add_argument("--threads", type=int, help="CPU compute threads (default: the cores the readers leave free)")
    st = p.add_argument_group("streaming (forward-only audio models)")
    st.add_argument("--stream", action="store_true",
                    help="feed each input chunk by chunk as it would arrive live; '-' reads 16-bit mono PCM "
                         "at the model's rate from stdin")
    st.add_argument("--chunk-ms", type=float, default=100.0, help="chunk length in milliseconds (default: 100)")
    st.add_argument("--partial", action="store_true", help="also print 'path<TAB>partial<TAB>text' as it grows")
    from crnn.cli.decode_args import add_decode_args

    add_decode_args(p)
    add_plugin_arg(p)
    p.set_defaults(func=main)

"""``crnn align``: where the words of a KNOWN transcript lie in audio, video or text-line image files.

    crnn align -c best.pt --text "the transcript" call.wav            # one JSON line on stdout
    crnn align -c best.pt --manifest rows.jsonl --output-dir out --format json,ctm,srt
    crnn align -c actions.pt --text "move_left grow" clip.mp4 --output-dir out --format json,frames
    crnn align -c digits-en --transcript talk.txt talk.wav --output-dir out --format json,segments,srt

CTC forced alignment (Viterbi) of the transcript over the model's outputs: audio gives words and tokens
with start/end seconds (JSON, CTM, SRT, VTT), video/features a segment per label in input frames and
seconds and a per-frame label file, text lines each character's pixel columns. Every word gets a score,
the mean per-frame log-probability of its aligned path: a low one flags text that does not match.
A transcript the model cannot write, or one longer than the input allows, is an error naming the file.
--text aligns the whole input at once; inputs longer than --max-seconds are refused. A long recording
(an hour) takes --transcript, a text file with one segment (utterance, sentence) per line: it is aligned in
windows, each line gets its start, end, words and score, and lines whose score falls below --flag-below
(text that does not match the audio there) are flagged.
"""
from __future__ import annotations

import argparse
import sys

from crnn.cli.common import add_plugin_arg, load_plugins, positive_float, positive_int


def main(args: argparse.Namespace) -> int:
    import torch

    from crnn.inference.align import align_files
    from crnn.inference.align_outputs import alignment_paths, dumps, parse_align_formats, write_alignment
    from crnn.model.checkpoint import CheckpointError, load_model
    from crnn.runtime import pick_device

    load_plugins(args.plugin)
    if args.transcript is not None:
        return _align_long(args)
    if bool(args.inputs) == bool(args.manifest):
        return _usage("give FILE... with --text, or --manifest M.jsonl (rows with path and text), not both")
    if args.inputs and len(args.text) != len(args.inputs):
        return _usage(f"{len(args.inputs)} file(s) need {len(args.inputs)} --text (one per file, in order), "
                      f"got {len(args.text)}")
    if args.manifest and args.text:
        return _usage("--text goes with FILE arguments; a manifest's rows carry their own text")
    if args.format != "json" and not args.output_dir:
        return _usage("--format needs --output-dir (stdout takes JSON lines)")
    try:
        device = pick_device(args.device)
        if device.type == "cpu" and args.threads:
            torch.set_num_threads(args.threads)
        model = load_model(args.checkpoint, device=device)
    except (CheckpointError, RuntimeError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    try:
        formats = parse_align_formats(args.format, model.modality)
    except ValueError as e:
        return _usage(str(e))
    if args.manifest:
        from crnn.data.manifest import read_manifest

        rows = read_manifest(args.manifest)  # ManifestError: `error: ...`, exit 1
        items = [{k: r[k] for k in ("path", "text", "offset", "duration") if k in r} for r in rows]
    else:
        items = list(zip(args.inputs, args.text))
    if not items:
        return _usage("no inputs to align")
    names = [str(it["path"] if isinstance(it, dict) else it[0]) for it in items]
    try:
        targets = alignment_paths(names, args.output_dir, formats) if args.output_dir else None
    except ValueError as e:
        return _usage(str(e))
    failed = 0
    for name, r in zip(names, align_files(model, items, max_seconds=args.max_seconds,
                                          spans=args.frame_spans, edges=args.word_edges)):
        if r.error:
            failed += 1
            print(f"error: {r.error}", file=sys.stderr)
            if targets is None:
                print(dumps(r.to_json()), flush=True)
            continue
        if targets is None:
            print(dumps(r.to_json()), flush=True)
            continue
        try:
            write_alignment(r, targets[name])
        except OSError as e:  # a full disk, a read-only --output-dir
            failed += 1
            print(f"error: {e.filename or r.path}: cannot write output ({e.strerror or e})", file=sys.stderr)
    if failed:
        print(f"{failed} of {len(items)} input(s) failed", file=sys.stderr)
    return 1 if failed else 0


def _align_long(args: argparse.Namespace) -> int:
    """``--transcript``: one long recording, its transcript's lines aligned in windows."""
    import torch

    from crnn.data.audio.reader import AudioReadError
    from crnn.inference.align import AlignmentError
    from crnn.inference.align_long import align_segments, read_transcript_lines
    from crnn.inference.align_outputs import dumps, parse_long_formats, write_long_alignment
    from crnn.model.checkpoint import CheckpointError, load_model
    from crnn.runtime import pick_device

    if len(args.inputs) != 1 or args.manifest or args.text:
        return _usage("--transcript goes with one recording (FILE), without --text or --manifest")
    if args.format != "json" and not args.output_dir:
        return _usage("--format needs --output-dir (stdout takes one JSON line)")
    try:
        formats = parse_long_formats(args.format)
    except ValueError as e:
        return _usage(str(e))
    try:
        device = pick_device(args.device)
        if device.type == "cpu" and args.threads:
            torch.set_num_threads(args.threads)
        model = load_model(args.checkpoint, device=device).eval()
        lines = read_transcript_lines(args.transcript)
        result = align_segments(model, args.inputs[0], lines, flag_below=args.flag_below, edges=args.word_edges)
    except (CheckpointError, AlignmentError, AudioReadError, RuntimeError, OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.output_dir:
        try:
            write_long_alignment(result, args.output_dir, formats)
        except OSError as e:
            print(f"error: {e.filename or args.output_dir}: cannot write output ({e.strerror or e})", file=sys.stderr)
            return 1
    else:
        print(dumps(result.to_json()), flush=True)
    flagged = result.flagged
    if flagged:
        shown = ", ".join(str(s.index + 1) for s in flagged[:20]) + (" ..." if len(flagged) > 20 else "")
        print(f"warning: {args.inputs[0]}: {len(flagged)} of {len(result.segments)} transcript line(s) score below "
              f"{args.flag_below:g} (the text may not match the audio there): line(s) {shown}", file=sys.stderr)
    return 0


def _usage(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def register(subparsers) -> None:
    p = subparsers.add_parser("align", help="align known transcripts to files (word/label/character timings)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="*", metavar="FILE", help="audio/video/text-line image files or frame folders")
    p.add_argument("--checkpoint", "-c", "--model", dest="checkpoint", required=True, metavar="CK|NAME",
                   help="a model: a checkpoint written by crnn train (best.pt), or the name of a shipped model "
                        "(crnn models)")
    p.add_argument("--text", action="append", default=[], metavar="TRANSCRIPT",
                   help="the known transcript of a FILE (labels space-separated); once per FILE, in order")
    p.add_argument("--transcript", metavar="TXT",
                   help="a long recording's transcript, one segment (utterance, sentence) per line: the lines are "
                        "aligned in windows (any length; audio models), each with start, end, words and a score")
    p.add_argument("--flag-below", type=float, default=-3.0, metavar="SCORE",
                   help="--transcript: flag lines whose tokens' mean log-probability is below SCORE (default: "
                        "%(default)s, about 5 %% probability)")
    p.add_argument("--manifest", metavar="M",
                   help="a manifest (JSONL / NeMo / CSV / TSV or a corpus folder): rows with path and text "
                        "(audio rows may have offset and duration)")
    p.add_argument("--output-dir", metavar="DIR",
                   help="write one file per input and format (call.wav -> DIR/call.ctm; frames: DIR/clip.frames.txt)")
    p.add_argument("--format", default="json", metavar="LIST",
                   help="with --output-dir: comma-separated; audio: json,ctm,srt,vtt; video/features: "
                        "json,frames,ctm,srt,vtt; text lines: json; --transcript: json,segments,srt,vtt,ctm "
                        "(segments: Kaldi's; subtitles: a cue per line) (default: json)")
    p.add_argument("--frame-spans", choices=["onset", "midpoint", "emitted"], default="onset",
                   help="video/features: 'onset' runs each label from its CTC spike to the next label's (the better "
                        "boundaries, measured: BENCHMARKS.md); 'midpoint' gives every frame to the nearest aligned "
                        "label (boundaries halfway between spikes); 'emitted' keeps only the frames the CTC path "
                        "emits a label on, the rest 'background' (default: onset)")
    p.add_argument("--word-edges", choices=["energy", "ctc"], default="energy",
                   help="audio: 'energy' moves each word's start and end from its CTC spikes to the sound around them "
                        "(the pause between two words, the quietest moment in connected speech); 'ctc' keeps the "
                        "first and last frames of the word's CTC path (default: energy)")
    p.add_argument("--max-seconds", type=positive_float, default=60.0, metavar="N",
                   help="refuse inputs longer than N seconds: alignment runs on the whole input at once "
                        "(default: 60)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=positive_int, help="CPU compute threads")
    add_plugin_arg(p)
    p.set_defaults(func=main)

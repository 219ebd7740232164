"""``crnn eval``: decode a manifest with a trained model and report CER / WER.

Speech models report CER and WER; text-line models CER, WER and line accuracy (lines read without an
error); video and feature models report the label error rate (WER with
labels as words) and, where the manifest has frame-level ground truth, frame accuracy from the
forced alignment of the reference labels. Rows training would drop (missing files, empty
transcripts, unknown symbols, negative durations) are dropped and reported the same way here, and the
exit status is 1 if any item could not be scored. An item whose reference is longer than CTC lets its
output frames hold is decoded and scored (its errors count) and named in a note.

Example::

    crnn eval -c runs/digits/best.pt data/tts_digits/test.jsonl -o test_hyps.jsonl
    crnn eval -c model.onnx data/tts_digits/test.jsonl          # an exported file, run by onnxruntime
    crnn eval -c runs/digits/best.pt --int8 data/tts_digits/test.jsonl
"""
from __future__ import annotations

import argparse
import json
import sys

from crnn.cli.common import DeprecatedAlias, add_plugin_arg, load_plugins, non_negative_int, positive_int
from crnn.data.manifest import manifest_formats
from crnn.cli.decode_args import add_decode_args, options_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval", help="decode a manifest and report CER / WER",
        description="Decode every utterance of a manifest (JSONL / NeMo / CSV / TSV or a corpus folder) "
                    "and print corpus CER and WER.",
    )
    p.add_argument("manifest", help="manifest file or corpus folder with reference transcripts")
    p.add_argument("--checkpoint", "-c", "--model", dest="checkpoint", required=True, metavar="CK|NAME",
                   help="a model: a checkpoint written by crnn train (best.pt), an exported .onnx file (decode, eval), or the name of a shipped model (crnn models)")
    p.add_argument("--manifest-format", default=None,
                   choices=manifest_formats(),
                   help="corpus layout of the manifest (default: detected from the path)")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write per-utterance JSON lines: path, reference, hypothesis, errors")
    p.add_argument("--out", dest="output", action=DeprecatedAlias, new="-o/--output", help=argparse.SUPPRESS)
    p.add_argument("--int8", action="store_true",
                   help="CPU: score the int8 copy of a .pt checkpoint (PyTorch dynamic quantization)")
    p.add_argument("--batch-size", type=positive_int, default=16, help="utterances per batch (default: 16)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (default: auto)")
    p.add_argument("--workers", type=non_negative_int, default=0, help="DataLoader worker processes (default: 0)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    add_decode_args(p)
    add_plugin_arg(p)
    p.set_defaults(func=run)


def evaluate_manifest(args: argparse.Namespace):
    """Decode the manifest; returns ``(EvalResult, modality, prescan skips)`` and writes ``--out`` rows."""
    from torch.utils.data import DataLoader

    from crnn.cli.decode import load_decoding_model
    from crnn.data.build import make_dataset, prescan, read_rows
    from crnn.data.collate import collate
    from crnn.data.media import modality_of_rows
    from crnn.data.sampler import BucketBatchSampler
    from crnn.decoding import Decoder
    from crnn.runtime import pick_device
    from crnn.evaluation.evaluate import evaluate

    device = pick_device(args.device)
    model = load_decoding_model(args.checkpoint, device)  # a .pt checkpoint, a shipped name or an .onnx file
    if args.int8:
        from crnn.deploy.int8 import int8_for_decoding

        model = int8_for_decoding(model, device)
    rows = read_rows(args.manifest, args.manifest_format)
    if not rows:
        raise ValueError(f"{args.manifest}: no utterances")
    if model.modality != modality_of_rows(rows):
        raise ValueError(f"{args.manifest}: holds {modality_of_rows(rows)} data, but the model in {args.checkpoint} "
                         f"reads {model.modality} (frontend {model.cfg.frontend!r})")
    decoder = Decoder(model.tokenizer, options_from_args(args), frame_shift=model.frame_shift)
    n_rows = len(rows)
    rows, dropped = prescan(rows, model.tokenizer, model, keep_infeasible=True)
    for line in dropped:
        print(f"skipped {line}", file=sys.stderr)
    if not rows:
        raise ValueError(f"{args.manifest}: nothing to score: all {n_rows} row(s) were left out (first: {dropped[0]})")
    dataset = make_dataset(rows, model.tokenizer, model.modality, model.reader_args, train=False)
    lengths = [float(n) for n in dataset.lengths()]
    # Length-sorted batches waste little compute on padding; order does not change the metrics.
    sampler = BucketBatchSampler(lengths, max_items=args.batch_size, shuffle=False)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, num_workers=args.workers)
    out = open(args.output, "w", encoding="utf-8") if args.output else None

    def write_row(path: str, ref: str, hyp: str, counts: dict) -> None:
        if out:
            out.write(json.dumps({"path": path, "reference": ref, "hypothesis": hyp, "errors": counts},
                                 ensure_ascii=False) + "\n")

    try:
        from tqdm.auto import tqdm  # progress on stderr, only where a person watches it

        bar = tqdm(loader, unit="batch", file=sys.stderr, dynamic_ncols=True, leave=False,
                   disable=args.quiet or not sys.stderr.isatty())
        result = evaluate(model, bar, decoder, device=device, on_item=write_row, what=str(args.manifest))
    finally:
        if out:
            out.close()
    for line in result.skipped:
        print(f"skipped {line}", file=sys.stderr)
    for line in result.too_short:
        print(f"note: {line} (scored: the model cannot output it in full)", file=sys.stderr)
    return result, model.modality, dropped


def run(args: argparse.Namespace) -> int:
    load_plugins(args.plugin)
    r, modality, dropped = evaluate_manifest(args)  # expected failures become `error: ...` in crnn.cli.main
    failed = len(dropped) + len(r.skipped)
    skipped = f", {failed} skipped" if failed else ""
    if r.too_short:
        skipped += f", {len(r.too_short)} too fast for the model's frame rate (scored)"
    if modality == "audio":
        print(f"CER {100 * r.cer:.2f}% ({r.char_errors}/{r.chars} chars)  "
              f"WER {100 * r.wer:.2f}% ({r.word_errors}/{r.words} words)  {r.items} utterances{skipped}")
    elif modality == "image":
        print(f"CER {100 * r.cer:.2f}% ({r.char_errors}/{r.chars} chars)  "
              f"WER {100 * r.wer:.2f}% ({r.word_errors}/{r.words} words)  "
              f"line accuracy {100 * r.exact_rate:.2f}% ({r.exact}/{r.items} lines){skipped}")
    else:
        acc = "" if r.frame_accuracy is None else f"  frame accuracy {100 * r.frame_accuracy:.2f}%"
        print(f"label WER {100 * r.wer:.2f}% ({r.word_errors}/{r.words} labels){acc}  {r.items} clips{skipped}")
    if args.output:
        print(f"per-utterance results: {args.output}")
    if failed:
        print(f"error: {failed} item(s) of {args.manifest} could not be scored (see 'skipped' above)", file=sys.stderr)
    return 1 if failed else 0

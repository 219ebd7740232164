"""``crnn eval``: decode a manifest with a trained model and report CER / WER.

Speech models report CER and WER; video and feature models report the label error rate (WER with
labels as words) and, where the manifest has frame-level ground truth, frame accuracy from the
forced alignment of the reference labels.

Example::

    crnn eval --checkpoint runs/digits/best.pt data/tts_digits/test.jsonl --out test_hyps.jsonl
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

try:  # shared decoding flags (beam, LM, ...) when that module is present
    from crnn.decoding.options import Decoder, add_decode_args, options_from_args
except ImportError:
    Decoder = add_decode_args = options_from_args = None  # type: ignore[assignment]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval", help="decode a manifest and report CER / WER",
        description="Decode every utterance of a manifest (JSONL / NeMo / CSV / TSV or a LibriSpeech folder) "
                    "and print corpus CER and WER.",
    )
    p.add_argument("manifest", help="manifest file or LibriSpeech folder with reference transcripts")
    p.add_argument("--checkpoint", required=True, help="trained model checkpoint (.pt)")
    p.add_argument("--out", help="write per-utterance JSON lines: path, reference, hypothesis, errors")
    p.add_argument("--batch-size", type=int, default=16, help="utterances per batch (default: 16)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (default: auto)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (default: 0)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    if add_decode_args is not None:
        add_decode_args(p)
    p.set_defaults(func=run)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _make_decoder(args: argparse.Namespace, model: Any):
    """(log_probs (B, T, V), lengths (B,)) -> list of hypothesis texts."""
    if Decoder is not None:
        try:
            decoder = Decoder(model.tokenizer, options_from_args(args), frame_shift=model.frame_shift)
        except (ValueError, OSError) as e:  # bad flag values, unreadable LM / lexicon files
            raise SystemExit(f"decoding options: {e}") from None
        return lambda lp, lens: [nbest[0].text for nbest in decoder(lp, lens)]  # best of the n-best
    from crnn.decoding import ctc_greedy

    return lambda lp, lens: [model.tokenizer.decode(h.tokens) for h in ctc_greedy(lp, lens)]


@torch.no_grad()
def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Decode the manifest; returns totals ``{cer, wer, char_errors, chars, word_errors, words, utterances,
    skipped}`` and writes ``--out`` rows when asked."""
    from crnn.data.audio_dataset import AudioDataset
    from crnn.data.build import MODALITY_OF_FRONTEND, modality_of_rows
    from crnn.data.collate import collate
    from crnn.data.video_dataset import make_video_dataset
    from crnn.video_metrics import FrameAccuracy, frame_accuracy
    from crnn.data.manifest import read_manifest
    from crnn.data.sampler import BucketBatchSampler
    from crnn.metrics import error_counts
    from crnn.checkpoint import load_model

    device = _device(args.device)
    model = load_model(args.checkpoint, device=device)
    rows = read_manifest(args.manifest)
    if not rows:
        raise SystemExit(f"{args.manifest}: no utterances")
    modality = MODALITY_OF_FRONTEND.get(model.cfg.frontend, "audio")
    if modality != modality_of_rows(rows):
        raise SystemExit(f"{args.manifest}: holds {modality_of_rows(rows)} data, but the model in {args.checkpoint} "
                         f"reads {modality} (frontend {model.cfg.frontend!r})")
    if modality == "audio":
        dataset = AudioDataset(rows, model.tokenizer, int(model.cfg.frontend_args["sample_rate"]))
        lengths = dataset.lengths()
    else:
        dataset = make_video_dataset(rows, model.tokenizer, model.cfg, train=False)
        lengths = [float(n) for n in dataset.lengths()]
    # Length-sorted batches waste little compute on padding; order does not change the metrics.
    sampler = BucketBatchSampler(lengths, max_items=args.batch_size, shuffle=False)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, num_workers=args.workers)
    decode = _make_decoder(args, model)
    frames = FrameAccuracy()

    totals = {"char_errors": 0, "chars": 0, "word_errors": 0, "words": 0, "utterances": 0, "skipped": 0}
    out = open(args.out, "w", encoding="utf-8") if args.out else None
    try:
        from tqdm.auto import tqdm  # progress on stderr, only where a person watches it

        bar = tqdm(loader, unit="batch", file=sys.stderr, dynamic_ncols=True, leave=False,
                   disable=getattr(args, "quiet", False) or not sys.stderr.isatty())
        for batch in bar:
            for bad in batch.skipped:
                print(f"skipped {bad.path}: {bad.reason}", file=sys.stderr)
            totals["skipped"] += len(batch.skipped)
            if len(batch) == 0:
                continue
            log_probs, lengths = model(batch.x.to(device), batch.x_lens.to(device))  # (B, T', V), (B,)
            if batch.frame_labels is not None:
                tokens = [y[:n].tolist() for y, n in zip(batch.y, batch.y_lens)]
                batch_acc = frame_accuracy(log_probs.cpu(), lengths.cpu(), tokens, batch.frame_labels,
                                           stride=model.frontend.time_stride)
                frames.correct += batch_acc.correct
                frames.total += batch_acc.total
            for path, ref, hyp in zip(batch.paths, batch.texts, decode(log_probs, lengths)):
                counts = error_counts(ref, hyp)
                for k, v in counts.items():
                    totals[k] += v
                totals["utterances"] += 1
                if out:
                    out.write(json.dumps({"path": path, "reference": ref, "hypothesis": hyp, "errors": counts},
                                         ensure_ascii=False) + "\n")
    finally:
        if out:
            out.close()
    totals["cer"] = totals["char_errors"] / max(totals["chars"], 1)
    totals["wer"] = totals["word_errors"] / max(totals["words"], 1)
    totals["modality"] = modality
    totals["frame_accuracy"] = frames.accuracy if frames.total else None
    return totals


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise SystemExit("--batch-size must be at least 1")
    if not Path(args.checkpoint).is_file():
        raise SystemExit(f"{args.checkpoint}: no such checkpoint file")
    t = evaluate(args)
    skipped = f", {t['skipped']} skipped" if t["skipped"] else ""
    if t["modality"] == "audio":
        print(f"CER {100 * t['cer']:.2f}% ({t['char_errors']}/{t['chars']} chars)  "
              f"WER {100 * t['wer']:.2f}% ({t['word_errors']}/{t['words']} words)  {t['utterances']} utterances{skipped}")
    else:
        acc = "" if t["frame_accuracy"] is None else f"  frame accuracy {100 * t['frame_accuracy']:.2f}%"
        print(f"label WER {100 * t['wer']:.2f}% ({t['word_errors']}/{t['words']} labels){acc}  "
              f"{t['utterances']} clips{skipped}")
    if args.out:
        print(f"per-utterance results: {args.out}")
    return 0 if t["utterances"] else 1

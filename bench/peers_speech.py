"""Spoken digits: crnn against PocketSphinx 5 (digit-word grammar) on the same held-out recordings, in one run.

    nice -n 10 python bench/peers_speech.py --checkpoint runs/digits/best.pt --manifest data/fsdd/test_digits.jsonl
    python bench/peers_speech.py --checkpoint runs/digits/best.pt --manifest data/fsdd/test_strings.jsonl \\
        --json /tmp/speech_peers.json

The manifest is JSONL, ``{"path": "...wav", "text": "three seven nine"}`` per line, paths relative to its
folder. Every recording is read once with soundfile (untimed; an unreadable one is skipped by both systems),
then each system decodes the samples in memory, on one thread:

* **crnn**: ``crnn.load_model(--checkpoint)`` (a .pt file or a shipped model's name), greedy decoding through
  ``crnn.inference.transcribe_files`` on ``(samples, sample_rate)`` pairs in batches of ``--batch-size``
  (it resamples to the model's rate itself);
* **PocketSphinx 5**: the US-English 16 kHz acoustic model and CMUdict bundled in the ``pocketsphinx`` wheel,
  no language model, a JSGF grammar of one or more digit words (zero, oh, one .. nine; "oh" is scored as
  "zero"); each recording resampled to 16 kHz (torchaudio), 16-bit, decoded as one utterance
  (``start_utt`` / ``process_raw(full_utt=True)`` / ``end_utt`` / ``hyp``). Not a project dependency
  (``pip install pocketsphinx``): skipped with a message if not installed.

It prints, per system, a markdown row: corpus WER and CER (jiwer, lower case, runs of spaces folded),
utterance accuracy (exact match), wall and CPU milliseconds per utterance (model loading excluded, one untimed
warm-up utterance, resampling included), the real-time factor (wall seconds per second of audio) and the
times as a multiple of crnn's. ``--json OUT`` writes the same rows with the machine, date and manifest.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers_ocr import cpu_seconds, meta_info, read_rows, report, run_peer, score  # noqa: E402

import crnn  # noqa: E402
from crnn.inference import transcribe_files  # noqa: E402

DIGITS_JSGF = """#JSGF V1.0;
grammar digits;
public <digits> = <digit>+;
<digit> = zero | oh | one | two | three | four | five | six | seven | eight | nine;
"""
COLUMNS = [("WER %", "wer", 100, ".2f"), ("CER %", "cer", 100, ".2f"), ("utt acc %", "item_acc", 100, ".1f"),
           ("ms per utt", "ms_per_item", 1, ".1f"), ("CPU ms per utt", "cpu_ms_per_item", 1, ".1f"),
           ("RTF", "rtf", 1, ".4f"), ("x crnn's time", "x_crnn", 1, ".2f"), ("x crnn's CPU", "x_crnn_cpu", 1, ".2f")]
Audio = tuple[np.ndarray, int]


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="crnn spoken-digit model: a .pt checkpoint or a shipped name")
    p.add_argument("--manifest", required=True, help="JSONL of {path, text}, paths relative to its folder")
    p.add_argument("--limit", type=int, default=None, help="first N utterances only")
    p.add_argument("--batch-size", type=int, default=16, help="crnn: utterances per forward pass (default: 16)")
    p.add_argument("--no-pocketsphinx", action="store_true", help="crnn only")
    p.add_argument("--json", help="write the rows here as JSON")
    return p


def read_audio(path: str) -> Audio | None:
    """(mono float32 samples, sample rate), or None when the file cannot be read or holds no audio."""
    try:
        x, sr = sf.read(path, dtype="float32", always_2d=True)
    except Exception:
        return None
    return (x.mean(axis=1), int(sr)) if x.size else None


def lower(texts: list[str | None]) -> list[str | None]:
    return [t.lower() if t is not None else None for t in texts]


def durations(audio: list[Audio | None]) -> list[float]:
    return [len(a[0]) / a[1] if a is not None else 0.0 for a in audio]


def run_crnn(checkpoint: str, audio: list[Audio | None], refs: list[str], batch_size: int) -> dict:
    model = crnn.load_model(checkpoint)
    index = [i for i, a in enumerate(audio) if a is not None]
    inputs = [audio[i] for i in index]
    for _ in transcribe_files(model, inputs[:batch_size], batch_size=batch_size, workers=0):
        pass  # warm-up
    c0, t0 = cpu_seconds(), time.perf_counter()
    results = list(transcribe_files(model, inputs, batch_size=batch_size, workers=0))
    wall_s, cpu_s = time.perf_counter() - t0, cpu_seconds() - c0
    hyps: list[str | None] = [None] * len(audio)
    for i, r in zip(index, results):
        hyps[i] = None if r.error else r.text
    n_params = sum(p.numel() for p in model.parameters())
    return score("crnn (greedy)", lower(refs), lower(hyps), wall_s, cpu_s, durations(audio),
                 note=f"{checkpoint}: {n_params / 1e6:.2f} M params, {model.cfg.cell}, {model.sample_rate} Hz, "
                      f"batch {batch_size}")


def pocketsphinx_recogniser():
    """A function (samples, sample_rate) -> digit words, and the package's version."""
    from importlib.metadata import version

    from pocketsphinx import Decoder

    decoder = Decoder(lm=None, samprate=16000, loglevel="FATAL")
    decoder.add_jsgf_string("digits", DIGITS_JSGF)
    decoder.activate_search("digits")

    def recognise(item: Audio) -> str:
        x, sr = item
        if sr != 16000:
            x = AF.resample(torch.from_numpy(x), sr, 16000).numpy()
        pcm = (np.clip(x, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        words = hyp.hypstr.split() if hyp is not None else []
        return " ".join("zero" if w == "oh" else w for w in words)

    return recognise, f"pocketsphinx {version('pocketsphinx')}, en-us 16 kHz acoustic model, digit grammar"


def main(args: argparse.Namespace) -> None:
    warnings.filterwarnings("ignore", message=".*pin_memory.*")  # DataLoaders on a CPU-only machine
    torch.set_num_threads(1)
    rows_in, bad = read_rows(args.manifest, args.limit)
    if not rows_in:
        raise SystemExit(f"{args.manifest}: no rows")
    refs = [t for _, t in rows_in]
    audio = [read_audio(p) for p, _ in rows_in]
    if all(a is None for a in audio):
        raise SystemExit(f"{args.manifest}: no readable recording")
    rows = [run_crnn(args.checkpoint, audio, refs, args.batch_size)]
    if not args.no_pocketsphinx:
        try:
            recognise, note = pocketsphinx_recogniser()
        except (ImportError, OSError, RuntimeError, ValueError) as e:
            print(f"PocketSphinx: not installed or unusable, skipped ({type(e).__name__}: {e})")
        else:
            row = run_peer("PocketSphinx (JSGF digits)", recognise, audio, lower(refs), seconds=durations(audio))
            rows.append(dict(row, note=note))
    meta = meta_info(args.manifest, args.checkpoint, len(rows_in), bad)
    meta["audio"] = f"{sum(durations(audio)):.1f} s in {sum(a is not None for a in audio)} readable recordings"
    report(rows, meta, COLUMNS, "utt", args.json)


if __name__ == "__main__":
    main(get_args_parser().parse_args())

"""Reading rate of each corpus layout: manifest parsing, and audio through the training DataLoader.

    nice -n 10 python bench/corpora.py                  # 10,000 rows of each kind
    python bench/corpora.py --rows 2000 --workers 2

Writes, to a temporary folder, ``--rows`` short FLAC files (1 s, 16 kHz) listed in every layout
(JSONL, Kaldi, Common Voice TSV, Hugging Face audiofolder, WeNet data.list), and ``--rows`` 1 s
segments of 100 s FLAC recordings (Kaldi ``segments``, JSONL ``offset``/``duration``, WeNet
``start``/``end``). For each it measures

* **parse**: ``read_manifest`` rows per second;
* **read**: the rows through ``AudioDataset`` + ``DataLoader`` (batches of 32, ``--workers``
  workers: the trainer's CPU default is 1), in rows/s and seconds of audio per second;

and prints each read rate as a ratio to the JSONL manifest of the short files, measured in the same
run. For segments it also times reading the whole recording then slicing (what a reader without
seeking does) on a few hundred rows.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

from crnn.data.audio import read_audio  # noqa: E402
from crnn.data.audio.dataset import AudioDataset  # noqa: E402
from crnn.data.collate import collate  # noqa: E402
from crnn.data.manifest import read_manifest  # noqa: E402
from crnn.tokenizer import Tokenizer  # noqa: E402

SR = 16000
WORDS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "zero"]


def write_short(root: Path, n: int, rng: np.random.Generator) -> dict[str, Path]:
    """n short FLAC clips in root/clips, listed in every layout. Returns layout name -> source path."""
    clips = root / "clips"
    clips.mkdir(parents=True)
    names, texts = [], []
    for i in range(n):
        wave = (0.1 * rng.standard_normal(SR)).astype(np.float32)
        names.append(f"u{i:05d}.flac")
        texts.append(" ".join(rng.choice(WORDS, size=3)))
        sf.write(clips / names[-1], wave, SR)
    (root / "short.jsonl").write_text("".join(json.dumps({"path": f"clips/{a}", "text": t, "duration": 1.0}) + "\n"
                                              for a, t in zip(names, texts)))
    kaldi = root / "kaldi_short"
    kaldi.mkdir()
    (kaldi / "wav.scp").write_text("".join(f"{Path(a).stem} {clips / a}\n" for a in names))
    (kaldi / "text").write_text("".join(f"{Path(a).stem} {t}\n" for a, t in zip(names, texts)))
    (kaldi / "utt2dur").write_text("".join(f"{Path(a).stem} 1.0\n" for a in names))
    (root / "train.tsv").write_text("client_id\tpath\tsentence\tage\n" + "".join(
        f"c\t{a}\t{t}\t\n" for a, t in zip(names, texts)))
    (root / "metadata.csv").write_text("file_name,transcription\n" + "".join(
        f"clips/{a},{t}\n" for a, t in zip(names, texts)))
    (root / "data.list").write_text("".join(json.dumps({"key": Path(a).stem, "wav": f"clips/{a}", "txt": t}) + "\n"
                                            for a, t in zip(names, texts)))
    return {"jsonl": root / "short.jsonl", "kaldi": kaldi, "commonvoice": root / "train.tsv",
            "audiofolder": root, "wenet": root / "data.list"}


def write_segments(root: Path, n: int, rng: np.random.Generator, seconds: int = 100) -> dict[str, Path]:
    """n 1 s segments of 100 s FLAC recordings, in Kaldi, JSONL and WeNet form."""
    recs = root / "recordings"
    recs.mkdir(parents=True)
    per = seconds // 2  # a 1 s segment every 2 s
    jsonl, wenet, scp, text, segs = [], [], [], [], []
    for r in range(-(-n // per)):
        name = recs / f"rec{r:03d}.flac"
        sf.write(name, (0.1 * rng.standard_normal(seconds * SR)).astype(np.float32), SR)
        scp.append(f"rec{r:03d} {name}\n")
        for k in range(min(per, n - r * per)):
            utt, start, words = f"rec{r:03d}-{k:03d}", 2.0 * k + 0.5, " ".join(rng.choice(WORDS, size=3))
            segs.append(f"{utt} rec{r:03d} {start:.2f} {start + 1:.2f}\n")
            text.append(f"{utt} {words}\n")
            jsonl.append(json.dumps({"path": str(name), "text": words, "offset": start, "duration": 1.0}) + "\n")
            wenet.append(json.dumps({"key": utt, "wav": str(name), "txt": words, "start": start, "end": start + 1}) + "\n")
    kaldi = root / "kaldi_segments"
    kaldi.mkdir()
    for fname, lines in (("wav.scp", scp), ("text", text), ("segments", segs)):
        (kaldi / fname).write_text("".join(lines))
    (root / "segments.jsonl").write_text("".join(jsonl))
    (root / "segments.list").write_text("".join(wenet))
    return {"kaldi segments": kaldi, "jsonl offset": root / "segments.jsonl", "wenet start/end": root / "segments.list"}


def read_rate(rows: list[dict], tokenizer: Tokenizer, workers: int) -> tuple[float, float]:
    """(rows/s, audio s/s) of the rows through AudioDataset + DataLoader."""
    ds = AudioDataset(rows, tokenizer, SR)
    loader = DataLoader(ds, batch_size=32, collate_fn=collate, num_workers=workers,
                        prefetch_factor=4 if workers else None)
    t0 = time.perf_counter()
    samples = items = 0
    for batch in loader:
        samples += int(batch.x_lens.sum())
        items += len(batch)
    dt = time.perf_counter() - t0
    if items != len(rows):
        raise RuntimeError(f"read {items} of {len(rows)} rows")
    return items / dt, samples / SR / dt


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=10_000)
    p.add_argument("--workers", type=int, default=1, help="DataLoader workers (default: 1, the trainer's CPU default)")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    tokenizer = Tokenizer.build([" ".join(WORDS)], text_norm="english")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        sources = write_short(Path(tmp) / "short", args.rows, rng)
        sources.update(write_segments(Path(tmp) / "long", args.rows, rng))
        print(f"wrote the data in {time.perf_counter() - t0:.0f} s; {machine(torch.device('cpu'))}, "
              f"{args.workers} worker(s)", file=sys.stderr)
        print("| layout | rows | parse rows/s | read rows/s | read audio s/s | x JSONL |")
        print("|---|---:|---:|---:|---:|---:|")
        reference = None
        for name, source in sources.items():
            t0 = time.perf_counter()
            rows = read_manifest(source)
            parse = len(rows) / (time.perf_counter() - t0)
            rps, aps = read_rate(rows, tokenizer, args.workers)
            reference = reference or rps
            print(f"| {name} | {len(rows)} | {parse:,.0f} | {rps:,.0f} | {aps:,.0f} | {rps / reference:.2f} |",
                  flush=True)
        # Without seeking: decode the whole 100 s recording, then slice (a few hundred rows suffice).
        rows = read_manifest(sources["jsonl offset"])[:200]
        t0 = time.perf_counter()
        for row in rows:
            wav = read_audio(row["path"], SR)
            wav[int(row["offset"] * SR): int((row["offset"] + row["duration"]) * SR)]
        rps = len(rows) / (time.perf_counter() - t0)
        print(f"| segments, whole file read then sliced (no workers) | {len(rows)} | | {rps:,.1f} | {rps:,.1f} | "
              f"{rps / reference:.3f} |")


if __name__ == "__main__":
    main()

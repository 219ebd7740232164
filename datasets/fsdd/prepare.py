"""Manifests from the Free Spoken Digit Dataset: real people saying digits, speaker-disjoint splits.

    python datasets/fsdd/prepare.py --root PATH/free-spoken-digit-dataset --out data/fsdd \\
        --dev-speakers yweweler --test-speakers lucas --adapt-per-digit 5

``--root`` is the dataset's repository (or its ``recordings/`` folder): ``{digit}_{speaker}_{index}.wav``,
8 kHz. Speakers not named by ``--dev-speakers``/``--test-speakers`` train. For each split it writes

- ``<split>_digits.jsonl``: the isolated recordings as they are (rows point at the original files);
- ``<split>.jsonl``: both together;
- ``<split>_strings.jsonl``: connected digit strings (``--min-digits``..``--max-digits``) made by joining one
  speaker's recordings of that split with natural gaps, a level change per digit, an overall level, room
  noise (white/pink/brown at ``--snr`` dB) and, now and then, a simulated room (reverberation); FLAC files
  under ``<out>/audio/<split>/``.

With ``--adapt-per-digit K`` the first K takes of each digit of every test speaker go to ``adapt.jsonl``
(a few recordings of a new speaker to fine-tune on) and are left out of every test file, so the
before/after comparison of ``crnn train --init-from`` reads the same unseen takes. ``words.txt`` is
the lexicon (the ten digit words). Files derived from FSDD keep its licence (CC BY-SA 4.0).
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import torch
import torchaudio

from crnn.data.audio import AudioReadError, read_audio, write_audio
from crnn.data.audio.augment import colored_noise, simulated_rir
from crnn.data.corpora.fsdd import DIGIT_WORDS, read_fsdd
from crnn.data.manifest import ManifestError, write_manifest

SAMPLE_RATE = 8000  # FSDD's own rate


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", required=True, help="FSDD repository root or its recordings/ folder")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--dev-speakers", nargs="+", required=True, help="speakers held out for validation")
    p.add_argument("--test-speakers", nargs="*", default=[], help="speakers held out for testing")
    p.add_argument("--strings-per-speaker", type=int, default=600, help="connected strings per training speaker")
    p.add_argument("--eval-strings-per-speaker", type=int, default=150, help="connected strings per dev/test speaker")
    p.add_argument("--min-digits", type=int, default=2)
    p.add_argument("--max-digits", type=int, default=7)
    p.add_argument("--gap", type=float, nargs=2, default=(0.05, 0.5), metavar=("MIN", "MAX"),
                   help="pause between digits, seconds")
    p.add_argument("--snr", type=float, nargs=2, default=(10.0, 35.0), metavar=("LOW", "HIGH"),
                   help="room noise level, dB SNR")
    p.add_argument("--reverb-prob", type=float, default=0.3, help="share of strings in a simulated room")
    p.add_argument("--adapt-per-digit", type=int, default=0,
                   help="takes per digit of each test speaker set aside in adapt.jsonl (0: none)")
    p.add_argument("--seed", type=int, default=0)
    return p


def join_digits(waves: list[torch.Tensor], rng: random.Random, gen: torch.Generator, gap: tuple[float, float],
                snr: tuple[float, float], reverb_prob: float) -> tuple[torch.Tensor, dict]:
    """One speaker's digit recordings (each (S_i,)) -> one connected utterance (S,) and what was done,
    including ``spans``: each recording's start and end in the utterance, in seconds (its known joints)."""
    lead = torch.zeros(int(rng.uniform(0.05, 0.3) * SAMPLE_RATE))
    pieces = [lead]
    spans, at = [], lead.numel()
    for i, w in enumerate(waves):
        w = w - w.mean()
        pieces.append(w * 10 ** (rng.uniform(-4.0, 4.0) / 20))  # a speaker's level drifts from word to word
        spans.append((round(at / SAMPLE_RATE, 4), round((at + w.numel()) / SAMPLE_RATE, 4)))
        pieces.append(torch.zeros(int(rng.uniform(*gap) * SAMPLE_RATE)) if i < len(waves) - 1 else lead.clone())
        at += w.numel() + pieces[-1].numel()
    x = torch.cat(pieces)
    info: dict = {"spans": spans}
    if rng.random() < reverb_prob:
        rt60 = rng.uniform(0.15, 0.6)
        rir = simulated_rir(rt60, SAMPLE_RATE, direct_ratio_db=rng.uniform(0.0, 10.0), generator=gen)
        x = torchaudio.functional.fftconvolve(x, rir)[: x.numel()]
        info["rt60"] = round(rt60, 3)
    color = rng.choice(["white", "pink", "brown"])
    level = float(rng.uniform(*snr))
    speech_rms = x.pow(2).mean().sqrt().clamp_min(1e-5)
    x = x + colored_noise(x.numel(), color, gen) * speech_rms / 10 ** (level / 20)
    x = x * 10 ** (rng.uniform(-12.0, 0.0) / 20) / x.abs().max().clamp_min(1e-5) * 0.9
    info.update(noise=color, snr=round(level, 1))
    return x, info


def make_strings(rows: list[dict], n_per_speaker: int, split: str, out: Path, args: argparse.Namespace,
                 rng: random.Random, gen: torch.Generator) -> list[dict]:
    """``n_per_speaker`` connected strings per speaker of ``rows``, written as FLAC; their manifest rows."""
    by_speaker: dict[str, list[dict]] = {}
    for r in rows:
        by_speaker.setdefault(r["speaker"], []).append(r)
    cache: dict[str, torch.Tensor] = {}
    strings = []
    for speaker in sorted(by_speaker):
        takes = by_speaker[speaker]
        for k in range(n_per_speaker):
            chosen = [rng.choice(takes) for _ in range(rng.randint(args.min_digits, args.max_digits))]
            waves = []
            for r in chosen:
                if r["path"] not in cache:
                    cache[r["path"]] = read_audio(r["path"], SAMPLE_RATE)
                waves.append(cache[r["path"]])
            wav, info = join_digits(waves, rng, gen, tuple(args.gap), tuple(args.snr), args.reverb_prob)
            spans = info.pop("spans")
            info["words"] = [{"word": r["text"], "start": a, "end": b} for r, (a, b) in zip(chosen, spans)]
            uid = f"{split}-{speaker}-{k:04d}"
            path = out / "audio" / split / f"{uid}.flac"
            write_audio(path, wav, SAMPLE_RATE)
            strings.append({"path": str(path), "text": " ".join(r["text"] for r in chosen), "id": uid,
                            "speaker": speaker, "duration": round(wav.numel() / SAMPLE_RATE, 3),
                            "takes": [r["id"] for r in chosen], **info})
    return strings


def main(args: argparse.Namespace) -> int:
    out = Path(args.out)
    try:
        rows = read_fsdd(args.root)
    except ManifestError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    speakers = sorted({r["speaker"] for r in rows})
    dev, test = set(args.dev_speakers), set(args.test_speakers)
    unknown = (dev | test) - set(speakers)
    if unknown:
        print(f"error: {args.root}: no recordings of speaker(s) {sorted(unknown)}; speakers: {', '.join(speakers)}",
              file=sys.stderr)
        return 1
    if dev & test:
        print(f"error: speakers {sorted(dev & test)} are in both --dev-speakers and --test-speakers", file=sys.stderr)
        return 2
    train = set(speakers) - dev - test
    if not train:
        print("error: every speaker is held out: leave at least one for training", file=sys.stderr)
        return 2
    if not args.min_digits >= 1 or args.max_digits < args.min_digits:
        print("error: --min-digits must be >= 1 and <= --max-digits", file=sys.stderr)
        return 2
    adapt = [r for r in rows if r["speaker"] in test and r["index"] < args.adapt_per_digit]
    adapt_ids = {r["id"] for r in adapt}
    splits = {"train": train, "dev": dev, "test": test}
    rng, gen = random.Random(args.seed), torch.Generator().manual_seed(args.seed)
    summary = {}
    try:
        for split, members in splits.items():
            if not members:
                continue
            digits = [r for r in rows if r["speaker"] in members and r["id"] not in adapt_ids]
            n = args.strings_per_speaker if split == "train" else args.eval_strings_per_speaker
            strings = make_strings(digits, n, split, out, args, rng, gen)
            write_manifest(out / f"{split}_digits.jsonl", digits)
            write_manifest(out / f"{split}_strings.jsonl", strings)
            write_manifest(out / f"{split}.jsonl", digits + strings)
            summary[split] = {"speakers": sorted(members), "digits": len(digits), "strings": len(strings)}
        if adapt:
            write_manifest(out / "adapt.jsonl", adapt)
            summary["adapt"] = {"speakers": sorted(test), "digits": len(adapt)}
    except AudioReadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    (out / "words.txt").write_text("\n".join(DIGIT_WORDS) + "\n")
    (out / "splits.json").write_text(json.dumps(summary, indent=1) + "\n")
    for split, s in summary.items():
        print(f"{split}: {', '.join(s['speakers'])}: {s['digits']} recordings"
              + (f", {s['strings']} strings" if "strings" in s else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))

"""Spoken-digit corpus synthesised with espeak-ng: train/dev/test manifests with unseen test speakers.

    python datasets/tts_digits/prepare.py --out data/tts_digits

Each utterance speaks 1-7 random digits ("three seven nine") with one English voice and one voice
variant (``-v en-us+m3``), a random speed (``-s``), pitch (``-p``) and word gap (``-g``); it is
resampled to 16 kHz, and half of the utterances get white/pink/brown noise at 5-25 dB SNR. Voices
and variants are split into disjoint train/dev/test sets, so dev and test speakers are never heard
in training. Needs Debian's espeak-ng (``apt-get install espeak-ng sox``).

Writes ``<out>/audio/<split>/*.flac``, ``<out>/{train,dev,test}.jsonl`` (rows ``path, text, duration,
voice, variant, speed, pitch, gap, snr``), ``<out>/speakers.json`` (the voice/variant split) and
``<out>/words.txt`` (the ten digit words: a lexicon for ``--lexicon``).
"""
from __future__ import annotations

import argparse
import io
import json
import random
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import soundfile as sf
import torch
import torchaudio

from crnn.data.audio import write_audio
from crnn.data.augment import AugmentConfig, WaveAugment
from crnn.data.manifest import write_manifest

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
SPLITS = ("train", "dev", "test")
HELD_OUT = {"test": 0.25, "dev": 0.125}  # share of voices and of variants reserved for each split


def espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SystemExit("espeak-ng is not installed: apt-get install espeak-ng sox")
    return exe


def _voice_table(exe: str, kind: str) -> list[list[str]]:
    out = subprocess.run([exe, f"--voices={kind}"], capture_output=True, text=True, check=True).stdout
    return [line.split() for line in out.splitlines()[1:] if line.strip()]


def english_voices(exe: str) -> list[str]:
    """espeak-ng's own English voices (columns: pty, language, gender, name, file); MBROLA voices
    are left out because they need the separate mbrola program and voice data."""
    rows = _voice_table(exe, "en")
    return sorted({r[1] for r in rows if len(r) >= 5 and r[4].startswith("gmw/")})


def voice_variants(exe: str) -> list[str]:
    """Variant names usable as ``<voice>+<variant>`` (the file column without its ``!v/`` prefix)."""
    rows = _voice_table(exe, "variant")
    return sorted({r[4].split("/", 1)[1] for r in rows if len(r) >= 5 and r[4].startswith("!v/")})


def split_disjoint(names: list[str], rng: random.Random) -> dict[str, list[str]]:
    """Shuffle names and cut them into disjoint train/dev/test groups (each non-empty)."""
    if len(names) < 3:
        raise SystemExit(f"need at least 3 names to split into train/dev/test, got {names}")
    names = names[:]
    rng.shuffle(names)
    n_test = max(1, round(HELD_OUT["test"] * len(names)))
    n_dev = max(1, round(HELD_OUT["dev"] * len(names)))
    return {"test": sorted(names[:n_test]), "dev": sorted(names[n_test : n_test + n_dev]),
            "train": sorted(names[n_test + n_dev :])}


def synthesize(exe: str, text: str, voice: str, variant: str, speed: int, pitch: int, gap: int) -> tuple[torch.Tensor, int]:
    """espeak-ng -> (S,) float32 samples at espeak's rate (22.05 kHz)."""
    cmd = [exe, "-v", f"{voice}+{variant}", "-s", str(speed), "-p", str(pitch), "-g", str(gap), "--stdout", text]
    wav_bytes = subprocess.run(cmd, capture_output=True, check=True).stdout
    data, sr = sf.read(io.BytesIO(wav_bytes), dtype="float32", always_2d=True)
    return torch.from_numpy(data).mean(dim=1), sr


def make_jobs(args: argparse.Namespace, speakers: dict[str, dict[str, list[str]]]) -> list[dict]:
    """All utterance parameters, drawn up front from one seeded generator (reproducible, thread-free)."""
    rng = random.Random(args.seed)
    counts = {"train": args.num_train, "dev": args.num_dev, "test": args.num_test}
    jobs = []
    for split in SPLITS:
        for i in range(counts[split]):
            words = [rng.choice(DIGITS) for _ in range(rng.randint(args.min_digits, args.max_digits))]
            jobs.append({
                "split": split, "id": f"{split}-{i:05d}", "text": " ".join(words),
                "voice": rng.choice(speakers["voices"][split]), "variant": rng.choice(speakers["variants"][split]),
                "speed": rng.randint(120, 230), "pitch": rng.randint(20, 80), "gap": rng.randint(0, 8),
                "snr": round(rng.uniform(5.0, 25.0), 1) if rng.random() < args.noise_prob else None,
                "seed": rng.getrandbits(31),
            })
    return jobs


@lru_cache(maxsize=None)
def resampler(orig: int, new: int) -> torchaudio.transforms.Resample:
    """One resampling kernel per rate pair, built once and shared by all threads."""
    return torchaudio.transforms.Resample(orig, new)


def render(exe: str, job: dict, out: Path, sample_rate: int, noiser: WaveAugment) -> dict:
    """Synthesise one job, resample, maybe add noise, write FLAC; returns its manifest row."""
    wav, sr = synthesize(exe, job["text"], job["voice"], job["variant"], job["speed"], job["pitch"], job["gap"])
    wav = resampler(sr, sample_rate)(wav) if sr != sample_rate else wav
    if job["snr"] is not None:
        wav = noiser.add_noise(wav, job["snr"], torch.Generator().manual_seed(job["seed"]))
    peak = float(wav.abs().max())
    if peak > 0.99:  # noise can push peaks past full scale; FLAC stores integers
        wav = wav * (0.99 / peak)
    path = out / "audio" / job["split"] / f"{job['id']}.flac"
    write_audio(path, wav, sample_rate)
    row = {k: job[k] for k in ("id", "text", "voice", "variant", "speed", "pitch", "gap", "snr")}
    return {"path": str(path), "duration": round(wav.numel() / sample_rate, 4), **row}


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Synthesise a spoken-digit corpus with espeak-ng.")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--num-train", type=int, default=5000, help="training utterances (default: 5000)")
    p.add_argument("--num-dev", type=int, default=500, help="dev utterances, unseen voices (default: 500)")
    p.add_argument("--num-test", type=int, default=500, help="test utterances, unseen voices (default: 500)")
    p.add_argument("--min-digits", type=int, default=1, help="shortest digit string (default: 1)")
    p.add_argument("--max-digits", type=int, default=7, help="longest digit string (default: 7)")
    p.add_argument("--sample-rate", type=int, default=16000, help="output rate (default: 16000)")
    p.add_argument("--noise-prob", type=float, default=0.5, help="share of utterances with noise (default: 0.5)")
    p.add_argument("--seed", type=int, default=0, help="seed for texts, speakers, noise (default: 0)")
    p.add_argument("--jobs", type=int, default=4, help="parallel espeak-ng processes (default: 4)")
    return p


def main(args: argparse.Namespace) -> int:
    if not 1 <= args.min_digits <= args.max_digits:
        raise SystemExit("need 1 <= --min-digits <= --max-digits")
    exe = espeak()
    torch.set_num_threads(1)  # parallelism comes from the espeak-ng processes
    rng = random.Random(args.seed)
    voices, variants = english_voices(exe), voice_variants(exe)
    speakers = {"voices": split_disjoint(voices, rng), "variants": split_disjoint(variants, rng)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "speakers.json").write_text(json.dumps(speakers, indent=1) + "\n")
    (out / "words.txt").write_text("\n".join(DIGITS) + "\n")  # the lexicon for constrained decoding

    jobs = make_jobs(args, speakers)
    noiser = WaveAugment(AugmentConfig(noise_snr=(5.0, 25.0), noise_prob=1.0), args.sample_rate)
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        rows = list(pool.map(lambda job: render(exe, job, out, args.sample_rate, noiser), jobs))
    elapsed = time.perf_counter() - start
    for split in SPLITS:
        split_rows = [r for r in rows if r["id"].startswith(split + "-")]
        write_manifest(out / f"{split}.jsonl", split_rows)
        hours = sum(r["duration"] for r in split_rows) / 3600
        print(f"{split}: {len(split_rows)} utterances, {hours:.2f} h, {len(speakers['voices'][split])} voices x "
              f"{len(speakers['variants'][split])} variants -> {out / f'{split}.jsonl'}")
    print(f"synthesised {len(rows)} utterances in {elapsed:.1f} s ({len(rows) / max(elapsed, 1e-9):.0f}/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))

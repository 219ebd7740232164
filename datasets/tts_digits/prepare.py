"""Spoken-digit corpus from several synthesizers, with unseen-voice dev/test splits and an unseen-engine test.

    python datasets/tts_digits/prepare.py --out data/tts_digits

Each utterance speaks 1-10 random digits ("three seven nine") as connected speech, with random pauses
(a comma after a digit), speaking rate and pitch, resampled to 16 kHz FLAC; half of them get
white/pink/brown noise at 5-25 dB SNR. Voices come from

- espeak-ng: its English voices x ~100 variants (``-v en-us+m3``), and non-English voices (French,
  Russian, Hindi, Welsh, ...) speaking the English phonemes with their own: accents;
- flite: awb and rms (its kal, kal16 and slt share speakers with festival's voices and go to test);
- festival: kal and ked diphone voices, slt HTS -- **only** in ``test_festival``, which nothing trains
  or tunes on: the unseen engine.

Voices, accents and variants are split into disjoint train/dev/test sets, so dev and test are spoken by
voices never heard in training. ``--engines espeak`` makes the espeak-ng-English-only corpus of earlier
versions (same held-out voices, so its models can be tested on this corpus's test splits).

Writes ``<out>/audio/<split>/*.flac``, ``<out>/{train,dev,test,test_festival}.jsonl`` (rows ``path, text,
duration, id, engine, voice, variant, rate, pitch, pauses, snr``; paths relative to the manifest),
``<out>/speakers.json`` (the voice split) and ``<out>/words.txt`` (a lexicon for ``--lexicon``).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path

import torch
import torchaudio

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tts_engines.py beside this script
import tts_engines as tts  # noqa: E402

from crnn.data.audio import write_audio  # noqa: E402
from crnn.data.audio.augment import AugmentConfig, WaveAugment  # noqa: E402
from crnn.data.manifest import write_manifest  # noqa: E402

DIGITS = tts.DIGITS
SPLITS = ("train", "dev", "test", "test_festival")
HELD_OUT = {"test": 0.25, "dev": 0.125}  # share of voices and of variants reserved for each split
ENGINE_GROUPS = ("espeak", "accent", "flite")  # what --engines chooses from (festival is always test-only)
GROUP_WEIGHT = {"espeak": 0.45, "accent": 0.3, "flite": 0.25}  # share of utterances per group (when present)


def split_disjoint(names: list[str], rng: random.Random) -> dict[str, list[str]]:
    """Shuffle names and cut them into disjoint train/dev/test groups (each non-empty)."""
    if len(names) < 3:
        raise SystemExit(f"need at least 3 names to split into train/dev/test, got {names}")
    names = sorted(names)
    rng.shuffle(names)
    n_test = max(1, round(HELD_OUT["test"] * len(names)))
    n_dev = max(1, round(HELD_OUT["dev"] * len(names)))
    return {"test": sorted(names[:n_test]), "dev": sorted(names[n_test : n_test + n_dev]),
            "train": sorted(names[n_test + n_dev :])}


def discover_voices(engines: set[str], festival: bool) -> tuple[dict, dict]:
    """Voices each engine offers here -> (speakers: per group, the split of its voices; exes: engine -> exe).

    Each group is split with its own seeded generator, so the same voices are held out whichever
    ``--engines`` are chosen."""
    speakers: dict[str, dict[str, list[str]]] = {}
    exes: dict[str, str] = {}
    if engines & {"espeak", "accent"}:
        exe = tts.espeak_exe()
        if exe is None:
            raise SystemExit("espeak-ng is not installed: apt-get install espeak-ng")
        exes["espeak"] = exe
        speakers["variants"] = split_disjoint(tts.espeak_variants(exe), random.Random("variants"))
        if "espeak" in engines:
            speakers["espeak"] = split_disjoint(tts.espeak_english_voices(exe), random.Random("espeak"))
        if "accent" in engines:
            speakers["accent"] = split_disjoint(tts.espeak_accent_voices(exe), random.Random("accent"))
    if "flite" in engines:
        exe = tts.flite_exe()
        if exe is None:
            raise SystemExit("flite is not installed: apt-get install flite (or leave it out of --engines)")
        exes["flite"] = exe
        voices = tts.flite_voices(exe)
        held = [v for v in voices if v in tts.FLITE_HELD_OUT]
        speakers["flite"] = {"train": [v for v in voices if v not in held], "dev": [], "test": held}
    if festival:
        exe = tts.festival_exe()
        voices = tts.festival_voices()
        if exe is None or not voices:
            raise SystemExit("festival is not installed: apt-get install festival festvox-kallpc16k festvox-kdlpc16k "
                             "festvox-us-slt-hts (or pass --num-test-festival 0)")
        exes["festival"] = exe
        speakers["festival"] = {"test_festival": voices}
    return speakers, exes


def make_jobs(args: argparse.Namespace, speakers: dict) -> list[dict]:
    """All utterance parameters, drawn up front from one seeded generator per split (reproducible in any
    pool, and a split does not change when another one's size does)."""
    counts = {"train": args.num_train, "dev": args.num_dev, "test": args.num_test, "test_festival": args.num_test_festival}
    jobs = []
    for split in SPLITS:
        rng = random.Random(f"{args.seed}-{split}")
        if split == "test_festival":
            groups = ["festival"] if "festival" in speakers else []
        else:
            groups = [g for g in ENGINE_GROUPS if speakers.get(g, {}).get(split)]
        if counts[split] and not groups:
            raise SystemExit(f"no voices for the {split} split with the chosen --engines")
        for i in range(counts[split]):
            group = rng.choices(groups, weights=[GROUP_WEIGHT.get(g, 1.0) for g in groups])[0]
            n = rng.randint(args.min_digits, args.max_digits)
            words = [rng.choice(DIGITS) for _ in range(n)]
            pauses = [k < n - 1 and rng.random() < args.pause_prob for k in range(n)]
            job = {"split": split, "id": f"{split}-{i:05d}", "text": " ".join(words), "words": words,
                   "pauses": pauses, "voice": rng.choice(speakers[group][split]), "variant": None, "pitch": None,
                   "rate": round(rng.uniform(0.75, 1.4), 3),  # duration factor: > 1 is slower
                   "engine": "espeak-ng" if group in ("espeak", "accent") else group, "accent": group == "accent",
                   "gap": rng.randint(0, 8) if group in ("espeak", "accent") else None,
                   "snr": round(rng.uniform(5.0, 25.0), 1) if rng.random() < args.noise_prob else None,
                   "seed": rng.getrandbits(31)}
            if job["engine"] == "espeak-ng":
                job["variant"] = rng.choice(speakers["variants"][split])
                job["pitch"] = rng.randint(20, 80)
            jobs.append(job)
    return jobs


@lru_cache(maxsize=None)
def resampler(orig: int, new: int) -> torchaudio.transforms.Resample:
    """One resampling kernel per rate pair and process."""
    return torchaudio.transforms.Resample(orig, new)


_NOISER: WaveAugment | None = None


def _init_worker(niceness: int, sample_rate: int) -> None:
    global _NOISER
    if niceness:
        os.nice(niceness)  # the synthesizers it starts inherit it
    torch.set_num_threads(1)  # parallelism comes from the pool
    _NOISER = WaveAugment(AugmentConfig(noise_snr=(5.0, 25.0), noise_prob=1.0), sample_rate)


def synthesize(job: dict, exes: dict[str, str]) -> tuple[torch.Tensor, int]:
    """One job -> ((S,) float32, rate) from its engine."""
    if job["engine"] == "espeak-ng":
        speed = int(round(175 / job["rate"]))  # espeak-ng's default is 175 words per minute
        return tts.espeak_say(exes["espeak"], job["words"], job["voice"], job["variant"], speed, job["pitch"],
                              job["gap"], job["pauses"], job["accent"])
    say = tts.flite_say if job["engine"] == "flite" else tts.festival_say
    return say(exes[job["engine"]], job["words"], job["voice"], job["rate"], job["pauses"])


def write_utterance(wav: torch.Tensor, sr: int, job: dict, out: str, sample_rate: int) -> tuple[Path, float]:
    """Resample ``wav`` (S,), add the job's noise (if any), write ``<out>/audio/<split>/<id>.flac``;
    returns (absolute path, seconds)."""
    wav = resampler(sr, sample_rate)(wav) if sr != sample_rate else wav
    if job["snr"] is not None:
        wav = _NOISER.add_noise(wav, job["snr"], torch.Generator().manual_seed(job["seed"]))
    peak = float(wav.abs().max())
    if peak > 0.99:  # noise can push peaks past full scale; FLAC stores integers
        wav = wav * (0.99 / peak)
    path = Path(out).resolve() / "audio" / job["split"] / f"{job['id']}.flac"
    write_audio(path, wav, sample_rate)
    return path, round(wav.numel() / sample_rate, 4)


def render(job: dict, exes: dict[str, str], out: str, sample_rate: int) -> dict:
    """Synthesise one job, resample, maybe add noise, write FLAC; returns its manifest row (absolute path)."""
    path, duration = write_utterance(*synthesize(job, exes), job, out, sample_rate)
    voice = job["voice"] + (f"+{job['variant']}" if job["variant"] else "")
    return {"path": str(path), "text": job["text"], "duration": duration, "id": job["id"],
            "engine": job["engine"], "voice": voice, "accent": job["accent"], "rate": job["rate"],
            "pitch": job["pitch"], "pauses": sum(job["pauses"]), "snr": job["snr"]}


def _render_star(args: tuple) -> dict:
    return render(*args)


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Synthesise a multi-engine spoken-digit corpus.")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--engines", default="espeak,accent,flite",
                   help="training engines, comma-separated from espeak (English voices), accent (espeak-ng's "
                        "other-language voices), flite (default: all three; festival is always test-only)")
    p.add_argument("--num-train", type=int, default=8000, help="training utterances (default: 8000)")
    p.add_argument("--num-dev", type=int, default=500, help="dev utterances, unseen voices (default: 500)")
    p.add_argument("--num-test", type=int, default=500, help="test utterances, unseen voices (default: 500)")
    p.add_argument("--num-test-festival", type=int, default=300,
                   help="test_festival utterances, the unseen engine; 0 to skip (default: 300)")
    p.add_argument("--min-digits", type=int, default=1, help="shortest digit string (default: 1)")
    p.add_argument("--max-digits", type=int, default=10, help="longest digit string (default: 10)")
    p.add_argument("--pause-prob", type=float, default=0.15, help="chance of a pause after each digit (default: 0.15)")
    p.add_argument("--sample-rate", type=int, default=16000, help="output rate (default: 16000)")
    p.add_argument("--noise-prob", type=float, default=0.5, help="share of utterances with noise (default: 0.5)")
    p.add_argument("--seed", type=int, default=0, help="seed for texts, voices per utterance, noise (default: 0)")
    p.add_argument("--jobs", type=int, default=2, help="worker processes (default: 2)")
    p.add_argument("--nice", type=int, default=10, help="niceness of the workers and synthesizers (default: 10)")
    return p


def main(args: argparse.Namespace) -> int:
    if not 1 <= args.min_digits <= args.max_digits:
        raise SystemExit("need 1 <= --min-digits <= --max-digits")
    engines = {e.strip() for e in args.engines.split(",") if e.strip()}
    if not engines or engines - set(ENGINE_GROUPS):
        raise SystemExit(f"--engines takes a comma-separated subset of {','.join(ENGINE_GROUPS)}, got {args.engines!r}")
    speakers, exes = discover_voices(engines, festival=args.num_test_festival > 0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "speakers.json").write_text(json.dumps(speakers, indent=1) + "\n")
    (out / "words.txt").write_text("\n".join(DIGITS) + "\n")  # the lexicon for constrained decoding

    jobs = make_jobs(args, speakers)
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, args.jobs), initializer=_init_worker,
                             initargs=(args.nice, args.sample_rate)) as pool:
        rows = list(pool.map(_render_star, [(job, exes, str(out), args.sample_rate) for job in jobs], chunksize=8))
    elapsed = time.perf_counter() - start
    for split in SPLITS:
        split_rows = [r for r in rows if r["id"].rsplit("-", 1)[0] == split]
        if not split_rows:
            continue
        write_manifest(out / f"{split}.jsonl", split_rows)
        hours = sum(r["duration"] for r in split_rows) / 3600
        by_engine = {}
        for r in split_rows:
            by_engine[r["engine"]] = by_engine.get(r["engine"], 0) + 1
        print(f"{split}: {len(split_rows)} utterances, {hours:.2f} h, {by_engine} -> {out / f'{split}.jsonl'}")
    print(f"synthesised {len(rows)} utterances in {elapsed:.1f} s ({len(rows) / max(elapsed, 1e-9):.0f}/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))

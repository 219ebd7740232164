"""The multi-engine digits recipe (skipped without espeak-ng, flite and festival), and one utterance read back alike from
every format and sample rate it can be stored in (no espeak-ng needed)."""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF

from crnn.data.audio import read_audio, write_audio
from crnn.data.manifest import read_manifest

ROOT = Path(__file__).resolve().parents[1]
DIGITS = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}


ENGINES = ("espeak-ng", "flite", "festival")


def _prepare(out: Path, *extra: str) -> subprocess.CompletedProcess:
    # Run from the repository root with a relative --out, as the README does.
    return subprocess.run([sys.executable, "datasets/tts_digits/prepare.py", "--out", str(out), *extra],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)


@pytest.mark.espeak
@pytest.mark.slow
def test_prepare_multi_engine_digits(tmp_path):
    missing = [e for e in ENGINES if shutil.which(e) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install espeak-ng flite festival "
                    "festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts)")
    out = Path(os.path.relpath(tmp_path / "digits", ROOT))
    args = ("--num-train", "24", "--num-dev", "4", "--num-test", "8", "--num-test-festival", "6", "--seed", "3")
    r = _prepare(out, *args, "--jobs", "2")
    assert r.returncode == 0, r.stderr
    out = ROOT / out
    splits = {s: read_manifest(out / f"{s}.jsonl") for s in ("train", "dev", "test", "test_festival")}
    assert {s: len(rows) for s, rows in splits.items()} == {"train": 24, "dev": 4, "test": 8, "test_festival": 6}
    for line in (out / "train.jsonl").read_text().splitlines():  # stored relative to the manifest's folder
        assert json.loads(line)["path"].startswith("audio/train/")
    for rows in splits.values():
        for row in rows:
            words = row["text"].split()
            assert 1 <= len(words) <= 10 and set(words) <= DIGITS
            wav = read_audio(row["path"], 16000)
            assert row["duration"] == pytest.approx(wav.numel() / 16000, abs=1e-3)
            assert torch.isfinite(wav).all() and float(wav.abs().max()) > 0.05  # speech, not silence
    engines = {s: {row["engine"] for row in rows} for s, rows in splits.items()}
    assert engines["test_festival"] == {"festival"}
    assert "festival" not in engines["train"] | engines["dev"] | engines["test"]
    assert engines["train"] == {"espeak-ng", "flite"}
    assert any(row["accent"] for row in splits["train"])  # espeak-ng's other-language voices
    # Dev and test voices are never heard in training: neither the voice nor the espeak-ng variant.
    voices = {s: {row["voice"].split("+")[0] for row in rows} for s, rows in splits.items()}
    variants = {s: {row["voice"].split("+")[1] for row in rows if "+" in row["voice"]} for s, rows in splits.items()}
    for held in ("dev", "test"):
        assert not voices["train"] & voices[held] and not variants["train"] & variants[held]
    speakers = json.loads((out / "speakers.json").read_text())
    for group in ("espeak", "accent", "flite"):
        assert not set(speakers[group]["train"]) & set(speakers[group]["test"] + speakers[group]["dev"])
    assert not {"kal", "kal16", "slt"} & set(speakers["flite"]["train"])  # festival's speakers stay unseen
    assert set((out / "words.txt").read_text().split()) == DIGITS  # the recipe's lexicon
    noisy = [row["snr"] is not None for rows in splits.values() for row in rows]
    assert 0 < sum(noisy) < len(noisy)
    # Same seed, same corpus, whatever the pool size.
    again = Path(os.path.relpath(tmp_path / "again", ROOT))
    assert _prepare(again, *args, "--jobs", "1", "--num-train", "0", "--num-dev", "0").returncode == 0
    assert [r["text"] for r in read_manifest(ROOT / again / "test.jsonl")] == [r["text"] for r in splits["test"]]


def speech_like(sr: int = 16000, seconds: float = 1.5) -> torch.Tensor:
    """Voiced syllables: harmonics of a gliding 110-160 Hz pitch shaped by two formants, under a
    4 Hz syllable envelope; energy below 3.4 kHz, like telephone-band speech. (S,) float32."""
    t = torch.arange(int(sr * seconds), dtype=torch.float64) / sr
    f0 = 135 + 25 * torch.sin(2 * math.pi * 0.7 * t)
    phase = 2 * math.pi * torch.cumsum(f0, 0) / sr
    formants = [(500 + 200 * torch.sin(2 * math.pi * 1.3 * t), 90.0), (1500 + 400 * torch.cos(2 * math.pi * 0.9 * t), 120.0)]
    x = torch.zeros_like(t)
    for k in range(1, 25):
        fk = k * f0
        weight = sum(torch.exp(-0.5 * ((fk - fc) / bw) ** 2) for fc, bw in formants) + 0.02
        x += torch.where(fk < 3400, weight, torch.zeros_like(weight)) * torch.sin(k * phase)
    envelope = torch.clamp(torch.sin(2 * math.pi * 4 * t), min=0) ** 0.5
    x = x * envelope
    return (0.5 * x / x.abs().max()).float()


def aligned_corr(ref: torch.Tensor, other: torch.Tensor, max_lag: int = 3000) -> float:
    """Correlation after removing a codec delay (found by cross-correlation, up to ``max_lag``)."""
    n = ref.numel()
    b = torch.nn.functional.pad(other, (0, max(0, n + max_lag - other.numel())))[: n + max_lag]
    xc = torch.fft.irfft(torch.fft.rfft(b, 2 * b.numel()) * torch.fft.rfft(ref, 2 * b.numel()).conj())
    lag = int(xc[: max_lag + 1].argmax())
    seg = b[lag : lag + n]
    return float(np.corrcoef(ref.numpy(), seg.numpy())[0, 1])


def test_same_utterance_from_every_format(tmp_path):
    ref = speech_like()  # the utterance at the model's 16 kHz
    write_audio(tmp_path / "ref.wav", ref, 16000)
    for ext in ("flac", "mp3", "ogg"):
        write_audio(tmp_path / f"u.{ext}", ref, 16000)
    up = AF.resample(ref, 16000, 48000)
    write_audio(tmp_path / "u48k_stereo.wav", torch.stack([up, 0.8 * up]), 48000)
    sf.write(tmp_path / "u8k.wav", AF.resample(ref, 16000, 8000).numpy(), 8000, subtype="PCM_16")

    base = read_audio(tmp_path / "ref.wav", 16000)
    for name in ("u.flac", "u.mp3", "u.ogg", "u48k_stereo.wav", "u8k.wav"):
        wav = read_audio(tmp_path / name, 16000)
        assert abs(wav.numel() - base.numel()) < 0.1 * base.numel(), name
        c = aligned_corr(base, wav)
        assert c > 0.9, f"{name}: correlation {c:.3f} with the 16 kHz WAV"
    # Lossless at the model's rate: identical samples.
    assert torch.allclose(read_audio(tmp_path / "u.flac", 16000), base, atol=1e-4)


def test_error_report_aligns_words_and_groups_by_voice(tmp_path):
    sys.path.insert(0, str(ROOT / "datasets" / "tts_digits"))
    import errors

    assert errors.align("one two three".split(), "one five three four".split()) == [
        ("one", "one"), ("two", "five"), ("three", "three"), (None, "four")]
    assert errors.align("one two".split(), []) == [("one", None), ("two", None)]
    rows = [{"path": "a.flac", "text": "one two three", "engine": "festival", "voice": "kal_diphone"},
            {"path": "b.flac", "text": "nine nine", "engine": "festival", "voice": "ked_diphone"}]
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    hyps = [{"path": str(tmp_path / "a.flac"), "reference": "one two three", "hypothesis": "one five three"},
            {"path": str(tmp_path / "b.flac"), "reference": "nine nine", "hypothesis": "nine nine"}]
    (tmp_path / "hyps.jsonl").write_text("".join(json.dumps(h) + "\n" for h in hyps))
    r = subprocess.run([sys.executable, str(ROOT / "datasets/tts_digits/errors.py"), str(tmp_path / "test.jsonl"),
                        str(tmp_path / "hyps.jsonl")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert any(line.split()[:3] == ["engine", "festival", "5"] and line.split()[3] == "20.00" for line in lines)
    assert any(line.split()[:2] == ["voice", "kal_diphone"] and line.split()[-1] == "33.33" for line in lines)
    assert "1  two -> five" in r.stdout and "a.flac" in r.stdout and "b.flac" not in r.stdout

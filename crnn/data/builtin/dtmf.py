"""Built-in default data: telephone keypad (DTMF, ITU-T Q.23) digit strings, generated from a seed.

Each key is the sum of a row tone (697/770/852/941 Hz) and a column tone (1209/1336/1477/1633 Hz).
Utterances hold 1-12 keys with random durations, gaps (none between two *different* keys at times),
tone frequencies off by up to +-1.5 % (the tolerance Q.24 lets receivers accept), level twist between the
two tones, random overall level, and additive white noise at 5-30 dB SNR, sampled at 8 or 16 kHz.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchaudio.functional as AF

ROW_HZ = (697.0, 770.0, 852.0, 941.0)
COL_HZ = (1209.0, 1336.0, 1477.0, 1633.0)
KEYPAD = ("123A", "456B", "789C", "*0#D")
KEYS = "0123456789*#ABCD"
# key -> (row tone, column tone)
KEY_TONES = {KEYPAD[r][c]: (ROW_HZ[r], COL_HZ[c]) for r in range(4) for c in range(4)}


@dataclass(frozen=True)
class DTMFSpec:
    min_keys: int = 1                      # keys per utterance, inclusive range ...
    max_keys: int = 12
    key_ms: tuple[float, float] = (40.0, 250.0)   # tone duration range
    gap_ms: tuple[float, float] = (20.0, 200.0)   # pause range between keys
    no_gap_prob: float = 0.2               # chance of no pause between two different keys
    freq_dev: float = 0.015                # max relative frequency deviation per tone
    twist_db: tuple[float, float] = (-6.0, 4.0)   # column tone level relative to row tone
    level_db: tuple[float, float] = (-30.0, -3.0) # peak-ish level of the tones, dBFS
    snr_db: tuple[float, float] = (5.0, 30.0)     # additive white noise
    edge_ms: tuple[float, float] = (50.0, 400.0)  # leading / trailing silence
    sample_rates: tuple[int, ...] = (8000, 16000)


def tone_pair(key: str, n: int, sample_rate: int, rng: np.random.Generator, spec: DTMFSpec) -> np.ndarray:
    """One key's two-tone burst of n samples, with deviation, twist and 2 ms raised-cosine edges."""
    f_row, f_col = KEY_TONES[key]
    f_row *= 1 + rng.uniform(-spec.freq_dev, spec.freq_dev)
    f_col *= 1 + rng.uniform(-spec.freq_dev, spec.freq_dev)
    t = np.arange(n) / sample_rate
    twist = 10 ** (rng.uniform(*spec.twist_db) / 20)
    burst = np.sin(2 * np.pi * f_row * t + rng.uniform(0, 2 * np.pi)) + twist * np.sin(
        2 * np.pi * f_col * t + rng.uniform(0, 2 * np.pi)
    )
    ramp = min(n // 2, int(0.002 * sample_rate))
    if ramp > 0:
        edge = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, ramp))
        burst[:ramp] *= edge
        burst[-ramp:] *= edge[::-1]
    return burst / (1 + twist)


def generate_utterance(
    rng: np.random.Generator, spec: DTMFSpec = DTMFSpec(), sample_rate: int | None = None, keys: str | None = None
) -> tuple[np.ndarray, int, str]:
    """Draw one utterance. Returns (waveform float32 (S,), sample_rate, key string)."""
    sr = int(sample_rate or rng.choice(spec.sample_rates))
    if keys is None:
        n_keys = int(rng.integers(spec.min_keys, spec.max_keys + 1))
        keys = "".join(rng.choice(list(KEYS), size=n_keys))
    ms = lambda lo_hi: int(rng.uniform(*lo_hi) * sr / 1000)  # noqa: E731
    parts = [np.zeros(ms(spec.edge_ms))]
    for i, key in enumerate(keys):
        if i > 0:
            different = key != keys[i - 1]
            gap = 0 if (different and rng.random() < spec.no_gap_prob) else ms(spec.gap_ms)
            parts.append(np.zeros(gap))
        parts.append(tone_pair(key, max(ms(spec.key_ms), 1), sr, rng, spec))
    parts.append(np.zeros(ms(spec.edge_ms)))
    wave = np.concatenate(parts)
    wave *= 10 ** (rng.uniform(*spec.level_db) / 20)
    tone_power = np.mean(wave[wave != 0] ** 2) if np.any(wave) else 1e-8
    noise_power = tone_power / 10 ** (rng.uniform(*spec.snr_db) / 10)
    wave = wave + rng.normal(0.0, math.sqrt(noise_power), size=wave.shape)
    return np.clip(wave, -1.0, 1.0).astype(np.float32), sr, keys


def dtmf_tokenizer():
    """The 16-key vocabulary (plus blank)."""
    from crnn.tokenizer import Tokenizer

    return Tokenizer(list(KEYS), kind="char")


class DTMFDataset(torch.utils.data.Dataset):
    """On-the-fly DTMF utterances, resampled to ``sample_rate``; item ``i`` is a pure function of
    (seed, epoch, i), so runs are reproducible and workers need no shared state.

    Args:
        n: utterances per epoch.
        seed: base seed; train and validation use different seeds.
        sample_rate: the model's rate; every utterance is resampled to it.
        fresh_each_epoch: draw new utterances every epoch (training). (Default: True)
    """

    def __init__(self, n: int, seed: int, sample_rate: int, fresh_each_epoch: bool = True,
                 spec: DTMFSpec = DTMFSpec()):
        self.n, self.seed, self.sample_rate = n, seed, sample_rate
        self.fresh_each_epoch, self.spec = fresh_each_epoch, spec
        self.epoch = 0
        self.tokenizer = dtmf_tokenizer()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        epoch = self.epoch if self.fresh_each_epoch else 0
        rng = np.random.default_rng([self.seed, epoch, i])
        wave, sr, keys = generate_utterance(rng, self.spec)
        signal = torch.from_numpy(wave)
        if sr != self.sample_rate:
            signal = AF.resample(signal, sr, self.sample_rate)
        return {"signal": signal, "tokens": torch.tensor(self.tokenizer.encode(keys)), "text": keys,
                "path": f"dtmf:{self.seed}:{epoch}:{i}"}


def write_dtmf_dataset(out_dir: str | Path, n: int, seed: int, sample_rate: int | None = None) -> Path:
    """Write n utterances as WAV files plus ``manifest.jsonl`` (relative paths). Returns the manifest path."""
    import json

    import soundfile as sf

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 7919])
    manifest = out / "manifest.jsonl"
    tmp = manifest.with_suffix(".jsonl.tmp")
    with open(tmp, "w") as f:
        for i in range(n):
            wave, sr, keys = generate_utterance(rng, sample_rate=sample_rate)
            name = f"dtmf_{i:05d}.wav"
            sf.write(out / name, wave, sr, subtype="PCM_16")
            f.write(json.dumps({"path": name, "text": keys, "duration": round(len(wave) / sr, 4)}) + "\n")
    tmp.replace(manifest)
    return manifest

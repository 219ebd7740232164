"""Waveform augmentation for training: speed perturbation, additive noise at a random SNR, gain.

Each part is switched on by its ``AugmentConfig`` field; SpecAugment lives in the audio frontend
(``AudioFrontendConfig.spec_augment``) and is carried here only so one config holds every training
augmentation switch (the ``crnn train`` flags map 1:1 onto these fields).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from crnn.data.audio import AUDIO_EXTENSIONS, MIN_SAMPLE_RATE, AudioReadError, read_audio, resample
from crnn.data.files import regular_file_problem

NOISE_COLORS = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # power spectrum ~ 1 / f^exponent


@dataclass
class AugmentConfig:
    speed_perturb: bool = False                          # resample-based speed change (tempo and pitch, Kaldi-style)
    speed_factors: tuple[float, ...] = (0.9, 1.0, 1.1)   # speed factors drawn uniformly when speed_perturb is on
    noise_snr: tuple[float, float] | None = None         # (low, high) dB: add noise at an SNR drawn in this range; None = off
    noise_dir: str | None = None                         # folder of noise recordings (searched recursively); None = generated noise
    noise_colors: tuple[str, ...] = ("white", "pink", "brown")  # generated noise colours drawn from when noise_dir is None
    noise_prob: float = 0.5                              # probability that an utterance gets noise (when noise_snr is set)
    gain: tuple[float, float] | None = None              # (low, high) dB: scale by a gain drawn in this range; None = off
    narrowband_prob: float = 0.0                         # share of utterances band-limited as if recorded at narrowband_rate
    narrowband_rate: int = 8000                          # the lower capture rate simulated (telephone band: 8 kHz)
    spec_augment: bool = False                           # SpecAugment masks, applied by the audio frontend, not here

    @property
    def active(self) -> bool:
        """True if any waveform-level augmentation is on."""
        return (self.speed_perturb or self.noise_snr is not None or self.gain is not None
                or self.narrowband_prob > 0)


def colored_noise(num_samples: int, color: str = "white", generator: torch.Generator | None = None) -> torch.Tensor:
    """Gaussian noise shaped in the frequency domain to a ``1/f^k`` power spectrum, unit RMS.

    Args:
        num_samples: length S.
        color: ``white`` (k=0), ``pink`` (k=1) or ``brown`` (k=2).

    Returns:
        (S,) float32.
    """
    if color not in NOISE_COLORS:
        raise ValueError(f"noise colour must be one of {sorted(NOISE_COLORS)}, got {color!r}")
    white = torch.randn(num_samples, generator=generator)
    k = NOISE_COLORS[color]
    if k:
        spec = torch.fft.rfft(white)
        f = torch.arange(spec.numel(), dtype=torch.float32)
        f[0] = 1.0  # keep DC finite; it is removed below anyway
        spec = spec / f.pow(k / 2)  # amplitude ~ f^(-k/2)  =>  power ~ f^(-k)
        spec[0] = 0
        white = torch.fft.irfft(spec, n=num_samples)
    return white / white.pow(2).mean().sqrt().clamp(min=1e-12)


def list_noise_files(folder: str | os.PathLike) -> list[str]:
    """Audio files under ``folder`` (recursive, sorted)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: noise folder does not exist")
    files = sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
    if not files:
        raise FileNotFoundError(f"{folder}: no audio files in the noise folder")
    return files


class WaveAugment:
    """Callable ``(S,) -> (S',)`` applying the augmentations switched on in ``cfg``, in the order
    speed -> narrowband -> noise -> gain (gain last: it models the recording level of signal and noise alike).

    Randomness comes from torch's global generator (DataLoader seeds it per worker), or from the
    ``generator`` passed to a call.

    Args:
        cfg: AugmentConfig.
        sample_rate: rate of the waveforms it receives (the model's rate).
    """

    def __init__(self, cfg: AugmentConfig, sample_rate: int):
        if cfg.noise_snr is not None and cfg.noise_snr[0] > cfg.noise_snr[1]:
            raise ValueError(f"noise_snr must be (low, high), got {cfg.noise_snr}")
        if cfg.gain is not None and cfg.gain[0] > cfg.gain[1]:
            raise ValueError(f"gain must be (low, high), got {cfg.gain}")
        for c in cfg.noise_colors:
            if c not in NOISE_COLORS:
                raise ValueError(f"noise colour must be one of {sorted(NOISE_COLORS)}, got {c!r}")
        self.cfg = cfg
        self.sample_rate = sample_rate
        self.noise_files = list_noise_files(cfg.noise_dir) if cfg.noise_dir and cfg.noise_snr is not None else []

    def _uniform(self, low: float, high: float, generator: torch.Generator | None) -> float:
        return float(low + (high - low) * torch.rand((), generator=generator))

    def _choice(self, options, generator: torch.Generator | None):
        return options[int(torch.randint(len(options), (), generator=generator))]

    def speed(self, wav: torch.Tensor, factor: float) -> torch.Tensor:
        """Play ``factor`` times faster: resample from ``sr * factor`` to ``sr`` ((S,) -> (~S / factor,))."""
        if factor == 1.0:
            return wav
        return AF.resample(wav, int(round(self.sample_rate * factor)), self.sample_rate)

    def narrowband(self, wav: torch.Tensor) -> torch.Tensor:
        """Drop the band above ``narrowband_rate / 2`` as a lower-rate recording would ((S,) -> (S,)), so a
        model trained at 16 kHz also reads 8 kHz files, which have nothing above 4 kHz."""
        low = self.cfg.narrowband_rate
        if low >= self.sample_rate:
            return wav
        return AF.resample(AF.resample(wav, self.sample_rate, low), low, self.sample_rate)[: wav.numel()]

    def noise_like(self, num_samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(S,) noise: a random stretch of a random noise file (looped if short), or generated noise."""
        if not self.noise_files:
            return colored_noise(num_samples, self._choice(self.cfg.noise_colors, generator), generator)
        path = self._choice(self.noise_files, generator)
        noise = self._read_noise_segment(path, num_samples, generator)
        if noise.numel() < num_samples:
            noise = noise.repeat(num_samples // max(noise.numel(), 1) + 1)
        return noise[:num_samples]

    def _read_noise_segment(self, path: str, num_samples: int, generator: torch.Generator | None) -> torch.Tensor:
        # Read only the stretch needed from long recordings (soundfile seeks); FFmpeg formats in full.
        problem = regular_file_problem(path)  # checked first: opening a FIFO would block
        if problem:
            raise AudioReadError(path, f"noise file: {problem}")
        try:
            info = sf.info(os.fsencode(path))
        except (sf.LibsndfileError, RuntimeError):
            wav = read_audio(path, self.sample_rate)
            start = int(torch.randint(max(wav.numel() - num_samples, 0) + 1, (), generator=generator))
            return wav[start : start + num_samples]
        if info.samplerate < MIN_SAMPLE_RATE:
            raise AudioReadError(path, f"noise file: implausible sample rate {info.samplerate} Hz")
        need = int(np.ceil(num_samples * info.samplerate / self.sample_rate)) + 1
        start = int(torch.randint(max(info.frames - need, 0) + 1, (), generator=generator))
        data, sr = sf.read(os.fsencode(path), start=start, frames=need, dtype="float32", always_2d=True)
        if data.shape[0] == 0:
            raise AudioReadError(path, "noise file contains no audio samples")
        if not np.isfinite(data).all():
            raise AudioReadError(path, "noise file: non-finite samples (NaN or infinity)")
        return resample(torch.from_numpy(data).mean(dim=1), sr, self.sample_rate)

    def add_noise(self, wav: torch.Tensor, snr_db: float, generator: torch.Generator | None = None) -> torch.Tensor:
        """Mix noise into ``wav`` (S,) so that signal power / noise power = ``snr_db`` dB."""
        noise = self.noise_like(wav.numel(), generator).to(wav.dtype)
        if noise.pow(2).sum() == 0 or wav.pow(2).sum() == 0:
            return wav  # silent noise or signal: no SNR is defined
        return AF.add_noise(wav[None], noise[None], torch.tensor([snr_db]))[0]

    def __call__(self, wav: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment one waveform (S,) -> (S',) (S' differs from S only under speed perturbation)."""
        cfg = self.cfg
        if cfg.speed_perturb:
            wav = self.speed(wav, self._choice(cfg.speed_factors, generator))
        if cfg.narrowband_prob > 0 and float(torch.rand((), generator=generator)) < cfg.narrowband_prob:
            wav = self.narrowband(wav)
        if cfg.noise_snr is not None and float(torch.rand((), generator=generator)) < cfg.noise_prob:
            wav = self.add_noise(wav, self._uniform(*cfg.noise_snr, generator), generator)
        if cfg.gain is not None:
            wav = AF.gain(wav, self._uniform(*cfg.gain, generator))
        return wav

"""Waveform augmentation for training, modelling recording conditions: speed perturbation, competing
speech (babble), room reverberation, band limiting, additive noise, microphone/channel EQ, codec round
trips and gain.

Each part is switched on by its ``AugmentConfig`` field; SpecAugment lives in the audio frontend
(``AudioFrontendConfig.spec_augment``) and is carried here only so one config holds every training
augmentation switch (the ``crnn train`` flags map 1:1 onto these fields).
"""
from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from crnn.data.audio.reader import MIN_SAMPLE_RATE, AudioReadError, read_audio, resample
from crnn.data.files import regular_file_problem
from crnn.data.media import AUDIO_EXTENSIONS

NOISE_COLORS = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # power spectrum ~ 1 / f^exponent
# name -> (soundfile format, subtype, the codec's sample rate or None for the signal's, extra write options):
# all encoded and decoded in memory by libsndfile (bundled with soundfile).
CODECS = {
    "mp3": ("MP3", "MPEG_LAYER_III", None, {"compression_level": 0.99, "bitrate_mode": "CONSTANT"}),  # ~8 kbit/s
    "opus": ("OGG", "OPUS", None, {"compression_level": 0.99}),   # ~9 kbit/s
    "gsm": ("WAV", "GSM610", 8000, {}),                            # GSM 06.10 full rate, 13 kbit/s mobile phone
    "ulaw": ("WAV", "ULAW", 8000, {}),                             # G.711 mu-law: landline telephone
}


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
    reverb_prob: float = 0.0                             # share of utterances convolved with a room impulse response
    reverb_rt60: tuple[float, float] = (0.15, 0.8)       # (low, high) s: RT60 range of the simulated rooms
    rir_dir: str | None = None                           # folder of recorded impulse responses; None = simulated rooms
    babble_prob: float = 0.0                             # share of utterances mixed with other training utterances
    babble_snr: tuple[float, float] = (10.0, 25.0)       # (low, high) dB: speech / competing-speech power
    babble_speakers: int = 3                             # at most this many competing utterances (1 = one talker)
    eq_prob: float = 0.0                                 # share of utterances given a random microphone/channel EQ
    eq_tilt_db: float = 3.0                              # max |spectral tilt| in dB per octave (around 1 kHz)
    eq_peak_db: float = 10.0                             # max |gain| of one random peak/notch band
    codec_prob: float = 0.0                              # share of utterances sent through a lossy codec round trip
    codecs: tuple[str, ...] = ("mp3", "opus", "gsm", "ulaw")  # codecs drawn from (see CODECS)
    spec_augment: bool = False                           # SpecAugment masks, applied by the audio frontend, not here

    @property
    def active(self) -> bool:
        """True if any waveform-level augmentation is on."""
        return (self.speed_perturb or self.noise_snr is not None or self.gain is not None
                or self.narrowband_prob > 0 or self.reverb_prob > 0 or self.babble_prob > 0
                or self.eq_prob > 0 or self.codec_prob > 0)


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


def list_noise_files(folder: str | os.PathLike, what: str = "noise") -> list[str]:
    """Audio files under ``folder`` (recursive, sorted); ``what`` names the folder's role in errors."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: {what} folder does not exist")
    files = sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
    if not files:
        raise FileNotFoundError(f"{folder}: no audio files in the {what} folder")
    return files


def simulated_rir(rt60: float, sample_rate: int, direct_ratio_db: float = 0.0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """A room impulse response: a direct-path impulse followed by exponentially decaying Gaussian noise
    (a diffuse reverberant tail) that falls by 60 dB in ``rt60`` seconds.

    Args:
        rt60: reverberation time in seconds.
        direct_ratio_db: direct-path energy / tail energy in dB (lower = farther from the microphone).

    Returns:
        (R,) float32, R = rt60 * sample_rate, unit energy, the direct path at index 0.
    """
    n = max(int(rt60 * sample_rate), 2)
    t = torch.arange(n, dtype=torch.float32) / sample_rate
    tail = torch.randn(n, generator=generator) * torch.exp(-3 * math.log(10) * t / rt60)  # amplitude -60 dB at rt60
    tail[0] = 0
    tail = tail / tail.pow(2).sum().sqrt() * 10 ** (-direct_ratio_db / 20)
    tail[0] = 1.0
    return tail / tail.pow(2).sum().sqrt()


def align_rir(rir: torch.Tensor) -> torch.Tensor:
    """Recorded RIR (R,) -> starting at its direct path (the largest peak), unit energy: convolving with
    it then adds reverberation without delaying the speech against its transcript."""
    rir = rir[int(rir.abs().argmax()):]
    energy = rir.pow(2).sum().sqrt()
    if not torch.isfinite(energy) or energy == 0:
        raise ValueError("impulse response is silent or not finite")
    return rir / energy


class WaveAugment:
    """Callable ``(S,) -> (S',)`` applying the augmentations switched on in ``cfg``, in the order of a
    recording chain: speed -> competing speech -> room reverberation -> narrowband -> noise -> microphone/
    channel EQ -> codec -> gain (gain last: it models the recording level of signal and noise alike).

    Competing speech needs other utterances: the dataset provides them with ``bind_speech_source``.

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
        for name in ("narrowband_prob", "reverb_prob", "babble_prob", "eq_prob", "codec_prob", "noise_prob"):
            if not 0.0 <= getattr(cfg, name) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {getattr(cfg, name)}")
        if not 0 < cfg.reverb_rt60[0] <= cfg.reverb_rt60[1]:
            raise ValueError(f"reverb_rt60 must be (low, high) seconds > 0, got {cfg.reverb_rt60}")
        if cfg.babble_snr[0] > cfg.babble_snr[1] or cfg.babble_speakers < 1:
            raise ValueError(f"babble_snr must be (low, high) and babble_speakers >= 1, got "
                             f"{cfg.babble_snr}, {cfg.babble_speakers}")
        unknown = [c for c in cfg.codecs if c not in CODECS]
        if unknown or not cfg.codecs:
            raise ValueError(f"codecs must be a non-empty subset of {sorted(CODECS)}, got {list(cfg.codecs)}")
        self.cfg = cfg
        self.sample_rate = sample_rate
        self.noise_files = list_noise_files(cfg.noise_dir) if cfg.noise_dir and cfg.noise_snr is not None else []
        self.rirs = self._load_rirs(cfg.rir_dir) if cfg.rir_dir and cfg.reverb_prob > 0 else []
        self.speech_source: Callable[[torch.Generator | None], torch.Tensor | None] | None = None

    def _load_rirs(self, folder: str) -> list[torch.Tensor]:
        # Impulse responses are short: read them all once, aligned to their direct path.
        rirs = []
        for path in list_noise_files(folder, "impulse response"):
            try:
                rirs.append(align_rir(read_audio(path, self.sample_rate)))
            except ValueError as e:
                raise AudioReadError(path, str(e)) from None
        return rirs

    def bind_speech_source(self, source: Callable[[torch.Generator | None], torch.Tensor | None]) -> None:
        """Give competing speech access to other utterances: ``source(generator)`` returns a random other
        training utterance (S',) at ``sample_rate``, or None when none can be read."""
        self.speech_source = source

    def _uniform(self, low: float, high: float, generator: torch.Generator | None) -> float:
        return float(low + (high - low) * torch.rand((), generator=generator))

    def _coin(self, p: float, generator: torch.Generator | None) -> bool:
        return float(torch.rand((), generator=generator)) < p

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

    def reverberate(self, wav: torch.Tensor, generator: torch.Generator | None = None,
                    rir: torch.Tensor | None = None) -> torch.Tensor:
        """Convolve ``wav`` (S,) with ``rir``, or a random recorded one (``rir_dir``), or a simulated room
        with an RT60 drawn from ``reverb_rt60`` -> (S,) at the input's RMS level (the tail past S is cut)."""
        if rir is None:
            if self.rirs:
                rir = self._choice(self.rirs, generator)
            else:
                rt60 = self._uniform(*self.cfg.reverb_rt60, generator)
                rir = simulated_rir(rt60, self.sample_rate, self._uniform(-3.0, 12.0, generator), generator)
        out = AF.fftconvolve(wav, rir.to(wav.dtype))[: wav.numel()]
        return _match_rms(out, wav)

    def add_babble(self, wav: torch.Tensor, snr_db: float, speakers: int,
                   generator: torch.Generator | None = None) -> torch.Tensor:
        """Mix ``speakers`` other utterances (each from a random start, looped to S) into ``wav`` (S,) so that
        speech / competing speech power = ``snr_db`` dB. Unchanged when no speech source is bound."""
        if self.speech_source is None:
            return wav
        babble = torch.zeros_like(wav)
        for _ in range(speakers):
            other = self.speech_source(generator)
            if other is None or other.numel() == 0:
                continue
            other = other.to(wav.dtype)
            if other.numel() < wav.numel():  # loop short utterances with a random lead-in
                other = other.repeat(wav.numel() // other.numel() + 2)
            start = int(torch.randint(other.numel() - wav.numel() + 1, (), generator=generator))
            other = other[start : start + wav.numel()]
            babble += other / other.pow(2).mean().sqrt().clamp(min=1e-8)  # talkers at equal level
        if babble.pow(2).sum() == 0 or wav.pow(2).sum() == 0:
            return wav
        return AF.add_noise(wav[None], babble[None], torch.tensor([snr_db]))[0]

    def equalize(self, wav: torch.Tensor, tilt_db: float, peak_hz: float, peak_db: float) -> torch.Tensor:
        """Zero-phase EQ of ``wav`` (S,): a spectral tilt of ``tilt_db`` dB per octave around 1 kHz plus one
        peak (``peak_db`` > 0) or notch (< 0) one octave wide at ``peak_hz``; gain limited to +-20 dB, output at
        the input's RMS level (only the balance changes, as between microphones)."""
        spec = torch.fft.rfft(wav)
        f = torch.fft.rfftfreq(wav.numel(), 1 / self.sample_rate).clamp(min=50.0)
        octaves = torch.log2(f / 1000.0)
        gain_db = tilt_db * octaves + peak_db * torch.exp(-0.5 * (torch.log2(f / peak_hz) / 0.5) ** 2)
        gain = 10 ** (gain_db.clamp(-20.0, 20.0) / 20)
        return _match_rms(torch.fft.irfft(spec * gain.to(spec.dtype), n=wav.numel()), wav)

    def random_equalize(self, wav: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        cfg = self.cfg
        peak_hz = 2 ** self._uniform(math.log2(150.0), math.log2(min(6000.0, 0.45 * self.sample_rate)), generator)
        return self.equalize(wav, self._uniform(-cfg.eq_tilt_db, cfg.eq_tilt_db, generator), peak_hz,
                             self._uniform(-cfg.eq_peak_db, cfg.eq_peak_db, generator))

    def codec(self, wav: torch.Tensor, name: str) -> torch.Tensor:
        """Encode ``wav`` (S,) with codec ``name`` (see ``CODECS``) and decode it again, in memory -> (S,).

        Narrowband codecs run at 8 kHz (resampled there and back). The decoded signal is trimmed or padded
        to S; MP3's encoder delay (~1 frame) is removed by aligning on the cross-correlation peak."""
        fmt, subtype, rate, options = CODECS[name]
        rate = rate or self.sample_rate
        x = AF.resample(wav, self.sample_rate, rate) if rate != self.sample_rate else wav
        peak = float(x.abs().max())
        scale = 0.95 / peak if peak > 0.95 else 1.0  # integer codecs clip past full scale
        buf = io.BytesIO()
        sf.write(buf, (x * scale).numpy(), rate, format=fmt, subtype=subtype, **options)
        buf.seek(0)
        y = torch.from_numpy(sf.read(buf, dtype="float32")[0]) / scale
        if y.ndim > 1:
            y = y.mean(dim=1)
        y = AF.resample(y, rate, self.sample_rate) if rate != self.sample_rate else y
        y = y[_delay(wav, y):]
        return torch.nn.functional.pad(y, (0, max(0, wav.numel() - y.numel())))[: wav.numel()]

    def __call__(self, wav: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment one waveform (S,) -> (S',) (S' differs from S only under speed perturbation)."""
        cfg = self.cfg
        if cfg.speed_perturb:
            wav = self.speed(wav, self._choice(cfg.speed_factors, generator))
        if cfg.babble_prob > 0 and self._coin(cfg.babble_prob, generator):
            speakers = 1 + int(torch.randint(cfg.babble_speakers, (), generator=generator))
            wav = self.add_babble(wav, self._uniform(*cfg.babble_snr, generator), speakers, generator)
        if cfg.reverb_prob > 0 and self._coin(cfg.reverb_prob, generator):
            wav = self.reverberate(wav, generator)
        if cfg.narrowband_prob > 0 and float(torch.rand((), generator=generator)) < cfg.narrowband_prob:
            wav = self.narrowband(wav)
        if cfg.noise_snr is not None and float(torch.rand((), generator=generator)) < cfg.noise_prob:
            wav = self.add_noise(wav, self._uniform(*cfg.noise_snr, generator), generator)
        if cfg.eq_prob > 0 and self._coin(cfg.eq_prob, generator):
            wav = self.random_equalize(wav, generator)
        if cfg.codec_prob > 0 and self._coin(cfg.codec_prob, generator):
            wav = self.codec(wav, self._choice(cfg.codecs, generator))
        if cfg.gain is not None:
            wav = AF.gain(wav, self._uniform(*cfg.gain, generator))
        return wav


def _match_rms(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """``x`` scaled to the RMS level of ``ref`` (unchanged when either is silent)."""
    rx, rr = x.pow(2).mean().sqrt(), ref.pow(2).mean().sqrt()
    return x * (rr / rx) if rx > 0 and rr > 0 else x


def _delay(ref: torch.Tensor, y: torch.Tensor, max_lag: int = 4096) -> int:
    """Samples by which ``y`` lags ``ref`` (0..max_lag), from the cross-correlation peak."""
    n = min(ref.numel(), y.numel())
    if n == 0:
        return 0
    size = 1 << (n + max_lag - 1).bit_length()
    xc = torch.fft.irfft(torch.fft.rfft(y[: n + max_lag], size) * torch.fft.rfft(ref[:n], size).conj(), size)
    return int(xc[: min(max_lag, y.numel() - 1) + 1].argmax())

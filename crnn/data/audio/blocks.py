"""Long recordings read a piece at a time: any stretch of a file (or an in-memory array) by seconds.

Files ``soundfile`` reads (WAV, FLAC, OGG, MP3) are read by seeking, so memory holds one piece, never
the whole file; other containers (m4a, mp4, ...) are decoded whole by ``read_audio`` first.
"""
from __future__ import annotations

import os
from typing import Iterator

import numpy as np
import soundfile as sf
import torch

from crnn.data.audio.reader import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, AudioReadError, read_audio, resample, wav_shortfall
from crnn.data.files import regular_file_problem


class AudioSource:
    """Mono samples of one recording at its own rate, read by time.

    Attributes:
        name: the path (or the name given to an array), used in error messages.
        sample_rate: samples per second of ``read``'s output.
        num_samples: length of the recording.
    """

    name: str
    sample_rate: int
    num_samples: int

    @property
    def duration(self) -> float:
        return self.num_samples / self.sample_rate

    def read(self, start: float = 0.0, end: float | None = None) -> np.ndarray:
        """Samples (S,) float32 of [start, end) seconds (end None: to the end); non-finite values raise."""
        a = max(0, int(round(start * self.sample_rate)))
        b = self.num_samples if end is None else min(self.num_samples, int(round(end * self.sample_rate)))
        x = self._read(a, max(a, b))
        if not np.isfinite(x).all():
            bad = a + int(np.flatnonzero(~np.isfinite(x))[0])
            raise AudioReadError(self.name, f"non-finite samples (NaN or infinity) at {bad / self.sample_rate:.2f} s")
        return x

    def blocks(self, seconds: float = 10.0) -> Iterator[np.ndarray]:
        """The whole recording as consecutive blocks (S_i,) of ``seconds``."""
        step = max(1, int(seconds * self.sample_rate))
        for a in range(0, self.num_samples, step):
            yield self.read(a / self.sample_rate, min(self.num_samples, a + step) / self.sample_rate)

    def _read(self, a: int, b: int) -> np.ndarray:
        raise NotImplementedError


class ArraySource(AudioSource):
    """A waveform already in memory: (S,) mono or (S, C) / (C, S) with C < S channels (averaged)."""

    def __init__(self, samples, sample_rate: int, name: str = "<array>"):
        x = samples.detach().cpu().numpy() if isinstance(samples, torch.Tensor) else np.asarray(samples)
        if x.ndim == 2:
            x = x.mean(axis=0 if x.shape[0] < x.shape[1] else 1)
        if x.ndim != 1:
            raise AudioReadError(name, f"expected (S,) or (S, C) samples, got shape {tuple(x.shape)}")
        if x.size == 0:
            raise AudioReadError(name, "contains no audio samples")
        if int(sample_rate) <= 0:
            raise AudioReadError(name, f"sample rate must be positive, got {sample_rate}")
        self.samples = x.astype(np.float32, copy=False)
        self.name, self.sample_rate, self.num_samples = name, int(sample_rate), x.size

    def _read(self, a: int, b: int) -> np.ndarray:
        return self.samples[a:b]


class SoundFileSource(AudioSource):
    """A file soundfile can seek in; every ``read`` opens it, seeks and reads just that stretch."""

    def __init__(self, path: str, info):
        self.name, self.sample_rate, self.num_samples = path, int(info.samplerate), int(info.frames)

    def _read(self, a: int, b: int) -> np.ndarray:
        try:
            with sf.SoundFile(os.fsencode(self.name)) as f:  # bytes: names that are not valid UTF-8 too
                f.seek(a)
                data = f.read(b - a, dtype="float32", always_2d=True)  # (S, C)
        except (sf.LibsndfileError, RuntimeError) as e:
            raise AudioReadError(self.name, f"corrupt or truncated audio file (soundfile: {e})") from None
        if data.shape[0] < b - a:  # the header promised more than the file holds
            raise AudioReadError(self.name, f"truncated: the header declares {self.num_samples / self.sample_rate:.2f} s, "
                                            f"the data ends at {(a + data.shape[0]) / self.sample_rate:.2f} s")
        return data.mean(axis=1)


def open_audio(path: str | os.PathLike, sample_rate: int) -> AudioSource:
    """A source for ``path``: seekable when soundfile reads it, else decoded whole (resampled to ``sample_rate``).

    Raises:
        AudioReadError: naming the file and the reason (the same checks as ``read_audio``).
    """
    path = os.fsdecode(path)
    problem = regular_file_problem(path)  # missing, FIFO, device, permission ... refused before opening
    if problem:
        raise AudioReadError(path, problem)
    short = wav_shortfall(os.fsencode(path))
    if short:
        raise AudioReadError(path, short)
    try:
        info = sf.info(os.fsencode(path))
    except (sf.LibsndfileError, RuntimeError, TypeError):
        info = None
    if info is not None and info.frames > 0:
        if not MIN_SAMPLE_RATE <= info.samplerate <= MAX_SAMPLE_RATE:
            raise AudioReadError(path, f"implausible sample rate {info.samplerate} Hz in the header "
                                       f"(accepted: {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz)")
        return SoundFileSource(path, info)
    return ArraySource(read_audio(path, sample_rate), sample_rate, name=path)


def to_model_rate(samples: np.ndarray, sample_rate: int, target: int) -> torch.Tensor:
    """(S,) samples at ``sample_rate`` -> (S',) float32 tensor at ``target``."""
    wav = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    return resample(wav, sample_rate, target)

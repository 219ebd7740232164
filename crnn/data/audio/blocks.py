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


MAX_ARRAY_CHANNELS = 8  # a 2-D array's channel axis is the short one, at most this long
# integer sample formats, scaled by their own full range to [-1, 1)
INTEGER_SCALE = {np.dtype(np.int8): (0.0, 128.0), np.dtype(np.uint8): (128.0, 128.0),
                 np.dtype(np.int16): (0.0, 32768.0), np.dtype(np.int32): (0.0, 2.0 ** 31),
                 np.dtype(np.uint16): (32768.0, 32768.0)}


def array_samples(samples, name: str = "<array>") -> np.ndarray:
    """In-memory audio as mono float32 ``(S,)``.

    Accepted: ``(S,)`` mono, or ``(C, S)`` / ``(S, C)`` with ``C <= 8`` channels (averaged), as a numpy array,
    a torch tensor or a list; float samples in [-1, 1] as they are, integer ones (int8, uint8, int16,
    uint16, int32) scaled by their own range. Anything else raises AudioReadError naming ``name`` and the
    reason: more dimensions, a square or otherwise ambiguous 2-D shape, no samples, a non-numeric dtype,
    non-finite values.
    """
    x = samples.detach().cpu().numpy() if isinstance(samples, torch.Tensor) else np.asarray(samples)
    if x.dtype.kind not in "fiu" or x.dtype == np.bool_:
        raise AudioReadError(name, f"audio samples must be real numbers (float or integer), got dtype {x.dtype}")
    if x.ndim not in (1, 2):
        raise AudioReadError(name, f"expected (samples,) or (channels, samples) audio, got shape {tuple(x.shape)}")
    if x.size == 0:
        raise AudioReadError(name, f"contains no audio samples (shape {tuple(x.shape)})")
    if x.ndim == 2:
        c_first = x.shape[0] <= MAX_ARRAY_CHANNELS < x.shape[1]
        c_last = x.shape[1] <= MAX_ARRAY_CHANNELS < x.shape[0]
        if not (c_first or c_last):
            raise AudioReadError(name, f"a 2-D array must be (channels, samples) or (samples, channels) with at most "
                                       f"{MAX_ARRAY_CHANNELS} channels; shape {tuple(x.shape)} is neither")
    if x.dtype.kind in "iu":
        if x.dtype not in INTEGER_SCALE:
            raise AudioReadError(name, f"unsupported integer sample format {x.dtype} (int8, uint8, int16, uint16, int32)")
        offset, scale = INTEGER_SCALE[x.dtype]
        x = (x.astype(np.float64) - offset) / scale
    elif not np.isfinite(x).all():
        raise AudioReadError(name, "non-finite samples (NaN or infinity)")
    if x.ndim == 2:
        x = x.mean(axis=0 if x.shape[0] <= MAX_ARRAY_CHANNELS < x.shape[1] else 1)
    return x.astype(np.float32, copy=False)


class ArraySource(AudioSource):
    """A waveform already in memory (the forms :func:`array_samples` accepts), at ``sample_rate``."""

    def __init__(self, samples, sample_rate: int, name: str = "<array>"):
        x = array_samples(samples, name)
        try:
            rate = int(sample_rate)
        except (TypeError, ValueError):
            rate = 0
        if rate <= 0 or rate != sample_rate:
            raise AudioReadError(name, f"sample rate must be a positive integer, got {sample_rate!r}")
        self.samples = x
        self.name, self.sample_rate, self.num_samples = name, rate, x.size

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

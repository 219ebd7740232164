"""Reading and writing audio files: any common format -> mono float32 at the model's sample rate.

WAV, FLAC, OGG/Vorbis/Opus and MP3 are decoded by ``soundfile`` (libsndfile, fast); anything it does
not recognise (m4a/AAC, webm/opus, mp4 audio tracks, ...) by PyAV's bundled FFmpeg. Resampling is
``torchaudio.functional.resample``; channels are averaged to mono.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from crnn.data.media import AUDIO_EXTENSIONS  # a decoding failure of these means damage, not "not audio"


class AudioReadError(RuntimeError):
    """An audio file could not be turned into samples.

    Args:
        path: the file.
        reason: what is wrong with it (missing, empty, truncated/corrupt, not audio, no samples, ...).
    """

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def _to_mono_tensor(data: np.ndarray) -> torch.Tensor:
    """(S, C) float array -> (S,) float32 tensor, channels averaged."""
    return torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32)).mean(dim=1)


def _read_soundfile(path: str) -> tuple[torch.Tensor, int]:
    # always_2d gives (S, C) for any channel count; int PCM is scaled to [-1, 1) by dtype=float32.
    data, sr = sf.read(path, dtype="float32", always_2d=True)
    return _to_mono_tensor(data), sr


def _read_pyav(path: str) -> tuple[torch.Tensor, int]:
    """Decode the first audio stream with FFmpeg, keeping its rate; float planar -> mono."""
    import av

    with av.open(path) as container:
        streams = container.streams.audio
        if not streams:
            kinds = ", ".join(sorted({s.type for s in container.streams})) or "nothing"
            raise AudioReadError(path, f"no audio stream in this container (it holds {kinds})")
        stream = streams[0]
        # Convert whatever sample format the codec produces to float planar, same layout and rate.
        resampler = av.AudioResampler(format="fltp", layout=stream.layout, rate=stream.rate)
        chunks: list[np.ndarray] = []
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray())  # (C, n)
        for out in resampler.resample(None):  # flush
            chunks.append(out.to_ndarray())
        rate = stream.rate
    if not chunks:
        return torch.zeros(0), rate
    data = np.concatenate(chunks, axis=1)  # (C, S)
    return _to_mono_tensor(data.T), rate


def _failure_reason(path: str, sf_error: Exception, av_error: Exception) -> str:
    detail = f"soundfile: {sf_error}; FFmpeg: {av_error}"
    if Path(path).suffix.lower() in AUDIO_EXTENSIONS:
        return f"corrupt or truncated audio file ({detail})"
    return f"not an audio file or an unsupported format ({detail})"


def read_audio(path: str | os.PathLike, sample_rate: int, offset: float | None = None,
               duration: float | None = None) -> torch.Tensor:
    """Read an audio file (or a stretch of it) as mono float32 samples at ``sample_rate``.

    Args:
        path: WAV, FLAC, OGG, MP3 (soundfile) or any container FFmpeg decodes (m4a, webm, mp4, ...).
        sample_rate: the rate to resample to (the model's rate).
        offset: start of the stretch to read, seconds (None: the whole file).
        duration: length of the stretch, seconds (None: to the end of the file).

    Returns:
        (S,) float32 tensor in [-1, 1] (for PCM input).

    Raises:
        AudioReadError: naming the file and the reason (missing, empty, corrupt/truncated, not audio,
            no audio stream, no samples).
    """
    path = str(path)
    if not os.path.exists(path):
        raise AudioReadError(path, "no such file")
    if os.path.isdir(path):
        raise AudioReadError(path, "is a directory, not an audio file")
    if os.path.getsize(path) == 0:
        raise AudioReadError(path, "empty file (0 bytes)")
    if offset is not None or duration is not None:
        wav, sr = read_stretch(path, offset or 0.0, duration)
        return AF.resample(wav, sr, sample_rate) if sr != sample_rate else wav
    try:
        wav, sr = _read_soundfile(path)
    except (sf.LibsndfileError, RuntimeError, TypeError) as sf_error:
        try:
            wav, sr = _read_pyav(path)
        except AudioReadError:
            raise
        except Exception as av_error:  # PyAV raises a family of FFmpegError subclasses
            raise AudioReadError(path, _failure_reason(path, sf_error, av_error)) from None
    if wav.numel() == 0:
        raise AudioReadError(path, "contains no audio samples (zero-length or truncated before the first frame)")
    if sr != sample_rate:
        wav = AF.resample(wav, sr, sample_rate)
    return wav


# Formats whose frames soundfile can seek to exactly without decoding what comes before.
SEEKABLE_EXTENSIONS = {".wav", ".wave", ".flac", ".aif", ".aiff", ".au", ".caf", ".w64"}
STRETCH_TOLERANCE_S = 0.1  # a stretch may end this far past the end of the file (rounded segment times)


def read_stretch(path: str, offset: float, duration: float | None) -> tuple[torch.Tensor, int]:
    """Samples of ``[offset, offset + duration)`` seconds of a file, at the file's own rate.

    PCM containers (WAV, FLAC, ...) seek to the first frame; compressed ones (MP3, OGG, m4a ...)
    are decoded from the start up to the end of the stretch only.

    Returns:
        ((S,) float32 mono samples, sample rate).

    Raises:
        AudioReadError: bad offset/duration, a stretch past the end of the file, or an unreadable file.
    """
    if not (offset >= 0 and (duration is None or duration > 0)) or not all(
            np.isfinite(v) for v in (offset, duration or 0.0)):
        raise AudioReadError(path, f"bad stretch: offset {offset} s, duration {duration} s "
                                   "(need offset >= 0 and duration > 0)")
    try:
        with sf.SoundFile(path) as f:
            sr, total = f.samplerate, f.frames
            start = int(round(offset * sr))
            frames = total - start if duration is None else int(round(duration * sr))
            if start >= total:
                raise AudioReadError(path, f"offset {offset:.3f} s is past the end of the file ({total / sr:.3f} s)")
            if Path(path).suffix.lower() in SEEKABLE_EXTENSIONS:
                f.seek(min(start, total))
                data = f.read(frames, dtype="float32", always_2d=True)
            else:  # decode up to the end of the stretch, then cut
                data = f.read(start + frames, dtype="float32", always_2d=True)[start:]
        wav = _to_mono_tensor(data)
    except AudioReadError:
        raise
    except (sf.LibsndfileError, RuntimeError, TypeError):
        wav, sr, total, start, frames = _read_pyav_stretch(path, offset, duration)
    if start >= total:
        raise AudioReadError(path, f"offset {offset:.3f} s is past the end of the file ({total / sr:.3f} s)")
    if frames - wav.numel() > STRETCH_TOLERANCE_S * sr:
        raise AudioReadError(path, f"stretch {offset:.3f}-{offset + frames / sr:.3f} s ends past the end of "
                                   f"the file ({total / sr:.3f} s)")
    return wav, sr


def _read_pyav_stretch(path: str, offset: float, duration: float | None):
    """FFmpeg fallback for :func:`read_stretch`: decode frames until the stretch's end is reached."""
    import av

    try:
        with av.open(path) as container:
            if not container.streams.audio:
                raise AudioReadError(path, "no audio stream in this container")
            stream = container.streams.audio[0]
            sr = stream.rate
            start = int(round(offset * sr))
            end = None if duration is None else start + int(round(duration * sr))
            resampler = av.AudioResampler(format="fltp", layout=stream.layout, rate=sr)
            chunks: list[np.ndarray] = []
            decoded = 0
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())
                    decoded += chunks[-1].shape[1]
                if end is not None and decoded >= end:
                    break
            else:
                for out in resampler.resample(None):
                    chunks.append(out.to_ndarray())
                    decoded += chunks[-1].shape[1]
    except AudioReadError:
        raise
    except Exception as e:  # PyAV's FFmpegError family
        raise AudioReadError(path, f"not readable as audio (FFmpeg: {e})") from None
    data = np.concatenate(chunks, axis=1) if chunks else np.zeros((1, 0), np.float32)  # (C, S)
    total = data.shape[1] if end is None or decoded < end else max(decoded, end)
    frames = (data.shape[1] - start) if end is None else end - start
    return _to_mono_tensor(data.T[start:end]), sr, total, start, frames


def audio_duration(path: str | os.PathLike) -> float:
    """Duration in seconds from the file header (no decoding for soundfile formats).

    Raises:
        AudioReadError: if neither soundfile nor FFmpeg can read the header.
    """
    path = str(path)
    if not os.path.isfile(path):
        raise AudioReadError(path, "no such file")
    try:
        info = sf.info(path)
        return info.frames / info.samplerate
    except (sf.LibsndfileError, RuntimeError, TypeError) as sf_error:
        import av

        try:
            with av.open(path) as container:
                if container.duration is not None:
                    return container.duration / av.time_base
            wav, sr = _read_pyav(path)  # header without a duration: decode to count samples
            return wav.numel() / sr
        except Exception as av_error:
            raise AudioReadError(path, _failure_reason(path, sf_error, av_error)) from None


def write_audio(path: str | os.PathLike, wav: torch.Tensor | np.ndarray, sample_rate: int) -> None:
    """Write samples to a file whose format follows the extension (WAV, FLAC, OGG, MP3, ...).

    Args:
        path: output file; parent folders are created.
        wav: (S,) mono or (C, S) multi-channel samples in [-1, 1].
        sample_rate: samples per second.
    """
    data = wav.detach().cpu().float().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav, np.float32)
    if data.ndim == 2:
        data = data.T  # soundfile expects (S, C)
    elif data.ndim != 1:
        raise ValueError(f"write_audio expects (S,) or (C, S) samples, got shape {tuple(data.shape)}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, sample_rate)

"""Reading and writing audio files: any common format -> mono float32 at the model's sample rate.

WAV, FLAC, OGG/Vorbis/Opus and MP3 are decoded by ``soundfile`` (libsndfile, fast); anything it does
not recognise (m4a/AAC, webm/opus, mp4 audio tracks, ...) by PyAV's bundled FFmpeg. Resampling is
``torchaudio.functional.resample``; channels are averaged to mono.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from crnn.data.files import MAX_DECODE_BYTES, format_bytes, os_reason, regular_file_problem

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


# Rates outside this range are a damaged or hostile header, not audio (a "1 Hz" file resampled to
# 16 kHz is a 16000-fold blow-up).
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 768_000
# A resampling kernel is (new / g) x (orig / g) taps for g = gcd(orig, new): 16001 Hz -> 16000 Hz would
# take gigabytes. Above this reduced size, the source rate is rounded to a multiple of RATE_ROUNDING
# (a speed change under 0.2 % at 16 kHz and above).
_MAX_REDUCED_RATE, RATE_ROUNDING = 4000, 50


def _to_mono_tensor(data: np.ndarray) -> torch.Tensor:
    """(S, C) float array -> (S,) float32 tensor, channels averaged."""
    return torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32)).mean(dim=1)


def _check_header(path: str, sr: int, frames: int, channels: int, target: int, max_bytes: int) -> None:
    """Refuse rates no recording has, and decodes that would need more than ``max_bytes``."""
    if not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
        raise AudioReadError(path, f"implausible sample rate {sr} Hz in the header "
                                   f"(accepted: {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz)")
    need = 4 * max(frames * max(channels, 1), frames * target // sr)
    if need > max_bytes:
        raise AudioReadError(path, f"decoding would need {format_bytes(need)} ({frames} frames x {channels} "
                                   f"channel(s) at {sr} Hz), over the {format_bytes(max_bytes)} budget "
                                   "(CRNN_MAX_DECODE_BYTES)")


def wav_shortfall(path: str | bytes) -> str | None:
    """For a RIFF/WAVE file whose ``data`` chunk declares more bytes than the file holds: why it is
    truncated; else None (not a WAV, sizes consistent, or a streaming header with an unknown size)."""
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            return None
        order = "little" if head[:4] == b"RIFF" else "big"
        size = os.fstat(f.fileno()).st_size
        pos = 12
        for _ in range(10_000):  # real files have a handful of chunks; a damaged one may chain empty ones
            if pos + 8 > size:
                break
            f.seek(pos)
            chunk = f.read(8)
            declared = int.from_bytes(chunk[4:8], order)
            if chunk[:4] == b"data":
                held = size - pos - 8
                if declared in (0, 0xFFFFFFFF) or declared <= held:  # unknown (streamed) or complete
                    return None
                return f"truncated WAV: the header declares {declared} bytes of samples, the file holds {held}"
            pos += 8 + declared + (declared & 1)  # chunks are padded to an even size
    return None


def _read_soundfile(path: str, target: int, max_bytes: int) -> tuple[torch.Tensor, int]:
    # bytes: libsndfile takes the name as the file system has it (names need not be valid UTF-8).
    with sf.SoundFile(os.fsencode(path)) as f:
        sr, frames, channels = f.samplerate, f.frames, f.channels
        _check_header(path, sr, frames, channels, target, max_bytes)
        # always_2d gives (S, C) for any channel count; int PCM is scaled to [-1, 1) by dtype=float32.
        data = f.read(dtype="float32", always_2d=True)
    # MP3 headers (Xing) state the length; a file cut short decodes to fewer frames than that.
    if frames > 0 and len(data) < frames - max(4608, frames // 100):
        raise AudioReadError(path, f"truncated: the header promises {frames} frames, the file holds {len(data)}")
    return _to_mono_tensor(data), sr


def _read_pyav(path: str, target: int, max_bytes: int) -> tuple[torch.Tensor, int]:
    """Decode the first audio stream with FFmpeg, keeping its rate; float planar -> mono."""
    import av

    with av.open(path) as container:
        streams = container.streams.audio
        if not streams:
            kinds = ", ".join(sorted({s.type for s in container.streams})) or "nothing"
            raise AudioReadError(path, f"no audio stream in this container (it holds {kinds})")
        stream = streams[0]
        rate, channels = stream.rate, stream.channels
        seconds = container.duration / av.time_base if container.duration else 0.0
        _check_header(path, rate, int(seconds * rate), channels, target, max_bytes)
        # Convert whatever sample format the codec produces to float planar, same layout and rate.
        resampler = av.AudioResampler(format="fltp", layout=stream.layout, rate=rate)
        chunks: list[np.ndarray] = []
        n_decoded = 0
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray())  # (C, n)
                n_decoded += chunks[-1].shape[1]
            # the duration in the header may lie: count what is actually decoded
            _check_header(path, rate, n_decoded, channels, target, max_bytes)
        for out in resampler.resample(None):  # flush
            chunks.append(out.to_ndarray())
    if not chunks:
        return torch.zeros(0), rate
    data = np.concatenate(chunks, axis=1)  # (C, S)
    return _to_mono_tensor(data.T), rate


def _failure_reason(path: str, sf_error: Exception, av_error: Exception) -> str:
    detail = f"soundfile: {sf_error}; FFmpeg: {av_error}"
    if Path(path).suffix.lower() in AUDIO_EXTENSIONS:
        return f"corrupt or truncated audio file ({detail})"
    return f"not an audio file or an unsupported format ({detail})"


def resample(wav: torch.Tensor, orig: int, new: int) -> torch.Tensor:
    """(S,) at ``orig`` Hz -> (S',) at ``new`` Hz; a rate sharing no large factor with ``new`` is rounded
    first (see RATE_ROUNDING), as its exact kernel would be huge."""
    if orig == new:
        return wav
    g = math.gcd(orig, new)
    if max(orig, new) // g > _MAX_REDUCED_RATE:
        orig = max(RATE_ROUNDING, round(orig / RATE_ROUNDING) * RATE_ROUNDING)
        if orig == new:
            return wav
    return AF.resample(wav, orig, new)


def read_audio(path: str | os.PathLike, sample_rate: int, offset: float | None = None,
               duration: float | None = None, max_bytes: int | None = None) -> torch.Tensor:
    """Read an audio file (or a stretch of it) as mono float32 samples at ``sample_rate``.

    Args:
        path: WAV, FLAC, OGG, MP3 (soundfile) or any container FFmpeg decodes (m4a, webm, mp4, ...).
        sample_rate: the rate to resample to (the model's rate).
        offset: start of the stretch to read, seconds (None: the whole file).
        duration: length of the stretch, seconds (None: to the end of the file).
        max_bytes: memory budget of the decoded samples. (Default: MAX_DECODE_BYTES, 2 GiB)

    Returns:
        (S,) float32 tensor in [-1, 1] (for PCM input), every sample finite.

    Raises:
        AudioReadError: naming the file and the reason: missing, permission denied, symlink loop, a
            directory, FIFO or device (refused without opening it), empty, corrupt/truncated (including
            a WAV whose header declares more data than the file holds), not audio, no audio stream, no
            samples, non-finite samples, an implausible sample rate, or over the memory budget.
    """
    path = os.fsdecode(path)
    max_bytes = MAX_DECODE_BYTES if max_bytes is None else max_bytes
    problem = regular_file_problem(path)
    if problem:
        raise AudioReadError(path, problem)
    try:
        short = wav_shortfall(os.fsencode(path))
    except OSError as e:
        raise AudioReadError(path, os_reason(e)) from None
    if short:
        raise AudioReadError(path, short)
    if offset is not None or duration is not None:
        wav, sr = read_stretch(path, offset or 0.0, duration)
        if not bool(torch.isfinite(wav).all()):
            raise AudioReadError(path, "non-finite samples (NaN or infinity)")
        return resample(wav, sr, sample_rate)
    try:
        wav, sr = _read_soundfile(path, sample_rate, max_bytes)
    except (sf.LibsndfileError, RuntimeError, TypeError) as sf_error:
        if isinstance(sf_error, AudioReadError):
            raise
        try:
            wav, sr = _read_pyav(path, sample_rate, max_bytes)
        except AudioReadError:
            raise
        except Exception as av_error:  # PyAV raises a family of FFmpegError subclasses
            raise AudioReadError(path, _failure_reason(path, sf_error, av_error)) from None
    if wav.numel() == 0:
        raise AudioReadError(path, "contains no audio samples (zero-length or truncated before the first frame)")
    if not bool(torch.isfinite(wav).all()):
        raise AudioReadError(path, "non-finite samples (NaN or infinity)")
    return resample(wav, sr, sample_rate)


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
        AudioReadError: if the path is not a readable regular file, or neither soundfile nor FFmpeg can
            read the header.
    """
    path = os.fsdecode(path)
    problem = regular_file_problem(path)
    if problem:
        raise AudioReadError(path, problem)
    try:
        info = sf.info(os.fsencode(path))
        return info.frames / info.samplerate
    except (sf.LibsndfileError, RuntimeError, TypeError, ZeroDivisionError) as sf_error:
        import av

        try:
            with av.open(path) as container:
                if container.duration is not None:
                    return container.duration / av.time_base
            wav, sr = _read_pyav(path, 1, MAX_DECODE_BYTES)  # header without a duration: decode to count
            return wav.numel() / sr
        except AudioReadError:
            raise
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

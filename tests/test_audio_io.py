"""Audio file reading/writing: formats, resampling, channel mixing, clear errors; the speech dataset."""
from __future__ import annotations

import av
import numpy as np
import pytest
import soundfile as sf
import torch

from crnn.data.audio import AudioReadError, audio_duration, read_audio, write_audio
from crnn.data.audio.dataset import AudioDataset, speech_tokenizer
from crnn.data.collate import BadSample, collate


def tone(sr: int, seconds: float = 0.5, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    """(S, C) float32 sine, channel c scaled by 1/(c+1) so mixing to mono is observable."""
    t = np.arange(int(sr * seconds)) / sr
    x = 0.5 * np.sin(2 * np.pi * freq * t)
    return np.stack([x / (c + 1) for c in range(channels)], axis=1).astype(np.float32)


def encode_pyav(path, x: np.ndarray, sr: int, codec: str) -> None:
    """Encode (S, C) float samples with FFmpeg (e.g. AAC in .m4a, Opus in .webm)."""
    layout = "stereo" if x.shape[1] == 2 else "mono"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=sr)
        stream.layout = layout
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x.T), format="fltp", layout=layout)
        frame.sample_rate = sr
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


@pytest.mark.parametrize("ext,subtype", [("wav", "PCM_16"), ("wav", "PCM_24"), ("wav", "PCM_32"), ("wav", "FLOAT"),
                                         ("flac", None), ("ogg", None), ("mp3", None)])
def test_soundfile_formats_read_back(tmp_path, ext, subtype):
    x = tone(16000)
    path = tmp_path / f"a.{ext}"
    sf.write(path, x, 16000, subtype=subtype)
    wav = read_audio(path, 16000)
    assert wav.dtype == torch.float32 and wav.ndim == 1
    assert abs(wav.numel() - x.shape[0]) < 0.1 * x.shape[0]  # lossy codecs may pad a little
    if ext in ("wav", "flac"):  # lossless: exact up to quantisation
        assert np.allclose(wav.numpy(), x[:, 0], atol=1e-3)
    else:  # lossy and delayed by the codec: same tone, same level
        spectrum = torch.fft.rfft(wav).abs()
        assert int(spectrum.argmax()) * 16000 / wav.numel() == pytest.approx(440, abs=5)
        assert float(wav.pow(2).mean().sqrt()) == pytest.approx(0.5 / 2**0.5, rel=0.15)


@pytest.mark.parametrize("ext,codec,sr", [("m4a", "aac", 44100), ("webm", "libopus", 48000)])
def test_ffmpeg_containers(tmp_path, ext, codec, sr):
    path = tmp_path / f"a.{ext}"
    encode_pyav(path, tone(sr, seconds=1.0, channels=2), sr, codec)
    wav = read_audio(path, 16000)
    assert wav.ndim == 1 and abs(wav.numel() - 16000) < 1600  # resampled to 16 kHz; codec delay allowed
    # mono = mean of channels at amplitudes 0.5 and 0.25: a 0.375 sine, RMS 0.265 (steady middle part)
    assert float(wav[4000:12000].pow(2).mean().sqrt()) == pytest.approx(0.375 / 2**0.5, rel=0.1)
    assert audio_duration(path) == pytest.approx(1.0, abs=0.1)


def test_resample_and_stereo_mixdown(tmp_path):
    x = tone(44100, seconds=1.0, channels=2)
    path = tmp_path / "s.wav"
    sf.write(path, x, 44100)
    wav = read_audio(path, 16000)
    assert wav.numel() == 16000
    ref = read_audio(tmp_path / "s.wav", 44100)
    assert np.allclose(ref.numpy(), x.mean(axis=1), atol=1e-4)
    assert float(wav.abs().max()) == pytest.approx(0.375, abs=0.02)  # (0.5 + 0.25) / 2


def test_int_pcm_scaled(tmp_path):
    path = tmp_path / "i.wav"
    sf.write(path, np.array([0, 16384, -32768, 32767], dtype=np.int16), 8000)
    assert read_audio(path, 8000).tolist() == pytest.approx([0.0, 0.5, -1.0, 32767 / 32768])


def test_write_audio_roundtrip(tmp_path):
    x = torch.from_numpy(tone(16000, channels=1)[:, 0])
    write_audio(tmp_path / "sub" / "o.flac", x, 16000)
    assert torch.allclose(read_audio(tmp_path / "sub" / "o.flac", 16000), x, atol=1e-4)
    write_audio(tmp_path / "st.wav", torch.stack([x, x]), 16000)  # (C, S)
    assert sf.info(tmp_path / "st.wav").channels == 2


def _error(path) -> str:
    with pytest.raises(AudioReadError) as e:
        read_audio(path, 16000)
    assert str(path) in str(e.value)
    return e.value.reason


def test_errors_name_file_and_reason(tmp_path):
    assert "no such file" in _error(tmp_path / "missing.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    assert "empty" in _error(tmp_path / "empty.wav")
    (tmp_path / "notes.txt").write_text("hello world\n" * 20)
    assert "not an audio file" in _error(tmp_path / "notes.txt")
    sf.write(tmp_path / "zero.wav", np.zeros(0, np.float32), 16000)
    assert "no audio samples" in _error(tmp_path / "zero.wav")
    sf.write(tmp_path / "good.flac", tone(16000), 16000)
    data = (tmp_path / "good.flac").read_bytes()
    (tmp_path / "cut.flac").write_bytes(data[: len(data) // 2])
    assert "corrupt or truncated" in _error(tmp_path / "cut.flac")
    (tmp_path / "head.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt ")
    assert "corrupt or truncated" in _error(tmp_path / "head.wav")


def test_video_only_container_is_reported(tmp_path):
    path = tmp_path / "v.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width, s.height = 32, 32
        for _ in range(3):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    assert "no audio stream" in _error(path)


def test_dataset_items_bad_samples_and_lengths(tmp_path):
    sf.write(tmp_path / "a.wav", tone(8000, 0.5), 8000)
    sf.write(tmp_path / "b.flac", tone(16000, 0.25), 16000)
    (tmp_path / "c.wav").write_bytes(b"")
    rows = [
        {"path": str(tmp_path / "a.wav"), "text": "Hello, World!"},
        {"path": str(tmp_path / "b.flac"), "text": "low", "duration": 0.25},
        {"path": str(tmp_path / "c.wav"), "text": "hello"},
        {"path": str(tmp_path / "a.wav"), "text": "quiz"},  # 'q', 'u', 'i', 'z' never seen in training text
    ]
    tok = speech_tokenizer([r["text"] for r in rows[:3]])
    assert tok.normalize("Don't STOP, 2 go!") == "don't stop go"
    ds = AudioDataset(rows, tok, sample_rate=16000)
    item = ds[0]
    assert item["text"] == "hello world" and item["signal"].shape == (8000,)
    assert tok.decode(item["tokens"].tolist()) == "hello world"
    bad = ds[2]
    assert isinstance(bad, BadSample) and bad.path.endswith("c.wav") and "empty" in bad.reason
    unknown = ds[3]
    assert isinstance(unknown, BadSample) and "'q'" in unknown.reason
    assert ds.lengths() == [8000, 4000, 0, 8000]
    batch = collate([ds[i] for i in range(4)])
    assert len(batch) == 2 and len(batch.skipped) == 2 and batch.x.shape == (2, 8000)

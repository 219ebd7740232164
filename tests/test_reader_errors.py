"""Readers off the happy path: the right reason for each kind of bad input, never a wrong answer or a hang."""
from __future__ import annotations

import os
import struct

import numpy as np
import pytest
import soundfile as sf
import torch

from crnn.data.audio import AudioReadError, audio_duration, read_audio
from crnn.data.audio.dataset import AudioDataset, speech_tokenizer
from crnn.data.collate import BadSample
from crnn.data.video import VideoReadError, read_features, read_video, write_video
from crnn.data.build import make_tokenizer
from crnn.data.video.dataset import VideoDataset


def tone(sr: int = 16000, seconds: float = 0.5) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * 440 * np.arange(int(sr * seconds)) / sr)).astype(np.float32)


def audio_reason(path) -> str:
    with pytest.raises(AudioReadError) as e:
        read_audio(path, 16000)
    assert os.fsdecode(path) in str(e.value)
    return e.value.reason


def video_error(path) -> str:
    with pytest.raises(VideoReadError) as e:
        read_video(path)
    assert os.fsdecode(path) in str(e.value)
    return str(e.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_a_bad_file(tmp_path, bad):
    x = tone()
    x[100] = bad
    sf.write(tmp_path / "a.wav", x, 16000, subtype="FLOAT")
    assert "non-finite samples" in audio_reason(tmp_path / "a.wav")
    tok = speech_tokenizer(["a"])
    item = AudioDataset([{"path": str(tmp_path / "a.wav"), "text": "a"}], tok, 16000)[0]
    assert isinstance(item, BadSample) and item.path.endswith("a.wav") and "non-finite" in item.reason


def test_non_finite_features_are_a_bad_file(tmp_path):
    arr = np.ones((10, 4), np.float32)
    arr[3, 2] = np.nan
    np.save(tmp_path / "f.npy", arr)
    with pytest.raises(VideoReadError, match="f.npy: non-finite"):
        read_features(tmp_path / "f.npy")
    np.save(tmp_path / "big.npy", np.full((10, 4), 1e300))  # finite float64, inf once float32
    with pytest.raises(VideoReadError, match="non-finite"):
        read_features(tmp_path / "big.npy")
    tok = make_tokenizer(["a"], "video")
    item = VideoDataset([{"path": str(tmp_path / "f.npy"), "text": "a"}], tok, {})[0]
    assert isinstance(item, BadSample) and "non-finite" in item.reason


def test_truncated_wav_is_an_error(tmp_path):
    for subtype in ("PCM_16", "FLOAT"):
        sf.write(tmp_path / "a.wav", tone(), 16000, subtype=subtype)
        data = (tmp_path / "a.wav").read_bytes()
        (tmp_path / "half.wav").write_bytes(data[: len(data) // 2])
        assert "truncated WAV" in audio_reason(tmp_path / "half.wav")
        (tmp_path / "one_byte_short.wav").write_bytes(data[:-1])
        assert "truncated WAV" in audio_reason(tmp_path / "one_byte_short.wav")
    # A streamed WAV (data size unknown: 0xFFFFFFFF) is read as far as it goes.
    streamed = bytearray(data)
    i = streamed.index(b"data")
    streamed[i + 4:i + 8] = b"\xff\xff\xff\xff"
    (tmp_path / "streamed.wav").write_bytes(bytes(streamed))
    assert read_audio(tmp_path / "streamed.wav", 16000).numel() == 8000
    # An extra chunk after the samples (LIST metadata) is fine.
    (tmp_path / "extra.wav").write_bytes(data + b"LIST\x04\x00\x00\x00INFO")
    assert read_audio(tmp_path / "extra.wav", 16000).numel() == 8000


def test_truncated_mp3_is_an_error(tmp_path):
    sf.write(tmp_path / "a.mp3", tone(seconds=2.0), 16000)
    data = (tmp_path / "a.mp3").read_bytes()
    (tmp_path / "half.mp3").write_bytes(data[: len(data) // 2])
    assert "truncated" in audio_reason(tmp_path / "half.mp3")


def test_wrong_reasons_corrected(tmp_path):
    sf.write(tmp_path / "a.wav", tone(), 16000)
    (tmp_path / "loop.wav").symlink_to(tmp_path / "loop.wav")
    assert "symbolic link loop" in audio_reason(tmp_path / "loop.wav")
    (tmp_path / "dangling.wav").symlink_to(tmp_path / "gone.wav")
    assert "broken symbolic link" in audio_reason(tmp_path / "dangling.wav")
    (tmp_path / "dir.wav").mkdir()
    assert "is a directory" in audio_reason(tmp_path / "dir.wav")
    os.mkfifo(tmp_path / "fifo.wav")  # opening it would block: it must be refused from its stat alone
    assert "named pipe (FIFO)" in audio_reason(tmp_path / "fifo.wav")
    assert "character device" in audio_reason("/dev/zero")
    with pytest.raises(AudioReadError, match="named pipe"):
        audio_duration(tmp_path / "fifo.wav")
    os.mkfifo(tmp_path / "fifo.mp4")
    assert "named pipe (FIFO)" in video_error(tmp_path / "fifo.mp4")
    assert "symbolic link loop" in video_error(tmp_path / "loop.wav")
    os.mkfifo(tmp_path / "fifo.npy")
    with pytest.raises(VideoReadError, match="named pipe"):
        read_features(tmp_path / "fifo.npy")


def test_permission_denied_is_not_corrupt(tmp_path, monkeypatch):
    sf.write(tmp_path / "a.wav", tone(), 16000)
    write_video(tmp_path / "v.mp4", torch.zeros(3, 3, 16, 16, dtype=torch.uint8), fps=10)
    if os.geteuid() != 0:  # as root, mode bits do not stop reading: simulate the refusal instead
        os.chmod(tmp_path / "a.wav", 0)
        os.chmod(tmp_path / "v.mp4", 0)
    else:
        real_open = open

        def refusing_open(file, *args, **kwargs):
            if os.fsdecode(file).endswith(("a.wav", "v.mp4")):
                raise PermissionError(13, "Permission denied", file)
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr("builtins.open", refusing_open)
    assert audio_reason(tmp_path / "a.wav") == "permission denied"
    assert video_error(tmp_path / "v.mp4").endswith("permission denied")


def test_absurd_headers_and_memory_budget(tmp_path):
    sf.write(tmp_path / "hz1.wav", tone()[:100], 1)
    assert "implausible sample rate 1 Hz" in audio_reason(tmp_path / "hz1.wav")
    # 10 s of silence: a small FLAC that decodes to 640 kB of float32
    sf.write(tmp_path / "quiet.flac", np.zeros(160000, np.float32), 16000)
    assert (tmp_path / "quiet.flac").stat().st_size < 20000
    with pytest.raises(AudioReadError, match=r"would need 625.0 kB .* over the 488.3 kB budget"):
        read_audio(tmp_path / "quiet.flac", 16000, max_bytes=500_000)
    assert read_audio(tmp_path / "quiet.flac", 16000, max_bytes=700_000).numel() == 160000
    # resampling up counts too: 10 s at 8 kHz -> 48 kHz is 1.9 MB
    sf.write(tmp_path / "low.flac", np.zeros(80000, np.float32), 8000)
    with pytest.raises(AudioReadError, match="budget"):
        read_audio(tmp_path / "low.flac", 48000, max_bytes=1_000_000)
    write_video(tmp_path / "v.mp4", torch.zeros(20, 3, 64, 64, dtype=torch.uint8), fps=10)
    with pytest.raises(VideoReadError, match="budget"):
        read_video(tmp_path / "v.mp4", max_bytes=100_000)  # 20 x 64 x 64 x 3 = 245 kB
    assert read_video(tmp_path / "v.mp4", max_bytes=300_000).shape == (20, 3, 64, 64)
    np.save(tmp_path / "f.npy", np.zeros((1000, 100), np.float32))
    with pytest.raises(VideoReadError, match="budget"):
        read_features(tmp_path / "f.npy", max_bytes=100_000)


def test_odd_sample_rate_resamples_without_a_huge_kernel():
    from crnn.data.audio import resample

    # 16001 Hz shares no factor with 16000: the exact kernel is 16000 x 16001 taps (1 GB, many seconds).
    x = torch.from_numpy(tone(16001, 1.0))
    y = resample(x, 16001, 8000)
    assert abs(y.numel() - 8000) <= 1
    assert float(y.pow(2).mean().sqrt()) == pytest.approx(0.5 / 2**0.5, rel=0.02)
    assert resample(x, 16001, 16000) is x  # within the rounding: left as it is


def test_header_promising_more_npy_data_than_the_file_holds(tmp_path):
    np.save(tmp_path / "f.npy", np.zeros((100, 8), np.float32))
    data = (tmp_path / "f.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoReadError, match="cut.npy: cannot read features"):
        read_features(tmp_path / "cut.npy")
    header_end = data.index(b"\n") + 1  # the shape in the header claims 10^12 rows
    huge = data[:header_end].replace(b"(100, 8)", b"(10**12, 8)".replace(b"10**12", b"1000000000000"))
    (tmp_path / "huge.npy").write_bytes(huge[: header_end] + data[header_end:])
    with pytest.raises(VideoReadError, match="huge.npy"):
        read_features(tmp_path / "huge.npy")


def test_non_utf8_file_names(tmp_path):
    name = os.path.join(os.fsencode(tmp_path), b"\xff\xfe.wav")
    sf.write(name, tone(), 16000)
    as_str = os.fsdecode(name)  # how Python hands such a name over (surrogate escapes)
    assert read_audio(as_str, 16000).numel() == 8000
    assert read_audio(name, 16000).numel() == 8000
    assert audio_duration(as_str) == pytest.approx(0.5)
    vname = os.path.join(os.fsencode(tmp_path), b"clip\xff.mp4")
    write_video(os.fsdecode(vname), torch.zeros(4, 3, 16, 16, dtype=torch.uint8), fps=10)
    assert read_video(os.fsdecode(vname)).shape == (4, 3, 16, 16)


def _wav_header(sr: int, n_bytes: int) -> bytes:
    fmt = struct.pack("<HHIIHH", 1, 1, sr, sr * 2, 2, 16)
    return b"RIFF" + struct.pack("<I", 36 + n_bytes) + b"WAVEfmt " + struct.pack("<I", 16) + fmt + \
        b"data" + struct.pack("<I", n_bytes)


def test_handwritten_wav_headers(tmp_path):
    samples = (tone() * 32767).astype("<i2").tobytes()
    (tmp_path / "ok.wav").write_bytes(_wav_header(16000, len(samples)) + samples)
    assert read_audio(tmp_path / "ok.wav", 16000).numel() == 8000
    (tmp_path / "liar.wav").write_bytes(_wav_header(16000, 10 * len(samples)) + samples)
    assert "declares 160000 bytes of samples, the file holds 16000" in audio_reason(tmp_path / "liar.wav")
    (tmp_path / "hz0.wav").write_bytes(_wav_header(0, len(samples)) + samples)
    reason = audio_reason(tmp_path / "hz0.wav")
    assert "sample rate" in reason or "corrupt" in reason


def test_fifo_inside_a_frame_folder_is_refused(tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    from torchvision.io import encode_png

    (folder / "0001.png").write_bytes(encode_png(torch.zeros(3, 8, 8, dtype=torch.uint8)).numpy().tobytes())
    os.mkfifo(folder / "0002.png")
    assert "0002.png: frame image: is a named pipe (FIFO)" in video_error(folder)


def test_bad_noise_file_is_named_not_fed(tmp_path):
    from crnn.data.audio.augment import AugmentConfig, WaveAugment

    noise_dir = tmp_path / "noise"
    noise_dir.mkdir()
    bad = tone(16000, 1.0)
    bad[::500] = np.inf  # in every stretch the augmentation may pick
    sf.write(noise_dir / "hiss.wav", bad, 16000, subtype="FLOAT")
    sf.write(tmp_path / "speech.wav", tone(), 16000)
    aug = WaveAugment(AugmentConfig(noise_snr=(10, 10), noise_prob=1.0, noise_dir=str(noise_dir)), 16000)
    ds = AudioDataset([{"path": str(tmp_path / "speech.wav"), "text": "a"}], speech_tokenizer(["a"]), 16000, aug)
    item = ds[0]
    assert isinstance(item, BadSample) and "hiss.wav" in item.reason and "non-finite" in item.reason
    sf.write(noise_dir / "hiss.wav", tone(16000, 1.0), 16000)  # a good noise file: mixed in, finite
    item = ds[0]
    assert isinstance(item, dict) and bool(torch.isfinite(item["signal"]).all())
    assert not torch.allclose(item["signal"], torch.from_numpy(tone()), atol=1e-3)

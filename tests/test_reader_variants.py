"""Every variant a format allows is read exactly (within the format's own precision): bit depths, channel
layouts, colour modes, index placement. Damaged files are the fuzz tests' job (test_fuzz.py)."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from crnn.data.audio import read_audio
from crnn.data.image import read_line_image
from crnn.data.video import read_features, read_video

SR = 8000


def tone(channels: int) -> np.ndarray:
    t = np.arange(SR // 2) / SR
    mono = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1209 * t)
    return np.stack([mono * (1 - 0.3 * c) for c in range(channels)], axis=1).astype(np.float64)  # (S, C)


# (container, subtype, the largest error its precision allows)
AUDIO_VARIANTS = [("wav", "PCM_U8", 1 / 64), ("wav", "PCM_16", 1e-4), ("wav", "PCM_24", 1e-6), ("wav", "PCM_32", 1e-6),
                  ("wav", "FLOAT", 1e-7), ("wav", "DOUBLE", 1e-7), ("flac", "PCM_16", 1e-4), ("flac", "PCM_24", 1e-6),
                  ("aiff", "PCM_16", 1e-4), ("ogg", "VORBIS", 0.05)]


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("ext, subtype, tol", AUDIO_VARIANTS, ids=[f"{e}-{s}" for e, s, _ in AUDIO_VARIANTS])
def test_audio_of_every_depth_and_layout_reads_as_its_samples(tmp_path, ext, subtype, tol, channels):
    source = tone(channels)
    path = tmp_path / f"a.{ext}"
    sf.write(path, source, SR, subtype=subtype)
    wav = read_audio(path, SR)
    expected = torch.from_numpy(source.mean(axis=1)).float()  # channels averaged, full scale kept
    assert wav.shape == expected.shape and wav.dtype == torch.float32
    if subtype == "VORBIS":  # lossy: the same sound, not the same samples
        assert float((wav - expected).pow(2).mean().sqrt()) < tol
    else:
        assert float((wav - expected).abs().max()) <= tol + 1e-7


def line_picture() -> np.ndarray:
    grey = np.full((24, 96), 230, np.uint8)
    grey[6:18, 8:88:6] = 20
    grey[4:20, 50:52] = 120  # a mid grey too
    return grey


@pytest.mark.parametrize("mode, ext", [("L", "png"), ("LA", "png"), ("RGB", "png"), ("RGBA", "png"), ("P", "png"),
                                       ("I;16", "png"), ("I;16", "tif"), ("L", "bmp"), ("RGB", "tif"), ("L", "webp")])
def test_line_images_of_every_colour_mode_read_as_their_grey_levels(tmp_path, mode, ext):
    grey = line_picture()
    if mode == "I;16":
        im = Image.fromarray(grey.astype(np.uint16) * 257)
    else:
        im = Image.fromarray(grey).convert(mode)
    path = tmp_path / f"line.{ext}"
    im.save(path, **({"lossless": True} if ext == "webp" else {}))
    x = read_line_image(path, height=None)
    assert x.shape == (1, 24, 96)
    assert float((x[0] - torch.from_numpy(grey).float() / 255).abs().max()) <= 1.5 / 255


def test_a_bilevel_line_reads_as_black_and_white(tmp_path):
    grey = line_picture()
    Image.fromarray(grey).convert("1").save(tmp_path / "line.png")
    x = read_line_image(tmp_path / "line.png", height=None)
    assert set(torch.unique(x).tolist()) <= {0.0, 1.0} and float(x.mean()) > 0.5


@pytest.mark.parametrize("faststart", [False, True], ids=["index-last", "index-first"])
def test_a_clip_reads_every_frame_whatever_the_index_placement(tmp_path, faststart):
    import av

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (15, 32, 32, 3), dtype=np.uint8)
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w", options={"movflags": "+faststart"} if faststart else {}) as container:
        stream = container.add_stream("libx264", rate=10, options={"crf": "0"})  # lossless H.264
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv444p"
        for f in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        container.mux(stream.encode())
    clip = read_video(path)
    assert clip.shape == (15, 3, 32, 32)
    # lossless coding in YUV: within the colour conversion's rounding
    assert float((clip.permute(0, 2, 3, 1).float() - torch.from_numpy(frames).float()).abs().mean()) < 2.0


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("layout", ["TD", "DT"])
def test_features_of_every_float_width_and_layout_read_as_their_values(tmp_path, dtype, layout):
    feats = np.random.default_rng(0).normal(size=(20, 6)).astype(dtype)
    np.save(tmp_path / "f.npy", feats if layout == "TD" else feats.T)
    x = read_features(tmp_path / "f.npy", layout=layout)
    assert x.shape == (20, 6) and x.dtype == torch.float32
    assert torch.equal(x, torch.from_numpy(feats.astype(np.float32)))

"""Reading clips (PyAV containers, frame folders, .npy features), errors, clip transforms, VideoDataset."""
import numpy as np
import pytest
import torch
from torchvision.io import encode_jpeg, encode_png

from crnn.data.collate import BadSample, collate
from crnn.data.video import (VideoReadError, augment_indices, center_crop, hflip, random_crop, read_features,
                             read_video, resample_indices, video_fps, write_video)
from crnn.data.build import make_tokenizer
from crnn.data.video.dataset import VideoDataset


def ramp_clip(n: int = 20, h: int = 32, w: int = 48) -> torch.Tensor:
    """Smooth frames whose brightness rises with the frame index: (n, 3, h, w) uint8."""
    xs = torch.linspace(0, 60, w)[None, None, :].expand(3, h, w)
    return torch.stack([(xs + 8 * i).clamp(0, 255) for i in range(n)]).to(torch.uint8)


def brightness(frames: torch.Tensor) -> torch.Tensor:
    return frames.float().mean(dim=(1, 2, 3))


@pytest.mark.parametrize("ext,codec", [("mp4", "libx264"), ("avi", "mpeg4"), ("mkv", "libx264"),
                                       ("webm", "libvpx-vp9")])
def test_container_roundtrip(tmp_path, ext, codec):
    clip = ramp_clip()
    path = write_video(tmp_path / f"clip.{ext}", clip, fps=10, codec=codec)
    got = read_video(path)
    assert got.dtype == torch.uint8 and got.shape == clip.shape
    assert (got.float() - clip.float()).abs().mean() < 6  # lossy codecs, smooth content
    assert video_fps(path) == pytest.approx(10)


def test_fps_resampling_and_resize(tmp_path):
    clip = ramp_clip(20)
    path = write_video(tmp_path / "clip.mp4", clip, fps=10)
    half = read_video(path, fps=5)
    assert half.shape[0] == 10
    # Every other source frame, in order.
    assert torch.allclose(brightness(half), brightness(clip[::2]), atol=3)
    double = read_video(path, fps=20)
    assert double.shape[0] == 40 == len(resample_indices(20, 10, 20))
    assert torch.allclose(brightness(double[::2]), brightness(clip), atol=3)
    small = read_video(path, fps=10, size=(16, 24))
    assert small.shape == (20, 3, 16, 24)


def test_frame_folder_png_and_jpeg(tmp_path):
    clip = ramp_clip(12, 24, 24)
    png, jpg = tmp_path / "png" / "1", tmp_path / "jpg"
    png.mkdir(parents=True)
    jpg.mkdir()
    for i, frame in enumerate(clip):  # unpadded numbers: natural order must put 10 after 9
        (png / f"images{i:d}.png").write_bytes(encode_png(frame).numpy().tobytes())
        (jpg / f"f{i:04d}.jpg").write_bytes(encode_jpeg(frame, quality=95).numpy().tobytes())
    (png / "notes.txt").write_text("not a frame")
    got = read_video(png)
    assert torch.equal(got, clip)
    got_jpg = read_video(jpg, size=(12, 12))
    assert got_jpg.shape == (12, 3, 12, 12)
    assert torch.allclose(brightness(got_jpg), brightness(clip), atol=4)
    assert read_video(png, fps=12.5).shape[0] == 6  # folders are 25 fps by default


def test_read_errors_name_file_and_reason(tmp_path):
    cases = {}
    cases["missing"] = (tmp_path / "nope.mp4", "no such")
    (tmp_path / "empty.mp4").write_bytes(b"")
    cases["empty"] = (tmp_path / "empty.mp4", "empty file")
    (tmp_path / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(4000))
    cases["corrupt"] = (tmp_path / "corrupt.mp4", "cannot")
    (tmp_path / "clip.txt").write_text("hello")
    cases["unsupported"] = (tmp_path / "clip.txt", "unsupported video format")
    (tmp_path / "nofr").mkdir()
    cases["no frames"] = (tmp_path / "nofr", "no .png")
    bad = tmp_path / "badframes"
    bad.mkdir()
    (bad / "0001.png").write_bytes(encode_png(ramp_clip(1)[0]).numpy().tobytes())
    (bad / "0002.png").write_bytes(b"\x89PNG broken")
    cases["bad image"] = (bad, "0002.png")
    for name, (path, reason) in cases.items():
        with pytest.raises(VideoReadError) as e:
            read_video(path)
        assert path.name in str(e.value) and reason in str(e.value), (name, str(e.value))


def test_read_features(tmp_path):
    arr = np.random.default_rng(0).normal(size=(30, 8)).astype(np.float64)
    np.save(tmp_path / "f.npy", arr)
    np.save(tmp_path / "g.npy", arr.T)
    assert torch.allclose(read_features(tmp_path / "f.npy"), torch.from_numpy(arr).float())
    assert torch.allclose(read_features(tmp_path / "g.npy", layout="DT"), torch.from_numpy(arr).float())
    np.save(tmp_path / "bad.npy", np.zeros(5))
    with pytest.raises(VideoReadError, match="bad.npy.*2-D"):
        read_features(tmp_path / "bad.npy")
    with pytest.raises(VideoReadError, match="missing.npy"):
        read_features(tmp_path / "missing.npy")


def test_clip_transforms():
    clip = ramp_clip(20, 32, 32)
    rng = np.random.default_rng(0)
    lengths = [len(augment_indices(50, rng, speed=0.2)) for _ in range(200)]
    assert 40 <= min(lengths) < 46 and 54 < max(lengths) <= 60  # ±20%, both directions reached
    idx = augment_indices(50, rng, speed=0.0, temporal_crop=0.2)
    assert 40 <= len(idx) <= 50 and torch.all(idx[1:] - idx[:-1] == 1)  # a contiguous window
    assert torch.all(augment_indices(50, rng, speed=0.2)[1:] >= augment_indices(50, rng, speed=0.2)[0])
    assert center_crop(clip, (16, 16)).shape == (20, 3, 16, 16)
    crops = {tuple(random_crop(clip, (16, 16), rng)[0, 0, 0, :2].tolist()) for _ in range(10)}
    assert len(crops) > 1  # the window moves
    assert torch.equal(hflip(clip)[..., 0], clip[..., -1])


def test_video_dataset_reads_and_skips_bad(tmp_path):
    write_video(tmp_path / "a.mp4", ramp_clip(20), fps=20)
    (tmp_path / "bad.mp4").write_bytes(b"not a video at all")
    rows = [
        {"path": str(tmp_path / "a.mp4"), "text": "wave point", "frame_labels": ["wave"] * 10 + ["point"] * 10},
        {"path": str(tmp_path / "bad.mp4"), "text": "wave"},
        {"path": str(tmp_path / "a.mp4"), "text": "jump"},  # unknown label
    ]
    tok = make_tokenizer(["wave point", "point"], "video")
    ds = VideoDataset(rows, tok, {"fps": 10, "height": 16, "width": 16})
    item = ds[0]
    assert item["signal"].shape == (10, 3, 16, 16) and item["signal"].dtype == torch.uint8  # 20 -> 10 fps
    assert item["tokens"].tolist() == tok.encode("wave point") and item["text"] == "wave point"
    assert item["frame_labels"].tolist() == tok.encode(["wave"] * 5 + ["point"] * 5)
    assert isinstance(ds[1], BadSample) and "bad.mp4" in ds[1].reason
    assert isinstance(ds[2], BadSample) and "jump" in ds[2].reason
    batch = collate([ds[i] for i in range(3)])
    assert len(batch) == 1 and len(batch.skipped) == 2 and batch.x.shape == (1, 10, 3, 16, 16)
    # Training mode rescales the clip length and keeps frame labels in step with frames.
    train = VideoDataset(rows[:1], tok, {"fps": 10, "height": 16, "width": 16, "crop_margin": 0.25}, train=True)
    sizes = set()
    for epoch in range(8):
        train.set_epoch(epoch)
        it = train[0]
        assert it["signal"].shape[1:] == (3, 16, 16) and len(it["frame_labels"]) == len(it["signal"])
        sizes.add(len(it["signal"]))
    assert len(sizes) > 1


def test_clip_loader_matches_eval_dataset_and_pickles(tmp_path):
    import pickle

    import crnn
    from crnn.data.video.dataset import clip_loader

    write_video(tmp_path / "a.mp4", ramp_clip(20, 32, 32), fps=20)
    model = crnn.create_model("video_tiny", vocab_size=3, height=16, width=16, crop_margin=0.25)
    load = pickle.loads(pickle.dumps(clip_loader(model)))  # DataLoader workers pickle it
    frames = load(str(tmp_path / "a.mp4"))
    item = VideoDataset([{"path": str(tmp_path / "a.mp4"), "text": "a"}], make_tokenizer(["a"], "video"),
                        model.reader_args)[0]
    assert frames.shape == (10, 3, 16, 16) and torch.equal(frames, item["signal"])
    with pytest.raises(VideoReadError, match="gone.mp4"):
        load(str(tmp_path / "gone.mp4"))


def test_a_cut_file_whose_index_comes_first_is_refused_not_read_short(tmp_path):
    """An mp4 written with +faststart (index first) and cut to half its bytes still opens and declares all
    its frames; decoding stops early. It is refused by name, never read as a short clip."""
    import av

    from crnn.data.video import VideoReadError, read_video

    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=20)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        rng = np.random.default_rng(0)
        for _ in range(45):
            frame = av.VideoFrame.from_ndarray((rng.random((64, 64, 3)) * 255).astype(np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    assert read_video(path).shape[0] == 45
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(VideoReadError, match=r"cut.mp4: truncated: the container declares 45 frames"):
        read_video(cut)

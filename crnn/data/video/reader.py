"""Reading clips (video files through PyAV, frame folders through torchvision) and clip transforms.

Every reader returns ``uint8`` frames shaped ``(T, C, H, W)`` (RGB, C = 3); per-frame feature files
read as ``float32 (T, D)``. Anything unreadable raises :class:`VideoReadError` naming the file and the
reason, so a dataset can turn it into a skipped sample.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from crnn.data.files import MAX_DECODE_BYTES, format_bytes, os_reason, regular_file_problem
from crnn.data.media import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
FOLDER_FPS = 25.0  # frame rate assumed for frame folders (RWTH-PHOENIX-Weather 2014 is 25 fps)


class VideoReadError(RuntimeError):
    """A clip, frame folder or feature file cannot be read; the message names it and says why."""


def _check_path(path: Path, allow_dir: bool) -> None:
    problem = regular_file_problem(path, allow_dir=allow_dir)
    if problem == "no such file":
        problem = "no such video file or frame folder" if allow_dir else "no such feature file"
    if problem:
        raise VideoReadError(f"{path}: {problem}")


def _check_budget(path: Path, n_bytes: int, what: str, max_bytes: int) -> None:
    if n_bytes > max_bytes:
        raise VideoReadError(f"{path}: decoding would need {format_bytes(n_bytes)} ({what}), over the "
                             f"{format_bytes(max_bytes)} budget (CRNN_MAX_DECODE_BYTES)")


# -- reading ---------------------------------------------------------------------------------------
def read_video(
    path: str | Path, fps: float | None = None, size: tuple[int, int] | None = None,
    folder_fps: float = FOLDER_FPS, max_bytes: int | None = None,
) -> torch.Tensor:
    """Read a video file or a folder of frame images.

    Args:
        path: ``.mp4/.avi/.mkv/.webm/.mov`` file, or a folder of ``.png/.jpg`` frames (sorted by
            the numbers in their names).
        fps: resample to this frame rate by dropping or repeating frames; None keeps every frame.
            (Default: None)
        size: resize every frame to ``(H, W)``; None keeps the source size. (Default: None)
        folder_fps: frame rate of a frame folder, which carries none itself. (Default: 25)
        max_bytes: memory budget of the decoded frames. (Default: MAX_DECODE_BYTES, 2 GiB)

    Returns:
        uint8 frames (T, 3, H, W).

    Raises:
        VideoReadError: naming the path and the reason (missing, permission denied, symlink loop, FIFO or
            device (refused without opening it), empty, unsupported, undecodable, no frames, over budget).
    """
    path = Path(path)
    if fps is not None and not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    _check_path(path, allow_dir=True)
    if path.is_dir():
        return _read_frame_folder(path, fps, size, folder_fps)
    if path.suffix.lower() not in VIDEO_EXTENSIONS:
        raise VideoReadError(
            f"{path}: unsupported video format {path.suffix or '(no extension)'!r} "
            f"(supported: {', '.join(sorted(VIDEO_EXTENSIONS))} or a folder of .png/.jpg/.jpeg frames)"
        )
    return _read_video_file(path, fps, size, MAX_DECODE_BYTES if max_bytes is None else max_bytes)


def video_fps(path: str | Path, folder_fps: float = FOLDER_FPS) -> float:
    """Frame rate of a video file (from its stream) or of a frame folder (``folder_fps``)."""
    path = Path(path)
    _check_path(path, allow_dir=True)
    if path.is_dir():
        return folder_fps
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoReadError(f"{path}: no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            return float(rate) if rate else folder_fps
    except (av.error.FFmpegError, OSError, ValueError, ZeroDivisionError) as e:
        raise VideoReadError(f"{path}: cannot open video ({e})") from None


def resample_indices(n_frames: int, src_fps: float, fps: float | None) -> list[int]:
    """Source frame index for each output frame when converting ``src_fps`` to ``fps``.

    Output frame i shows the source frame on screen at time ``i / fps``: frames are dropped
    (down-sampling) or repeated (up-sampling). None keeps every frame.
    """
    if fps is None or abs(fps - src_fps) < 1e-6:
        return list(range(n_frames))
    ratio = src_fps / fps
    n_out = int(np.floor(n_frames / ratio + 1e-6))
    return [min(int(np.floor(i * ratio + 1e-6)), n_frames - 1) for i in range(n_out)]


# A file must deliver this share of the frames its container declares (frame counts of some muxers are
# estimates by a frame or two; a cut file delivers far fewer).
MIN_DECODED_SHARE = 0.95


def _read_video_file(path: Path, fps: float | None, size: tuple[int, int] | None, max_bytes: int) -> torch.Tensor:
    import av

    kwargs = {"format": "rgb24"}
    if size is not None:
        kwargs.update(height=int(size[0]), width=int(size[1]))
    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoReadError(f"{path}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # frame/slice threads inside FFmpeg
            rate = stream.average_rate or stream.guessed_rate
            src_fps = float(rate) if rate else FOLDER_FPS
            if not 0 < src_fps < 10_000:  # a damaged header; the default keeps the frames in order
                src_fps = FOLDER_FPS
            h, w = size if size is not None else (stream.height or 0, stream.width or 0)
            frame_bytes = 3 * int(h) * int(w)
            claimed = stream.frames or 0
            if fps is not None:
                claimed = int(claimed * fps / src_fps) + 1
            _check_budget(path, claimed * frame_bytes, f"{claimed} frames of {h}x{w}", max_bytes)
            step = None if fps is None else src_fps / fps
            next_t = 0.0  # source-frame time (in frames) of the next output frame
            n_src, arr = 0, None
            for k, frame in enumerate(container.decode(stream)):
                n_src = k + 1
                # the header may lie: count what is actually kept
                fh, fw = size if size is not None else (frame.height, frame.width)
                _check_budget(path, (len(frames) + 1) * 3 * int(fh) * int(fw), f"{len(frames) + 1} frames of {fh}x{fw}",
                              max_bytes)
                if step is None:
                    frames.append(frame.to_ndarray(**kwargs))
                    continue
                if k + 1e-6 < next_t:
                    continue
                arr = frame.to_ndarray(**kwargs)
                while k + 1e-6 >= next_t:  # repeats the frame when up-sampling
                    frames.append(arr)
                    next_t += step
            if step is not None and arr is not None:  # same count as resample_indices when up-sampling
                frames.extend([arr] * (len(resample_indices(n_src, src_fps, fps)) - len(frames)))
            declared = stream.frames or 0
            if declared and n_src < declared * MIN_DECODED_SHARE - 2:  # a cut file whose index survived
                raise VideoReadError(f"{path}: truncated: the container declares {declared} frames, only {n_src} "
                                     "could be decoded")
    except VideoReadError:
        raise
    except (av.error.FFmpegError, OSError, ValueError, ZeroDivisionError, OverflowError) as e:
        raise VideoReadError(f"{path}: cannot decode video ({type(e).__name__}: {e})") from None
    if not frames:
        raise VideoReadError(f"{path}: contains no video frames")
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()  # (T, 3, H, W)


def _natural_key(p: Path) -> list:
    """Sort ``frame2.png`` before ``frame10.png``."""
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", p.name)]


def list_frames(folder: str | Path) -> list[Path]:
    """Frame images of a folder in natural order; VideoReadError if there are none."""
    folder = Path(folder)
    try:
        files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS), key=_natural_key)
    except OSError as e:
        raise VideoReadError(f"{folder}: cannot list the frame folder ({os_reason(e)})") from None
    if not files:
        raise VideoReadError(f"{folder}: frame folder holds no .png/.jpg/.jpeg frames")
    return files


def _read_frame_folder(
    folder: Path, fps: float | None, size: tuple[int, int] | None, folder_fps: float
) -> torch.Tensor:
    from torchvision.io import ImageReadMode, decode_image

    files = list_frames(folder)
    idx = resample_indices(len(files), folder_fps, fps)
    decoded: dict[int, torch.Tensor] = {}
    frames = []
    for i in idx:
        if i not in decoded:
            problem = regular_file_problem(files[i])  # a FIFO named like a frame would block the decoder
            if problem:
                raise VideoReadError(f"{files[i]}: frame image: {problem}")
            try:
                img = decode_image(str(files[i]), mode=ImageReadMode.RGB)  # (3, H, W) uint8
            except (RuntimeError, OSError) as e:
                raise VideoReadError(f"{files[i]}: cannot decode frame image ({e})") from None
            decoded[i] = img if size is None else resize_frames(img[None], size)[0]
        frames.append(decoded[i])
    if not frames:
        raise VideoReadError(f"{folder}: too few frames for {fps} fps")
    shapes = {tuple(f.shape) for f in frames}
    if len(shapes) > 1:
        raise VideoReadError(f"{folder}: frames differ in size {sorted(shapes)}; pass size=(H, W) to resize")
    return torch.stack(frames)


def read_features(path: str | Path, layout: str = "TD", max_bytes: int | None = None) -> torch.Tensor:
    """Read precomputed per-frame features from ``.npy`` as float32 (T, D).

    Args:
        path: a ``.npy`` file holding a 2-D array.
        layout: ``"TD"`` (frames first) or ``"DT"`` (features first, as MS-TCN's Breakfast
            features ship). (Default: ``"TD"``)
        max_bytes: memory budget of the float32 features. (Default: MAX_DECODE_BYTES, 2 GiB)

    Raises:
        VideoReadError: naming the file and the reason (missing, not a regular file, not ``.npy``,
            truncated or damaged, not a 2-D real array, non-finite values, over the memory budget).
    """
    path = Path(path)
    if layout not in ("TD", "DT"):
        raise ValueError(f"feature layout must be 'TD' or 'DT', got {layout!r}")
    _check_path(path, allow_dir=False)
    if path.suffix.lower() != ".npy":
        raise VideoReadError(f"{path}: unsupported feature format {path.suffix!r} (expected .npy)")
    try:  # memory-mapped first: the header's shape is checked before anything is allocated
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as e:  # numpy's header parser raises many types (ValueError, SyntaxError, TokenError, ...)
        raise VideoReadError(f"{path}: cannot read features ({type(e).__name__}: {e})") from None
    if arr.ndim != 2 or 0 in arr.shape:
        raise VideoReadError(f"{path}: expected a non-empty 2-D feature array, got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise VideoReadError(f"{path}: expected real-valued features, got dtype {arr.dtype}")
    _check_budget(path, 4 * arr.size, f"{arr.shape[0]}x{arr.shape[1]} features",
                  MAX_DECODE_BYTES if max_bytes is None else max_bytes)
    if layout == "DT":
        arr = arr.T
    with np.errstate(over="ignore"):  # too large for float32 -> inf, refused just below
        feats = torch.from_numpy(np.array(arr, dtype=np.float32))  # a copy: the file may change later
    if not bool(torch.isfinite(feats).all()):
        raise VideoReadError(f"{path}: non-finite values (NaN or infinity) in the features")
    return feats


def write_video(path: str | Path, frames: torch.Tensor | np.ndarray, fps: float, codec: str = "libx264") -> Path:
    """Write uint8 frames (T, 3, H, W) to a video file with PyAV (even H and W for yuv420p codecs)."""
    import av
    from fractions import Fraction

    path = Path(path)
    arr = frames.numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if arr.ndim != 4 or arr.shape[1] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"write_video expects uint8 frames (T, 3, H, W), got {arr.dtype} {arr.shape}")
    arr = np.ascontiguousarray(arr.transpose(0, 2, 3, 1))  # (T, H, W, 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height = arr.shape[2], arr.shape[1]
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "18", "preset": "veryfast"}
        for img in arr:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        container.mux(stream.encode())  # flush delayed frames
    return path


# -- clip transforms (CPU, per item; normalisation happens in the frontend, on device) ---------------
def resize_frames(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 (T, C, H, W) -> uint8 (T, C, size[0], size[1]) with antialiased bilinear resizing."""
    if tuple(frames.shape[-2:]) == tuple(size):
        return frames
    out = F.interpolate(frames.float(), size=tuple(size), mode="bilinear", antialias=True, align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8)


def center_crop(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(T, C, H, W) -> (T, C, h, w): the central window."""
    H, W = frames.shape[-2:]
    h, w = size
    if h > H or w > W:
        raise ValueError(f"crop {size} larger than frames {(H, W)}")
    top, left = (H - h) // 2, (W - w) // 2
    return frames[..., top : top + h, left : left + w]


def random_crop(frames: torch.Tensor, size: tuple[int, int], rng: np.random.Generator) -> torch.Tensor:
    """(T, C, H, W) -> (T, C, h, w): one random window for the whole clip (so motion is kept)."""
    H, W = frames.shape[-2:]
    h, w = size
    if h > H or w > W:
        raise ValueError(f"crop {size} larger than frames {(H, W)}")
    top, left = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
    return frames[..., top : top + h, left : left + w]


def temporal_resample(n_frames: int, factor: float) -> torch.Tensor:
    """Frame indices that stretch (factor > 1) or squeeze (factor < 1) a clip of ``n_frames``."""
    n_out = max(1, int(round(n_frames * factor)))
    return torch.clamp((torch.arange(n_out, dtype=torch.float64) / factor).floor().long(), max=n_frames - 1)


def augment_indices(
    n_frames: int, rng: np.random.Generator, speed: float = 0.2, temporal_crop: float = 0.0
) -> torch.Tensor:
    """Training-time temporal augmentation as frame indices into a clip.

    Args:
        n_frames: clip length T.
        rng: numpy random generator.
        speed: rescale the clip length by a random factor in ``[1 - speed, 1 + speed]``. (Default: 0.2)
        temporal_crop: drop up to this fraction of frames, split at random between the two ends.
            Keep it small for CTC: a crop can cut the first or last label. (Default: 0.0)

    Returns:
        (T_new,) int64 indices; apply the same ones to frames and frame-level labels.
    """
    idx = torch.arange(n_frames)
    if temporal_crop > 0 and n_frames > 2:
        drop = int(rng.integers(0, int(n_frames * temporal_crop) + 1))
        head = int(rng.integers(0, drop + 1))
        idx = idx[head : n_frames - (drop - head)]
    if speed > 0:
        factor = float(rng.uniform(1 - speed, 1 + speed))
        idx = idx[temporal_resample(len(idx), factor)]
    return idx


# BT.601 RGB -> YCbCr, the conversion in front of yuv420p video codecs.
_YCBCR = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def codec_degrade(frames: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """What lossy yuv420p coding (H.264, VP9, MPEG-4 at common quality) does to clean frames, cheaply.

    Colour is averaged over 2x2 pixel blocks (4:2:0 chroma subsampling), and detail is softened by a
    3x3 blur of random strength, as quantisation removes fine texture and noise. A model trained on
    clean rendered frames otherwise misreads the same clips once they are saved as mp4.

    Args:
        frames: uint8 (T, 3, H, W) with even H and W.
        rng: draws the blur strength.

    Returns:
        uint8 (T, 3, H, W).
    """
    f = frames.float()
    ycc = torch.einsum("ij,tjhw->tihw", _YCBCR, f)
    chroma = F.interpolate(F.avg_pool2d(ycc[:, 1:], 2), scale_factor=2, mode="bilinear", align_corners=False)
    luma = ycc[:, :1]
    k = torch.tensor([1.0, 2.0, 1.0])
    kernel = (k[:, None] * k[None] / 16).expand(1, 1, 3, 3)
    blurred = F.conv2d(F.pad(luma, (1, 1, 1, 1), mode="replicate"), kernel)
    strength = float(rng.uniform(0.3, 1.0))
    luma = luma + strength * (blurred - luma)
    rgb = torch.einsum("ij,tjhw->tihw", torch.linalg.inv(_YCBCR), torch.cat([luma, chroma], 1))
    return rgb.round().clamp(0, 255).to(torch.uint8)


def hflip(frames: torch.Tensor) -> torch.Tensor:
    """Mirror frames (T, C, H, W) left-right. Never use it where labels name a direction."""
    return frames.flip(-1)


def fit_frames(frames: torch.Tensor, size: Sequence[int], train: bool, rng: np.random.Generator,
               margin: float = 0.0) -> torch.Tensor:
    """Resize to ``size`` enlarged by ``margin`` and crop back to ``size`` (random in training, centre otherwise)."""
    h, w = int(size[0]), int(size[1])
    if margin <= 0:
        return resize_frames(frames, (h, w))
    big = (int(round(h * (1 + margin))), int(round(w * (1 + margin))))
    frames = resize_frames(frames, big)
    return random_crop(frames, (h, w), rng) if train else center_crop(frames, (h, w))

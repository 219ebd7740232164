"""Video dataset over manifest rows: clip / frame folder / ``.npy`` features -> frames or features -> label ids.

Rows (``crnn.data.manifest.read_manifest`` output) hold ``path`` and ``text`` (labels joined by spaces;
a ``labels`` list is turned into ``text`` by the manifest reader). Optional keys:

* ``frame_labels``: per-frame ground truth, inline (a list of label names) or a path to a text file
  with one label per line (or a ``.npy`` of label names); it must cover the source frames at the
  source frame rate. Labels outside the vocabulary (e.g. background) become -1 and are ignored by
  the frame-accuracy metric.
* ``feature_layout``: ``"TD"`` (default) or ``"DT"`` for ``.npy`` features stored features-first.
* ``fps``: the source frame rate of a frame folder or feature file (default: the reader's).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from crnn.data.collate import BadSample, encode_transcript
from crnn.data.files import regular_file_problem
from crnn.tokenizer import Tokenizer
from crnn.data.video.reader import (FOLDER_FPS, VideoReadError, augment_indices, fit_frames, read_features,
                             read_video, resample_indices, video_fps)
from crnn.data.video.augment import ClipAugment, flip_clip, label_map_for


def read_frame_labels(spec: Any, base: Path | None = None) -> list[str]:
    """Frame-level ground truth as label names: an inline list, a ``.txt`` (one label per line) or ``.npy``."""
    if isinstance(spec, (list, tuple)):
        return [str(s) for s in spec]
    p = Path(spec)
    if not p.is_absolute() and base is not None:
        p = base / p
    problem = regular_file_problem(p)
    if problem:
        raise VideoReadError(f"{p}: frame-label file: {problem}")
    try:
        if p.suffix.lower() == ".npy":
            return [str(s) for s in np.atleast_1d(np.load(p, allow_pickle=False)).tolist()]
        return [line.strip() for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    except Exception as e:  # OSError, UnicodeDecodeError, numpy header errors (ValueError, TokenError, ...)
        raise VideoReadError(f"{p}: cannot read frame labels ({type(e).__name__}: {e})") from None


class VideoDataset(Dataset):
    """Manifest rows -> items ``{signal, tokens, text, path[, frame_labels]}``.

    ``signal`` is uint8 (T, 3, H, W) frames (clips and frame folders, resampled to the frontend's
    ``fps`` and resized to its ``height`` x ``width``) or float32 (T, D) features (``.npy``).
    ``frame_labels`` (T,) holds per-frame token ids (-1 where unknown) when the row has ground truth.

    Args:
        entries: manifest rows.
        tokenizer: label tokenizer.
        reader_args: the model's reader settings (``fps``, ``height``, ``width``, ``crop_margin``: ``CRNN.reader_args``).
        train: apply training augmentation. (Default: False)
        speed: training: random clip-length rescaling range (±). (Default: 0.2)
        temporal_crop: training: fraction of frames that may be cut from the ends. (Default: 0.0)
        flip: training: mirror half of the clips left-right, swapping labels that name a side
            (``move_left`` <-> ``move_right``); refused (ValueError) when such a label has no counterpart in
            the vocabulary. (Default: False)
        crop_margin: resize this much larger, then crop back (random in training, centre otherwise).
            (Default: the frontend's ``crop_margin``, else 0.0, so inference reads clips the same way)
        seed: base seed of the augmentation randomness. (Default: 0)
        clip_augment: training: frame dropping/repetition, flips and pixel augmentation
            (:class:`crnn.data.video.augment.ClipAugment`). (Default: None)
        augment_pixels: apply ``clip_augment``'s pixel transforms here; False leaves them to the trainer,
            which applies them to the batch on the GPU. (Default: True)

    A clip that cannot be read, or a transcript with an unknown label, yields ``BadSample(path, reason)``.
    """

    def __init__(
        self, entries: Sequence[dict[str, Any]], tokenizer: Tokenizer, reader_args: dict, train: bool = False,
        speed: float = 0.2, temporal_crop: float = 0.0, flip: bool = False, crop_margin: float | None = None,
        seed: int = 0, clip_augment: ClipAugment | None = None, augment_pixels: bool = True,
    ):
        self.entries = list(entries)
        self.tokenizer = tokenizer
        self._label_ids = {s: i + 1 for i, s in enumerate(tokenizer.symbols)}  # blank is 0
        self.fps = reader_args.get("fps")
        h, w = reader_args.get("height"), reader_args.get("width")
        self.size = (int(h), int(w)) if h and w else None
        self.train, self.speed, self.temporal_crop = train, speed, temporal_crop
        if crop_margin is None:
            crop_margin = float(reader_args.get("crop_margin", 0.0))
        self.crop_margin, self.seed = crop_margin, seed
        self.clip_augment, self.augment_pixels = clip_augment, augment_pixels
        self.flip = flip or (clip_augment is not None and clip_augment.cfg.flip)
        self._mirror = label_map_for(tokenizer.symbols) if self.flip else None  # raises for unpaired sides
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.entries)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _read(self, row: dict[str, Any]) -> tuple[torch.Tensor, float | None]:
        """Signal and its frame rate (None when left at the source rate)."""
        path = Path(row["path"])
        if path.suffix.lower() == ".npy":
            feats = read_features(path, row.get("feature_layout", "TD"))  # (T, D)
            return feats, None
        src_fps = float(row["fps"]) if row.get("fps") and path.is_dir() else FOLDER_FPS
        frames = read_video(path, fps=self.fps, folder_fps=src_fps)  # (T, 3, H, W), resized below
        return frames, self.fps

    def _frame_label_ids(self, row: dict[str, Any], n_src: int, fps: float | None) -> torch.Tensor:
        names = read_frame_labels(row["frame_labels"], Path(row["path"]).parent)
        ids = torch.tensor([self._label_ids.get(s, -1) for s in names], dtype=torch.long)
        if fps is not None:  # follow the reader's frame-rate conversion
            src = float(row["fps"]) if row.get("fps") else video_fps(row["path"])
            ids = ids[resample_indices(len(ids), src, fps)] if len(ids) else ids
        if len(ids) < n_src:  # a label file a frame or two short: repeat the last label
            ids = torch.cat([ids, ids[-1:].expand(n_src - len(ids))]) if len(ids) else torch.full((n_src,), -1)
        return ids[:n_src]

    def __getitem__(self, index: int) -> dict[str, Any] | BadSample:
        row = self.entries[index]
        path = str(row["path"])
        tokens = encode_transcript(self.tokenizer, row)
        if isinstance(tokens, BadSample):
            return tokens
        try:
            signal, fps = self._read(row)
            frame_ids = self._frame_label_ids(row, len(signal), fps) if row.get("frame_labels") is not None else None
        except VideoReadError as e:
            return BadSample(path, str(e))
        rng = np.random.default_rng([self.seed, index, self.epoch])
        if self.train:
            idx = augment_indices(len(signal), rng, speed=self.speed, temporal_crop=self.temporal_crop)
            signal = signal[idx]
            frame_ids = frame_ids[idx] if frame_ids is not None else None
        tokens = torch.tensor(tokens, dtype=torch.long)
        text = " ".join(self.tokenizer.split(row["text"]))
        augment = self.clip_augment if self.train else None
        g = torch.Generator().manual_seed(int(rng.integers(2**62))) if augment is not None else None
        if augment is not None and augment.cfg.changes_length:
            idx = augment.frame_indices(len(signal), g)
            signal = signal[idx]
            frame_ids = frame_ids[idx] if frame_ids is not None else None
        if signal.dtype == torch.uint8:
            if self.size is not None:
                signal = fit_frames(signal, self.size, self.train, rng, self.crop_margin)
            if self.train and self._mirror is not None and rng.random() < 0.5:
                signal, tokens, frame_ids = flip_clip(signal, self._mirror, tokens, frame_ids)
                text = self.tokenizer.decode(tokens.tolist())
            if augment is not None and self.augment_pixels:
                signal = augment(signal, g)
        item = {"signal": signal.contiguous(), "tokens": tokens,
                "text": text, "path": path}
        if frame_ids is not None:
            item["frame_labels"] = frame_ids
        return item

    def lengths(self) -> list[int]:
        """Source frames per item from the rows' ``num_frames`` (0 where unknown), for bucketing."""
        return [int(row.get("num_frames") or 0) for row in self.entries]


class ClipLoader:
    """Inference reader (picklable, for DataLoader workers): path -> model input, as the eval dataset reads it.

    Clips and frame folders -> uint8 (T, 3, H, W) at the frontend's ``fps`` and size; ``.npy`` -> float32 (T, D).
    """

    def __init__(self, reader_args: dict, feature_layout: str = "TD"):
        self.fps = reader_args.get("fps")
        h, w = reader_args.get("height"), reader_args.get("width")
        self.size = (int(h), int(w)) if h and w else None
        self.crop_margin = float(reader_args.get("crop_margin", 0.0))
        self.feature_layout = feature_layout

    def __call__(self, path: str) -> torch.Tensor:
        p = Path(path)
        if p.suffix.lower() == ".npy":
            return read_features(p, self.feature_layout)
        frames = read_video(p, fps=self.fps)  # (T, 3, H, W)
        if self.size is None:
            return frames
        return fit_frames(frames, self.size, False, np.random.default_rng(0), self.crop_margin).contiguous()


def clip_loader(model: Any) -> ClipLoader:
    """The inference reader for a model (``crnn.CRNN``): frame rate and size from its frontend."""
    return ClipLoader(model.reader_args)


def make_video_dataset(entries: Sequence[dict[str, Any]], tokenizer: Tokenizer, reader_args: dict, train: bool,
                       **options: Any) -> VideoDataset:
    """A VideoDataset for a model's ``reader_args`` (``CRNN.reader_args``: frame rate, size, crop margin).

    ``options`` go to VideoDataset (``speed``, ``temporal_crop``, ``flip``, ``crop_margin``, ``seed``,
    ``clip_augment``, ``augment_pixels``).
    """
    return VideoDataset(entries, tokenizer, dict(reader_args), train=train, **options)

"""Turn a TrainConfig into datasets, a tokenizer and the model arguments they imply."""
from __future__ import annotations

import string
import sys
from dataclasses import dataclass, field
from typing import Any

from torch.utils.data import Dataset

from crnn.tokenizer import Tokenizer, UnknownSymbolError

AUDIO_EXT = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".m4a", ".aac", ".opus", ".wma", ".aiff", ".aif"}
FEATURE_EXT = {".npy"}
# Default preset per modality when the user names none.
DEFAULT_PRESET = {"audio": "small", "video": "video_tiny", "features": "features_tiny"}
MODALITY_OF_FRONTEND = {"audio": "audio", "video": "video", "video3d": "video", "features": "features"}


@dataclass
class DataBundle:
    train: Dataset
    val: Dataset | None
    tokenizer: Tokenizer
    train_lengths: list[float] | None = None  # per item size for bucketing (None: plain batches)
    val_lengths: list[float] | None = None
    skipped: list[str] = field(default_factory=list)  # items dropped before training, with reasons


def modality_of_rows(rows: list[dict]) -> str:
    """Guess "audio", "video" or "features" from a manifest's paths."""
    from pathlib import Path

    for row in rows[:50]:
        p = Path(row["path"])
        if p.suffix.lower() in FEATURE_EXT:
            return "features"
        if p.suffix.lower() in AUDIO_EXT:
            return "audio"
        return "video"  # clips (.mp4/.avi/.mkv/.webm) and frame folders
    return "audio"


def text_tokenizer(texts: list[str]) -> Tokenizer:
    """Speech transcripts get the speech normalisation policy; anything else (DTMF keys, symbols) is
    taken character by character as written."""
    allowed = set(string.ascii_letters + " '.,?!;:-\"")
    if all(set(t) <= allowed for t in texts):
        from crnn.data.audio_dataset import speech_tokenizer

        return speech_tokenizer(texts)
    return Tokenizer.build(texts, kind="char")


def read_rows(source: str) -> list[dict]:
    from crnn.data.manifest import read_manifest

    return read_manifest(source)


def make_dataset(rows: list[dict], tokenizer: Tokenizer, modality: str, model_cfg: Any, train: bool,
                 augment: dict | None = None, clip_augment: Any = None, augment_pixels: bool = True) -> Dataset:
    """Manifest rows -> a dataset of item dicts for the given modality (``clip_augment``: a
    ``crnn.data.video_augment.ClipAugment`` for video training data)."""
    if modality == "audio":
        from crnn.data.audio_dataset import AudioDataset
        from crnn.data.augment import AugmentConfig, WaveAugment

        sr = int(model_cfg.frontend_args.get("sample_rate", 16000))
        aug = WaveAugment(AugmentConfig(**augment), sr) if (train and augment) else None
        return AudioDataset(rows, tokenizer, sr, augment=aug)
    from crnn.data.video_dataset import make_video_dataset

    return make_video_dataset(rows, tokenizer, model_cfg, train, clip_augment=clip_augment if train else None,
                              augment_pixels=augment_pixels)


def prescan(rows: list[dict], tokenizer: Tokenizer, model: Any, modality: str) -> tuple[list[dict], list[str]]:
    """Drop rows whose label has unknown symbols or cannot fit the model's output frames under CTC.

    Uses each row's ``duration`` (audio) or ``num_frames`` (video/features) where present; rows without
    them are checked batch by batch during training instead.
    """
    import torch

    from crnn.ctc import ctc_min_frames

    keep, skipped = [], []
    sr = int(model.cfg.frontend_args.get("sample_rate", 16000)) if modality == "audio" else None
    for i, row in enumerate(rows):
        where = f"{row['path']} (item {i})"
        try:
            tokens = tokenizer.encode(row["text"])
        except UnknownSymbolError as e:
            skipped.append(f"{where}: {e}")
            continue
        if not tokens:
            skipped.append(f"{where}: empty transcript")
            continue
        size = None
        if sr and row.get("duration"):
            size = int(float(row["duration"]) * sr)
        elif row.get("num_frames"):
            size = int(row["num_frames"])
        if size is not None:
            have = int(model.output_lengths(torch.tensor([size]))[0])
            need = ctc_min_frames(tokens)
            if need > have:
                skipped.append(f"{where}: label needs {need} frames under CTC, input gives {have}")
                continue
        keep.append(row)
    return keep, skipped


def report_skipped(skipped: list[str], what: str, limit: int = 20) -> None:
    if not skipped:
        return
    print(f"{what}: skipping {len(skipped)} item(s):", file=sys.stderr)
    for line in skipped[:limit]:
        print(f"  {line}", file=sys.stderr)
    if len(skipped) > limit:
        print(f"  ... and {len(skipped) - limit} more", file=sys.stderr)

"""Media types: which file extensions hold which modality, and the one map from a path to its reader.

Every place that asks "is this audio?" or "which files in this folder are inputs?" asks here, so a
manifest, a decoded folder and an error message never disagree about a suffix.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from crnn.model.modality import MODALITIES  # one home; re-exported here
from crnn.registry import Registry

AUDIO_EXTENSIONS = frozenset({
    ".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".webm", ".mka",
    ".aif", ".aiff", ".au", ".caf", ".w64", ".wma",
})
VIDEO_EXTENSIONS = frozenset({".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v"})
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg"})  # frame folders
FEATURE_EXTENSIONS = frozenset({".npy"})

# Suffixes a modality's reader accepts (``.webm`` and ``.mp4`` carry audio tracks as well as pictures).
READABLE = {
    "audio": AUDIO_EXTENSIONS | {".mp4", ".m4v", ".mkv", ".mov"},
    "video": VIDEO_EXTENSIONS | FEATURE_EXTENSIONS,
    "features": FEATURE_EXTENSIONS,
    "image": frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}),  # text lines
}


def modality_of_path(path: str | Path) -> str:
    """Best guess of what a file holds: ``"audio"``, ``"video"`` (clips, frame folders), ``"features"`` or
    ``"image"`` (a text line: an image file, where a folder of images is a video's frames)."""
    suffix = Path(path).suffix.lower()
    if suffix in FEATURE_EXTENSIONS:
        return "features"
    if suffix in READABLE["image"]:
        return "image"
    if suffix in AUDIO_EXTENSIONS and suffix != ".webm":
        return "audio"
    return "video"


def modality_of_rows(rows: list[dict]) -> str:
    """The modality of a manifest, from its first row's path (``"audio"`` for an empty manifest)."""
    return modality_of_path(rows[0]["path"]) if rows else "audio"


def is_frame_folder(path: Path) -> bool:
    return path.is_dir() and any(f.suffix.lower() in IMAGE_EXTENSIONS for f in list(path.iterdir())[:5])


def expand_inputs(inputs: list[str], modality: str) -> list[str]:
    """Files stay as given (errors are reported when read); folders expand to the files the modality's
    reader takes, sorted; a frame folder is one video input."""
    suffixes = READABLE[modality]
    out: list[str] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir() and not (modality == "video" and is_frame_folder(p)):
            out += sorted(str(f) for f in p.rglob("*") if f.is_file() and f.suffix.lower() in suffixes)
        else:
            out.append(item)
    return out


def empty_folders(inputs: list[str], modality: str) -> list[str]:
    """The folders among ``inputs`` that hold no file the modality's reader takes (each an error to report:
    a folder given as input and silently skipped is a confident wrong answer about the rest)."""
    return [item for item in inputs if Path(item).is_dir() and not expand_inputs([item], modality)]


def folder_problem(folder: str, modality: str) -> str:
    """``"DIR: no audio files in this folder (looked for .flac, .mp3, ...)"``: the message for an empty folder."""
    return f"{folder}: no {modality} files in this folder (looked for {', '.join(sorted(READABLE[modality]))})"


ReaderFactory = Callable[[dict], Callable[[str], torch.Tensor]]
READERS: Registry[ReaderFactory] = Registry("reader")


def register_reader(modality: str, factory: ReaderFactory) -> None:
    """Make ``factory(reader_args) -> (path -> model input)`` the reader of ``modality``.

    Each modality's package registers its own (``crnn.data.audio``, ``crnn.data.video``, ...), so this
    module imports none of them; ``reader_args`` are the model's (``CRNN.reader_args``).
    """
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {', '.join(MODALITIES)}, got {modality!r}")
    READERS.register(modality, factory)


def make_reader(modality: str, reader_args: dict) -> Callable[[str], torch.Tensor]:
    """The reader that turns a path into the model's input, for the model's ``reader_args``.

    audio: (S,) waveform at ``sample_rate``; video: uint8 (T, 3, H, W) frames at ``fps`` and size,
    or (T, D) ``.npy`` features; features: (T, D) float32.
    """
    return READERS.get(modality)(dict(reader_args))

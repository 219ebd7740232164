"""Kaldi data directory: ``wav.scp``, ``text``, optional ``segments``, ``utt2dur`` and ``utt2spk``.

This is what Kaldi, ESPnet, WeNet and icefall recipes produce::

    wav.scp    <recording-id> <audio path>
    text       <utterance-id> <transcript>
    segments   <utterance-id> <recording-id> <start s> <end s>     (optional; end -1: to the end)
    utt2dur    <utterance-id> <seconds>                            (optional)
    utt2spk    <utterance-id> <speaker>                            (optional)

Without ``segments`` an utterance is a whole recording (utterance id = recording id). A segment
becomes a row with ``offset``/``duration``, so only that stretch of the recording is read.
``wav.scp`` entries that are shell pipelines (``sox in.flac -t wav - |``) or archive offsets
(``foo.ark:123``) are refused: convert them to audio files first.
Relative paths resolve against the data directory, else against the current directory (Kaldi
recipes write paths relative to the recipe folder they run in).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterator

from crnn.data.errors import ManifestError
from crnn.data.manifest import Layout, register_layout, utf8_text

_ARK_OFFSET = re.compile(r"\.ark:\d+$")


def is_kaldi_dir(path: str | os.PathLike) -> bool:
    p = Path(path)
    return p.is_dir() and (p / "wav.scp").is_file() and (p / "text").is_file()


def _table(path: Path, min_fields: int) -> Iterator[tuple[str, list[str], int]]:
    """``(key, rest split in fields, line number)`` per non-blank line of a Kaldi table file."""
    with utf8_text(path) as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < min_fields:
                raise ManifestError(f"{path}:{lineno}: expected at least {min_fields} fields, got {line.strip()!r}")
            yield parts[0], parts[1:], lineno


def _resolve(path: str, folder: Path) -> str:
    p = Path(os.path.expanduser(path))
    if p.is_absolute():
        return str(p)
    for base in (folder, Path.cwd()):
        if (base / p).exists():
            return str((base / p).resolve())
    return str((folder / p).resolve())  # missing: reported per item when read


def read_wav_scp(path: Path) -> dict[str, str]:
    """recording id -> absolute audio path. Refuses pipelines and archive offsets, naming the line."""
    recordings = {}
    with utf8_text(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.strip().split(maxsplit=1)
            if len(parts) != 2:
                raise ManifestError(f"{path}:{lineno}: expected '<recording-id> <audio path>'")
            rec, target = parts
            if target.endswith("|") or target.startswith("|"):
                raise ManifestError(
                    f"{path}:{lineno}: {rec} is a piped command ({target!r}); convert the recordings to audio files "
                    "first (run each command once, writing a .wav/.flac file) and list those paths in wav.scp")
            if _ARK_OFFSET.search(target):
                raise ManifestError(f"{path}:{lineno}: {rec} points into a Kaldi archive ({target!r}); "
                                    "extract the recordings to .wav/.flac files first")
            recordings[rec] = _resolve(target, path.parent)
    return recordings


def read_kaldi_dir(folder: str | os.PathLike) -> list[dict[str, Any]]:
    """A Kaldi data directory -> rows ``{path, text, id, [recording, offset, duration], [speaker]}``.

    Raises:
        ManifestError: naming the file and line of anything inconsistent (a transcript for an unknown
            utterance, a segment of an unknown recording, end before start, ...).
    """
    folder = Path(folder)
    if not is_kaldi_dir(folder):
        raise ManifestError(f"{folder}: not a Kaldi data directory (needs wav.scp and text)")
    recordings = read_wav_scp(folder / "wav.scp")
    segments: dict[str, tuple[str, float, float | None]] = {}
    if (folder / "segments").is_file():
        seg_file = folder / "segments"
        for utt, rest, lineno in _table(seg_file, 4):
            rec = rest[0]
            if rec not in recordings:
                raise ManifestError(f"{seg_file}:{lineno}: recording {rec!r} is not in {folder / 'wav.scp'}")
            try:
                start, end = float(rest[1]), float(rest[2])
            except ValueError:
                raise ManifestError(f"{seg_file}:{lineno}: start and end must be seconds, got {rest[1:3]}") from None
            if start < 0 or (end != -1 and end <= start):
                raise ManifestError(f"{seg_file}:{lineno}: bad segment times {start} -> {end}")
            segments[utt] = (rec, start, None if end == -1 else end - start)
    durations = {}
    if (folder / "utt2dur").is_file():
        for utt, rest, lineno in _table(folder / "utt2dur", 2):
            try:
                durations[utt] = float(rest[0])
            except ValueError:
                raise ManifestError(f"{folder / 'utt2dur'}:{lineno}: duration must be seconds, got {rest[0]!r}") from None
    speakers = {utt: rest[0] for utt, rest, _ in _table(folder / "utt2spk", 2)} if (folder / "utt2spk").is_file() else {}

    rows = []
    text_file = folder / "text"
    with utf8_text(text_file) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.strip().split(maxsplit=1)
            utt, text = parts[0], parts[1] if len(parts) == 2 else ""
            row: dict[str, Any] = {"id": utt}
            if segments:
                if utt not in segments:
                    raise ManifestError(f"{text_file}:{lineno}: utterance {utt!r} is not in {folder / 'segments'}")
                rec, offset, duration = segments[utt]
                row.update(path=recordings[rec], recording=rec, offset=offset)
                if duration is not None:
                    row["duration"] = duration
            else:
                if utt not in recordings:
                    raise ManifestError(f"{text_file}:{lineno}: utterance {utt!r} is not in {folder / 'wav.scp'}")
                row["path"] = recordings[utt]
                if utt in durations:
                    row["duration"] = durations[utt]
            row["text"] = text
            if utt in speakers:
                row["speaker"] = speakers[utt]
            rows.append(row)
    return rows

register_layout(Layout("kaldi", read_kaldi_dir, is_kaldi_dir, folder=True, member_files=("wav.scp", "text", "segments"),
                       what="Kaldi (wav.scp + text)"))

"""LibriSpeech layout reader: ``<root>/<split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac``
with one ``<speaker>-<chapter>.trans.txt`` per chapter (lines ``<utt-id> TRANSCRIPT``).

Works on the corpus root (all splits), one split folder, or any folder below with transcripts.
Transcripts are kept as written (upper case); the tokenizer's normalisation lower-cases them.
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from crnn.data.errors import ManifestError
from crnn.data.manifest import Layout, register_layout, utf8_lines

AUDIO_SUFFIXES = (".flac", ".wav")  # the corpus ships FLAC; converted copies are often WAV


def is_librispeech_dir(path: str | os.PathLike) -> bool:
    """True if ``path`` is a folder with at least one ``*.trans.txt`` below it."""
    return Path(path).is_dir() and next(Path(path).rglob("*.trans.txt"), None) is not None


def _audio_for(folder: Path, utt_id: str) -> Path:
    for suffix in AUDIO_SUFFIXES:
        candidate = folder / f"{utt_id}{suffix}"
        if candidate.exists():
            return candidate
    return folder / f"{utt_id}{AUDIO_SUFFIXES[0]}"  # missing: the dataset reports it per file


def read_transcripts(trans_file: str | os.PathLike) -> list[dict[str, Any]]:
    """One ``*.trans.txt`` -> rows ``{path, text, id, speaker, chapter}``.

    Raises:
        ManifestError: naming file and line for a line without an id and a transcript.
    """
    trans_file = Path(trans_file)
    rows = []
    with io.StringIO("".join(utf8_lines(trans_file))) as f:  # a line that is not UTF-8 is named
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.strip().split(maxsplit=1)
            if len(parts) != 2:
                raise ManifestError(f"{trans_file}:{lineno}: expected '<utterance-id> TRANSCRIPT'")
            utt_id, text = parts
            speaker, chapter = (utt_id.split("-") + ["", ""])[:2]
            rows.append({
                "path": str(_audio_for(trans_file.parent, utt_id).resolve()),
                "text": text,
                "id": utt_id,
                "speaker": speaker,
                "chapter": chapter,
            })
    return rows


def librispeech_splits(root: str | os.PathLike) -> dict[str, list[dict[str, Any]]]:
    """Rows grouped by split (the folder two levels above each chapter folder).

    For a split folder itself (``<split>/<speaker>/<chapter>``) the split is the folder's name.
    """
    root = Path(root)
    if not is_librispeech_dir(root):
        raise ManifestError(f"{root}: no LibriSpeech *.trans.txt files under this folder")
    splits: dict[str, list[dict[str, Any]]] = {}
    for trans in sorted(root.rglob("*.trans.txt")):
        rel = trans.parent.relative_to(root).parts  # (split, speaker, chapter) or (speaker, chapter)
        split = rel[-3] if len(rel) >= 3 else root.resolve().name
        splits.setdefault(split, []).extend(read_transcripts(trans))
    return splits


def read_librispeech(root: str | os.PathLike) -> list[dict[str, Any]]:
    """All utterances under a LibriSpeech root or split folder, in a stable (sorted) order."""
    return [row for rows in librispeech_splits(root).values() for row in rows]


register_layout(Layout("librispeech", read_librispeech, is_librispeech_dir, folder=True, checked=False,
                       what="LibriSpeech (*.trans.txt)"))

"""Hugging Face ``audiofolder``: a folder of audio files with ``metadata.csv`` or ``metadata.jsonl``.

The metadata names each file in ``file_name`` (relative to the folder) and its transcript in one
text column: ``transcription``, ``sentence`` or ``text`` (the first present, in that order). Other
columns are kept as row fields.
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from crnn.data.errors import ManifestError
from crnn.data.manifest import Layout, register_layout, utf8_text

METADATA_FILES = ("metadata.jsonl", "metadata.csv")
TEXT_COLUMNS = ("transcription", "sentence", "text")


def metadata_file(folder: str | os.PathLike) -> Path | None:
    """The folder's ``metadata.jsonl`` or ``metadata.csv`` (None if it has neither)."""
    for name in METADATA_FILES:
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


def is_audiofolder(path: str | os.PathLike) -> bool:
    return Path(path).is_dir() and metadata_file(path) is not None


def _row(raw: Any, folder: Path, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ManifestError(f"{where}: expected an object with 'file_name' and a text column")
    if not raw.get("file_name"):
        raise ManifestError(f"{where}: missing 'file_name'")
    column = next((c for c in TEXT_COLUMNS if c in raw), None)
    if column is None:
        raise ManifestError(f"{where}: no text column (one of {', '.join(TEXT_COLUMNS)})")
    text = raw[column]
    if not isinstance(text, str):
        raise ManifestError(f"{where}: {column!r} must be a string, got {type(text).__name__}")
    row = {k: v for k, v in raw.items() if k not in ("file_name", column)}
    row.update(path=str((folder / raw["file_name"]).resolve()), text=text)
    row.setdefault("id", Path(raw["file_name"]).stem)
    return row


def read_audiofolder(folder: str | os.PathLike) -> list[dict[str, Any]]:
    """An audiofolder -> rows ``{path, text, id, <other columns>}``.

    Raises:
        ManifestError: naming the metadata file and line that cannot be used.
    """
    folder = Path(folder)
    meta = metadata_file(folder)
    if meta is None:
        raise ManifestError(f"{folder}: not a Hugging Face audiofolder (no metadata.csv or metadata.jsonl)")
    rows = []
    with utf8_text(meta) as f:
        if meta.suffix == ".jsonl":
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    raw = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ManifestError(f"{meta}:{lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
                rows.append(_row(raw, folder, f"{meta}:{lineno}"))
        else:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            if "file_name" not in header or not set(TEXT_COLUMNS) & set(header):
                raise ManifestError(f"{meta}:1: header must name 'file_name' and one of {', '.join(TEXT_COLUMNS)}, "
                                    f"got {header}")
            for raw in reader:
                where = f"{meta}:{reader.line_num}"
                if None in raw or any(v is None for v in raw.values()):
                    raise ManifestError(f"{where}: expected {len(header)} fields like the header")
                rows.append(_row(raw, folder, where))
    return rows


register_layout(Layout("audiofolder", read_audiofolder, is_audiofolder, folder=True,
                       what="Hugging Face audiofolder (metadata.csv / metadata.jsonl)"))

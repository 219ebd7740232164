"""Manifests: lists of ``{path, text, [duration], [id], ...}`` rows read from JSON lines, NeMo, CSV/TSV
or a LibriSpeech directory, and written back as JSON lines.

Accepted inputs (relative paths resolve against the manifest's folder):

* JSON lines: ``{"path": "a.wav", "text": "hello"}`` or ``{"path": ..., "labels": ["a", "b"]}``
  (text = labels joined by a space); NeMo rows ``{"audio_filepath", "duration", "text"}`` as they are.
* CSV / TSV with a header holding ``path`` (or ``audio_filepath``) and ``text`` columns.
* A directory holding LibriSpeech ``*.trans.txt`` files (see ``crnn.data.librispeech``).
"""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any, Iterable

PATH_KEYS = ("path", "audio_filepath")  # first found wins; NeMo uses audio_filepath


class ManifestError(ValueError):
    """A manifest (or one of its lines) cannot be used; the message names the file and line."""


def _resolve(path: str, base: Path) -> str:
    p = Path(os.path.expanduser(path))
    return str(p if p.is_absolute() else (base / p).resolve())


def normalize_row(raw: dict[str, Any], base: Path, where: str) -> dict[str, Any]:
    """One raw manifest row -> ``{path (absolute), text, [duration], [id], other keys...}``.

    Args:
        raw: the parsed row.
        base: folder that relative paths resolve against.
        where: ``"file:line"`` for error messages.
    """
    if not isinstance(raw, dict):
        raise ManifestError(f"{where}: expected an object with 'path' and 'text', got {type(raw).__name__}")
    key = next((k for k in PATH_KEYS if raw.get(k) not in (None, "")), None)
    if key is None:
        raise ManifestError(f"{where}: missing 'path' (or NeMo 'audio_filepath')")
    row = {k: v for k, v in raw.items() if k not in PATH_KEYS}
    row["path"] = _resolve(str(raw[key]), base)
    if "text" in raw and raw["text"] is not None:
        if not isinstance(raw["text"], str):
            raise ManifestError(f"{where}: 'text' must be a string, got {type(raw['text']).__name__}")
    elif isinstance(raw.get("labels"), (list, tuple)):
        row["text"] = " ".join(str(label) for label in raw["labels"])
    elif isinstance(raw.get("labels"), str):
        row["text"] = raw["labels"]
    else:
        raise ManifestError(f"{where}: missing 'text' (or a 'labels' list)")
    if row.get("duration") not in (None, ""):
        try:
            row["duration"] = float(row["duration"])
        except (TypeError, ValueError):
            raise ManifestError(f"{where}: 'duration' must be a number, got {row['duration']!r}") from None
    else:
        row.pop("duration", None)
    return row


def utf8_lines(path: Path) -> list[str]:
    """The file's lines (ends kept); a line that is not UTF-8 is an error naming the file and line."""
    try:
        with open(path, "rb") as f:
            raw_lines = f.readlines()
    except OSError as e:
        raise ManifestError(f"{path}: cannot read manifest ({e.strerror or e})") from None
    lines = []
    for lineno, raw in enumerate(raw_lines, 1):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise ManifestError(f"{path}:{lineno}: not UTF-8 text (byte {e.start + 1} of the line)") from None
    return lines


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for lineno, line in enumerate(utf8_lines(path), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as e:
            raise ManifestError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
        rows.append(normalize_row(raw, path.parent, where))
    return rows


def _read_delimited(path: Path, delimiter: str) -> list[dict[str, Any]]:
    rows = []
    with io.StringIO("".join(utf8_lines(path)), newline="") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        header = reader.fieldnames or []
        if not any(k in header for k in PATH_KEYS) or not ({"text", "labels"} & set(header)):
            raise ManifestError(f"{path}:1: header must name a 'path' and a 'text' column, got {header}")
        for raw in reader:
            where = f"{path}:{reader.line_num}"
            if None in raw or any(v is None for v in raw.values()):
                raise ManifestError(f"{where}: expected {len(header)} fields like the header")
            if "labels" in raw and "text" not in raw:
                raw["labels"] = raw["labels"].split()
            rows.append(normalize_row(raw, path.parent, where))
    return rows


def read_manifest(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a manifest file (JSONL / NeMo / CSV / TSV) or a LibriSpeech directory.

    Returns:
        Rows with at least ``path`` (absolute str) and ``text`` (str); ``duration`` (float seconds)
        and ``id`` when the source has them; other fields pass through.

    Raises:
        ManifestError: naming the file (and line) that cannot be used.
    """
    path = Path(path)
    if path.is_dir():
        from crnn.data.librispeech import is_librispeech_dir, read_librispeech

        if is_librispeech_dir(path):
            return read_librispeech(path)
        raise ManifestError(f"{path}: a directory but not a LibriSpeech layout (no *.trans.txt files under it)")
    if not path.is_file():
        raise ManifestError(f"{path}: no such manifest file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _read_delimited(path, ",")
    if suffix == ".tsv":
        return _read_delimited(path, "\t")
    return _read_jsonl(path)  # .jsonl, .json (NeMo), or anything else


def write_manifest(path: str | os.PathLike, rows: Iterable[dict[str, Any]], relative: bool = True) -> None:
    """Write rows as JSON lines (written to a temporary file, then renamed).

    Args:
        path: output ``.jsonl`` file; parent folders are created.
        rows: dicts with at least ``path`` and ``text``.
        relative: store paths relative to the manifest's folder so the data folder can be moved
            as a whole. (Default: True)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = path.parent.resolve()
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            row = dict(row)
            if relative and os.path.isabs(row["path"]):
                row["path"] = os.path.relpath(row["path"], base)
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)

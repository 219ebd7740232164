"""Manifests: lists of ``{path, text, [offset], [duration], [id], ...}`` rows read from JSON lines, NeMo,
CSV/TSV or a corpus layout (Kaldi, Common Voice, Hugging Face audiofolder, WeNet, LibriSpeech), and
written back as JSON lines. A row with ``offset`` (seconds) uses only ``[offset, offset + duration)``
of its file (NeMo's convention; Kaldi ``segments`` map onto it).

Accepted inputs (relative paths resolve against the manifest's folder):

* JSON lines: ``{"path": "a.wav", "text": "hello"}`` or ``{"path": ..., "labels": ["a", "b"]}``
  (text = labels joined by a space); NeMo rows ``{"audio_filepath", "duration", "text"}`` as they are.
* CSV / TSV with a header holding ``path`` (or ``audio_filepath``) and ``text`` columns.
* A directory holding LibriSpeech ``*.trans.txt`` files (see ``crnn.data.corpora.librispeech``).
* Corpus layouts of other toolkits, one module each in ``crnn.data.corpora``, registered with
  :func:`register_layout` (this module imports none of them).
"""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from crnn.registry import Registry
from crnn.data.errors import ManifestError

PATH_KEYS = ("path", "audio_filepath")  # first found wins; NeMo uses audio_filepath


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
    for key in ("offset", "duration"):
        if row.get(key) in (None, ""):
            row.pop(key, None)
            continue
        try:
            row[key] = float(row[key])
        except (TypeError, ValueError):
            raise ManifestError(f"{where}: {key!r} must be a number of seconds, got {row[key]!r}") from None
        if not (row[key] >= 0 and row[key] != float("inf")) or (key == "duration" and "offset" in row and row[key] == 0):
            raise ManifestError(f"{where}: {key!r} must be a finite number of seconds >= 0, got {row[key]!r}")
    row["_where"] = where  # "file:line" for reports about this row (never written back)
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


def utf8_text(path: Path) -> io.StringIO:
    """The whole file as a text stream (lines, ``readline``, csv), decoded by :func:`utf8_lines`."""
    return io.StringIO("".join(utf8_lines(path)), newline="")


def json_lines(path: Path) -> Iterator[tuple[str, Any]]:
    """``("file:line", value)`` for each non-blank line of a JSON-lines file; a line that is not UTF-8
    or not JSON raises ManifestError naming it."""
    for lineno, line in enumerate(utf8_lines(path), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            yield where, json.loads(line)
        except json.JSONDecodeError as e:
            raise ManifestError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [normalize_row(raw, path.parent, where) for where, raw in json_lines(path)]


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


@dataclass(frozen=True)
class Layout:
    """A corpus layout the manifest reader understands (registered by its module in ``crnn.data.corpora``).

    Attributes:
        name: the ``--manifest-format`` name.
        read: path -> rows ``{path, text, [id], [offset], [duration], ...}``.
        detect: path -> True when the path is in this layout (asked in registration order). (Default: never)
        folder: True: reads a folder; False: a file. (Default: True)
        member_files: names of files inside a layout folder that stand for the folder (Kaldi's
            ``wav.scp``, ``text``): given one, the folder is read. (Default: none)
        what: how error messages describe it, e.g. ``"Kaldi (wav.scp + text)"``. (Default: the name)
        checked: pass the rows through the manifest's field checks (numbers, text). (Default: True)
    """

    name: str
    read: Callable[[Path], list[dict[str, Any]]]
    detect: Callable[[Path], bool] | None = None
    folder: bool = True
    member_files: tuple[str, ...] = ()
    what: str = ""
    checked: bool = True


LAYOUTS: Registry[Layout] = Registry("manifest format")  # in registration order: the order detection asks them
PLAIN_FORMATS = ("jsonl", "csv", "tsv")  # read here; every other format is a registered layout


def register_layout(layout: Layout) -> Layout:
    """Add a corpus layout to detection and to ``--manifest-format``."""
    if layout.name in PLAIN_FORMATS:
        raise ValueError(f"{layout.name!r} is a built-in manifest format")
    return LAYOUTS.register(layout.name, layout)


def manifest_formats() -> tuple[str, ...]:
    """The names ``read_manifest(format=...)`` and ``--manifest-format`` accept."""
    return PLAIN_FORMATS + tuple(name for name, _ in LAYOUTS.items())


def detect_format(path: str | os.PathLike) -> str:
    """The layout of ``path`` (one of :func:`manifest_formats`), from its name and contents.

    Each registered layout is asked in turn (Kaldi: wav.scp + text, or one of those files; audiofolder:
    metadata.csv/jsonl; LibriSpeech: *.trans.txt below; Common Voice: a ``.tsv`` with ``path`` and
    ``sentence``; WeNet: JSON lines with ``key``/``wav``/``txt``; ...); otherwise ``.csv``/``.tsv``
    are ``csv``/``tsv`` and any other file ``jsonl`` (NeMo too).

    Raises:
        ManifestError: for a missing path or a folder in none of the known layouts.
    """
    path = Path(path)
    if not path.exists():
        raise ManifestError(f"{path}: no such manifest file or corpus folder")
    for layout in (layout for _, layout in LAYOUTS.items()):
        if layout.detect is None:
            continue
        if layout.folder == path.is_dir() and layout.detect(path):
            return layout.name
        if path.is_file() and path.name in layout.member_files and layout.detect(path.parent):
            return layout.name
    if path.is_dir():
        known = [layout.what or layout.name for layout in (layout for _, layout in LAYOUTS.items()) if layout.folder]
        listed = ", ".join(known[:-1]) + f" or {known[-1]}" if len(known) > 1 else "".join(known)
        raise ManifestError(f"{path}: a directory but not a {listed} layout")
    suffix = path.suffix.lower()
    if suffix == ".tsv":
        return "tsv"
    if suffix == ".csv":
        return "csv"
    return "jsonl"


def read_manifest(source: str | os.PathLike, format: str | None = None) -> list[dict[str, Any]]:
    """Read a manifest file or corpus folder in any supported layout.

    Args:
        source: a JSONL / NeMo / CSV / TSV manifest, or a corpus file or folder of a registered layout
            (Kaldi data directory, Common Voice ``.tsv``, WeNet ``data.list``, audiofolder, LibriSpeech, ...).
        format: one of :func:`manifest_formats` to skip detection (``"nemo"`` is ``"jsonl"``). (Default: detect)

    Returns:
        Rows with at least ``path`` (absolute str) and ``text`` (str); ``offset``/``duration`` (float
        seconds) and ``id`` when the source has them; other fields pass through.

    Raises:
        ManifestError: naming the file (and line) that cannot be used.
    """
    path = Path(source)
    fmt = {"nemo": "jsonl", "json": "jsonl"}.get(format or "", format) or detect_format(path)
    if fmt not in manifest_formats():
        raise ManifestError(f"unknown manifest format {format!r} (choose from {', '.join(manifest_formats())})")
    if not path.exists():
        raise ManifestError(f"{path}: no such manifest file or corpus folder")
    layout = LAYOUTS.get(fmt) if fmt in LAYOUTS else None
    if layout is None:
        if path.is_dir():
            raise ManifestError(f"{path}: format {fmt!r} reads a file")
        if fmt == "csv":
            return _read_delimited(path, ",")
        if fmt == "tsv":
            return _read_delimited(path, "\t")
        return _read_jsonl(path)
    if layout.folder and path.is_file() and path.name in layout.member_files:
        path = path.parent  # e.g. Kaldi's wav.scp or text given: the data directory is its folder
    if layout.folder != path.is_dir():
        raise ManifestError(f"{path}: format {fmt!r} reads {'a folder' if layout.folder else 'a file'}")
    rows = layout.read(path)
    return _checked(rows, path) if layout.checked else rows


def _checked(rows: list[dict[str, Any]], source: Path) -> list[dict[str, Any]]:
    """Layout readers' rows through the same field checks as manifest rows (numbers, text)."""
    return [normalize_row(row, source, f"{source} (utterance {row.get('id', i)})") for i, row in enumerate(rows)]


def write_manifest(path: str | os.PathLike, rows: Iterable[dict[str, Any]], relative: bool = True) -> None:
    """Write rows as JSON lines (written to a temporary file, then renamed).

    Args:
        path: output ``.jsonl`` file; parent folders are created.
        rows: dicts with at least ``path`` and ``text``.
        relative: store paths relative to the manifest's folder so the data folder can be moved
            as a whole; relative row paths are taken from the working directory first. (Default: True)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = path.parent.resolve()
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            row = {k: v for k, v in row.items() if not k.startswith("_")}
            if relative:  # a relative row path means "from here" (the working directory), as a shell reads it
                row["path"] = os.path.relpath(os.path.abspath(row["path"]), base)
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)

"""WeNet ``data.list`` (raw format): JSON lines ``{"key": utt-id, "wav": audio path, "txt": transcript}``.

Optional ``start``/``end`` fields (seconds) become ``offset``/``duration``. Relative paths resolve
against the list's folder. WeNet's ``shard`` format (tar archives) is not read: use the raw list.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from crnn.data.errors import ManifestError
from crnn.data.manifest import Layout, register_layout, json_lines

WENET_KEYS = ("key", "wav", "txt")


def is_wenet_list(path: str | os.PathLike) -> bool:
    """True for a file whose first non-blank line is a JSON object with ``key``, ``wav`` and ``txt``."""
    p = Path(path)
    if not p.is_file():
        return False
    with open(p, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.strip():
                try:
                    first = json.loads(line)
                except json.JSONDecodeError:
                    return False
                return isinstance(first, dict) and all(k in first for k in WENET_KEYS)
    return False


def read_wenet_list(path: str | os.PathLike) -> list[dict[str, Any]]:
    """A WeNet data.list -> rows ``{path, text, id, [offset, duration], <other fields>}``.

    Raises:
        ManifestError: naming file and line (bad JSON, a missing key, a shard/tar entry).
    """
    path = Path(path)
    rows = []
    for where, raw in json_lines(path):
        if not isinstance(raw, dict) or any(k not in raw for k in WENET_KEYS):
            raise ManifestError(f"{where}: a WeNet data.list line needs 'key', 'wav' and 'txt'")
        wav = str(raw.pop("wav"))
        if wav.endswith(".tar") or wav.endswith(".tar.gz"):
            raise ManifestError(f"{where}: {wav} is a WeNet shard; list the audio files (raw format) instead")
        p = Path(os.path.expanduser(wav))
        row: dict[str, Any] = {"path": str(p if p.is_absolute() else (path.parent / p).resolve()),
                               "text": raw.pop("txt"), "id": str(raw.pop("key"))}
        if not isinstance(row["text"], str):
            raise ManifestError(f"{where}: 'txt' must be a string")
        start, end = raw.pop("start", None), raw.pop("end", None)
        if start is not None:
            try:
                row["offset"] = float(start)
                if end is not None:
                    row["duration"] = float(end) - float(start)
            except (TypeError, ValueError):
                raise ManifestError(f"{where}: 'start'/'end' must be seconds") from None
            if row["offset"] < 0 or row.get("duration", 1.0) <= 0:
                raise ManifestError(f"{where}: bad stretch start {start} end {end}")
        row.update(raw)
        rows.append(row)
    return rows


register_layout(Layout("wenet", read_wenet_list, is_wenet_list, folder=False, what="WeNet data.list"))

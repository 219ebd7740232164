"""Common Voice release: ``<lang>/train.tsv`` (``dev.tsv``, ``test.tsv``, ...) beside ``<lang>/clips/*.mp3``.

Each TSV has a header with at least ``path`` (the clip's file name inside ``clips/``) and
``sentence``; every other column (``client_id``, ``age``, ``gender``, ``locale``, ...) is kept as a
row field. Sentences are taken as written: quotes inside them are text, not CSV quoting.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from crnn.data.errors import ManifestError
from crnn.data.manifest import Layout, register_layout, utf8_text


def is_commonvoice_tsv(path: str | os.PathLike) -> bool:
    """True for a ``.tsv`` whose header names ``path`` and ``sentence`` columns."""
    p = Path(path)
    if not (p.is_file() and p.suffix.lower() == ".tsv"):
        return False
    with open(p, encoding="utf-8", errors="replace") as f:
        header = f.readline().rstrip("\r\n").split("\t")
    return "path" in header and "sentence" in header


def read_commonvoice_tsv(path: str | os.PathLike) -> list[dict[str, Any]]:
    """One Common Voice TSV -> rows ``{path (clips/<file>), text, id, <other columns>}``.

    Raises:
        ManifestError: naming file and line (a header without ``path``/``sentence``, a line with a
            different number of fields than the header, an empty path).
    """
    path = Path(path)
    clips = path.parent / "clips"
    rows = []
    with utf8_text(path) as f:
        header = f.readline().rstrip("\r\n").split("\t")
        if "path" not in header or "sentence" not in header:
            raise ManifestError(f"{path}:1: a Common Voice TSV needs 'path' and 'sentence' columns, got {header}")
        for lineno, line in enumerate(f, 2):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) != len(header):
                raise ManifestError(f"{path}:{lineno}: expected {len(header)} tab-separated fields like the header, "
                                    f"got {len(fields)}")
            raw = dict(zip(header, fields))
            clip = raw.pop("path")
            if not clip:
                raise ManifestError(f"{path}:{lineno}: empty 'path'")
            row: dict[str, Any] = {"path": str((clips / clip).resolve()), "text": raw.pop("sentence"),
                                   "id": Path(clip).stem}
            row.update(raw)
            rows.append(row)
    return rows


register_layout(Layout("commonvoice", read_commonvoice_tsv, is_commonvoice_tsv, folder=False, what="Common Voice (.tsv)"))

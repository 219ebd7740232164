"""RWTH-PHOENIX-Weather 2014 layout -> manifest rows.

The corpus ships ``annotations/manual/{train,dev,test}.corpus.csv`` (``|``-separated, header
``id|folder|signer|annotation``) and frame folders under ``features/fullFrame-210x260px/<split>/``;
the ``folder`` column names a glob such as ``<id>/1/*.png``. Glosses are the space-separated words of
``annotation``; a sequence of glosses is the transcript. Frames are 25 fps.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from crnn.data.manifest import ManifestError, utf8_lines

PHOENIX_SPLITS = ("train", "dev", "test")
PHOENIX_FPS = 25.0
FRAMES_DIR = "features/fullFrame-210x260px"


def phoenix_rows(root: str | Path, split: str, frames_dir: str = FRAMES_DIR) -> list[dict[str, Any]]:
    """Read one split of a PHOENIX-2014 copy.

    Args:
        root: the corpus folder (holding ``annotations/`` and ``features/``).
        split: ``"train"``, ``"dev"`` or ``"test"``.
        frames_dir: frame folders relative to ``root``. (Default: ``features/fullFrame-210x260px``)

    Returns:
        Rows ``{"path": <absolute frame folder>, "text": glosses, "labels": [...], "id", "signer", "fps": 25}``.
        Frame folders are not checked here: a missing one becomes a skipped sample when read.

    Raises:
        ManifestError: naming the corpus file (and line) that cannot be used.
    """
    if split not in PHOENIX_SPLITS:
        raise ValueError(f"PHOENIX split must be one of {PHOENIX_SPLITS}, got {split!r}")
    root = Path(root)
    corpus = root / "annotations" / "manual" / f"{split}.corpus.csv"
    if not corpus.is_file():
        raise ManifestError(f"{corpus}: no such PHOENIX corpus file (is {root} an RWTH-PHOENIX-Weather 2014 copy?)")
    base = root / frames_dir / split
    rows = []
    with io.StringIO("".join(utf8_lines(corpus)), newline="") as f:  # a line that is not UTF-8 is named
        reader = csv.reader(f, delimiter="|")
        header = next(reader, None)
        if header is None or [h.strip().lower() for h in header[:4]] != ["id", "folder", "signer", "annotation"]:
            raise ManifestError(f"{corpus}:1: expected the header 'id|folder|signer|annotation', got {header}")
        for lineno, rec in enumerate(reader, 2):
            if not rec or not any(field.strip() for field in rec):
                continue
            if len(rec) < 4:
                raise ManifestError(f"{corpus}:{lineno}: expected 4 '|'-separated fields, got {len(rec)}")
            sample_id, folder, signer, annotation = (field.strip() for field in rec[:4])
            glosses = annotation.split()
            if not glosses:
                raise ManifestError(f"{corpus}:{lineno}: empty annotation for {sample_id!r}")
            # "<id>/1/*.png" -> the folder "<id>/1"
            rel = Path(folder)
            if any(ch in rel.name for ch in "*?["):
                rel = rel.parent
            rows.append({"path": str((base / rel).resolve()), "text": " ".join(glosses), "labels": glosses,
                         "id": sample_id, "signer": signer, "fps": PHOENIX_FPS})
    return rows

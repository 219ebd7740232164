"""OCR ground truth side by side (tesseract / OCR-D training data): ``name.png`` next to ``name.gt.txt``.

A folder (searched recursively) whose line images each have a ``.gt.txt`` transcript of one line beside
them. Case and punctuation are kept as written; an image without a transcript is left out.
"""
from __future__ import annotations

import os
from pathlib import Path

from crnn.data.errors import ManifestError
from crnn.data.image.reader import LINE_IMAGE_EXTENSIONS
from crnn.data.manifest import Layout, register_layout


def _transcripts(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.gt.txt"))


def is_ocr_gt(path: str | os.PathLike) -> bool:
    p = Path(path)
    return p.is_dir() and next(iter(p.rglob("*.gt.txt")), None) is not None


def read_ocr_gt(path: str | os.PathLike) -> list[dict]:
    """Rows ``{path, text, id}``, one per ``.gt.txt`` with a line image of the same stem beside it."""
    folder = Path(path)
    rows = []
    for gt in _transcripts(folder):
        stem = gt.name[: -len(".gt.txt")]
        image = next((gt.with_name(stem + s) for s in sorted(LINE_IMAGE_EXTENSIONS)
                      if gt.with_name(stem + s).is_file()), None)
        if image is None:
            continue
        try:
            lines = gt.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise ManifestError(f"{gt}: cannot read the transcript ({e})") from None
        text = " ".join(line.strip() for line in lines if line.strip())
        if not text:
            raise ManifestError(f"{gt}: empty transcript")
        rows.append({"path": str(image), "text": text, "id": str(image.relative_to(folder).with_suffix(""))})
    if not rows:
        raise ManifestError(f"{folder}: no line image with a .gt.txt transcript beside it")
    return rows


register_layout(Layout("ocr_gt", read_ocr_gt, is_ocr_gt, folder=True,
                       what="OCR ground truth (name.png + name.gt.txt)"))

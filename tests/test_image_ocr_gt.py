"""OCR ground-truth layout: name.png + name.gt.txt read as manifest rows, case and punctuation kept."""
from __future__ import annotations

import pytest
from PIL import Image

from crnn.data.corpora.ocr_gt import read_ocr_gt
from crnn.data.errors import ManifestError
from crnn.data.manifest import detect_format


def test_side_by_side_pairs_read_and_detected(tmp_path):
    (tmp_path / "a").mkdir()
    Image.new("L", (60, 20), 255).save(tmp_path / "a" / "l1.png")
    (tmp_path / "a" / "l1.gt.txt").write_text("Hello, World!\n", encoding="utf-8")
    Image.new("L", (60, 20), 255).save(tmp_path / "l2.tif")
    (tmp_path / "l2.gt.txt").write_text("42 apples.", encoding="utf-8")
    Image.new("L", (60, 20), 255).save(tmp_path / "orphan.png")
    rows = read_ocr_gt(tmp_path)
    assert [(r["id"], r["text"]) for r in rows] == [("a/l1", "Hello, World!"), ("l2", "42 apples.")]
    assert detect_format(tmp_path) == "ocr_gt"


def test_empty_transcript_is_named(tmp_path):
    Image.new("L", (60, 20), 255).save(tmp_path / "x.png")
    (tmp_path / "x.gt.txt").write_text("\n")
    with pytest.raises(ManifestError, match="x.gt.txt: empty transcript"):
        read_ocr_gt(tmp_path)

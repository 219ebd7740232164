"""Breakfast-style action-segmentation layout -> manifest rows.

The layout (as the Breakfast Actions features are commonly distributed)::

    <root>/features/<name>.npy        per-frame features, (T, D) or (D, T) (``layout="DT"``)
    <root>/transcripts/<name>.txt     ordered actions, one per line (optional if groundTruth exists)
    <root>/groundTruth/<name>.txt     one action per feature frame (optional)
    <root>/splits/<split>.bundle      names to use, one per line (optional; all features otherwise)

A transcript missing but frame-level ground truth present gives the transcript as the ground truth's
runs (``SIL SIL take take pour`` -> ``SIL take pour``). Rows point ``frame_labels`` at the ground-truth
file so the frame-accuracy metric can use it.
"""
from __future__ import annotations

from itertools import groupby
from pathlib import Path
from typing import Any

from crnn.data.manifest import ManifestError, utf8_lines

BREAKFAST_FPS = 15.0


def _lines(path: Path) -> list[str]:
    return [line.strip() for line in utf8_lines(path) if line.strip()]  # a line that is not UTF-8 is named


def breakfast_rows(root: str | Path, split: str | None = None, layout: str = "TD", fps: float = BREAKFAST_FPS
                   ) -> list[dict[str, Any]]:
    """Read a Breakfast-style copy.

    Args:
        root: folder holding ``features/`` (and ``transcripts/``, ``groundTruth/``, ``splits/``).
        split: name of a ``splits/<split>.bundle`` list; None takes every feature file. (Default: None)
        layout: feature array layout, ``"TD"`` or ``"DT"`` (MS-TCN's Breakfast features). (Default: ``"TD"``)
        fps: feature frame rate. (Default: 15)

    Returns:
        Rows ``{"path": <.npy>, "text", "labels", "id", "feature_layout", "fps"[, "frame_labels": <file>]}``.

    Raises:
        ManifestError: naming what is missing.
    """
    if layout not in ("TD", "DT"):
        raise ValueError(f"layout must be 'TD' or 'DT', got {layout!r}")
    root = Path(root)
    feat_dir = root / "features"
    if not feat_dir.is_dir():
        raise ManifestError(f"{feat_dir}: no features folder (expected a Breakfast-style layout under {root})")
    if split is not None:
        bundle = root / "splits" / f"{split}.bundle"
        if not bundle.is_file():
            raise ManifestError(f"{bundle}: no such split list")
        names = [Path(n).stem for n in _lines(bundle)]
    else:
        names = sorted(p.stem for p in feat_dir.glob("*.npy"))
        if not names:
            raise ManifestError(f"{feat_dir}: no .npy feature files")
    rows = []
    for name in names:
        feats = feat_dir / f"{name}.npy"
        transcript, truth = root / "transcripts" / f"{name}.txt", root / "groundTruth" / f"{name}.txt"
        if transcript.is_file():
            labels = " ".join(_lines(transcript)).split()
        elif truth.is_file():
            labels = [label for label, _ in groupby(_lines(truth))]
        else:
            raise ManifestError(f"{name}: neither {transcript} nor {truth} exists")
        if not labels:
            raise ManifestError(f"{transcript if transcript.is_file() else truth}: empty transcript")
        row: dict[str, Any] = {"path": str(feats.resolve()), "text": " ".join(labels), "labels": labels, "id": name,
                               "feature_layout": layout, "fps": fps}
        if truth.is_file():
            row["frame_labels"] = str(truth.resolve())
        rows.append(row)
    return rows

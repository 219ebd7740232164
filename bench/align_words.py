"""Word boundaries from CTC forced alignment on joined spoken-digit recordings, against their known joints.

    python bench/align_words.py --checkpoint digits-en --manifest data/fsdd/test_strings.jsonl

``datasets/fsdd/prepare.py`` joins one speaker's single-digit recordings (trimmed to near-minimal silence)
into strings and writes each digit's start and end (``words``) in every row: the known joints. Each string's
transcript is force-aligned (``crnn.align``) and every word's start and end is compared with its joint.
Rows:

* ``align``: the aligned words' start and end, moved from their CTC spikes to the sound around them
  (``crnn align``'s default, ``--word-edges energy``).
* ``align, CTC edges``: the first and last frame of each word's CTC path (``--word-edges ctc``).
* ``uniform``: the string's duration split evenly among its words (no model).

Figures: median and 90th-percentile absolute error in seconds over every word start and end, and the share
of words whose aligned span overlaps their true one. Strings the model cannot align (their transcript needs
more frames than they give) are counted and left out of both rows.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

import crnn
from common import machine
from crnn.inference.align import AlignmentError


def errors(pred: list[tuple[float, float]], true: list[tuple[float, float]]) -> tuple[list[float], int]:
    """Absolute start and end errors of each word, and how many predicted spans overlap their true one."""
    errs = [abs(p - t) for ps, ts in zip(pred, true) for p, t in zip(ps, ts)]
    overlap = sum(min(pe, te) > max(ps, ts) for (ps, pe), (ts, te) in zip(pred, true))
    return errs, overlap


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", "-c", required=True, help="a speech model: checkpoint or shipped name")
    p.add_argument("--manifest", required=True, help="strings with known joints (datasets/fsdd/prepare.py)")
    p.add_argument("--limit", type=int, default=0, help="first N strings only (0: all)")
    args = p.parse_args()
    rows = [json.loads(line) for line in Path(args.manifest).read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("words")][: args.limit or None]
    if not rows:
        raise SystemExit(f"error: {args.manifest}: no row has known word joints ('words')")
    model = crnn.load_model(args.checkpoint)
    base = Path(args.manifest).parent
    found = {"align": ([], 0), "align, CTC edges": ([], 0), "uniform": ([], 0)}
    words = skipped = 0
    for row in rows:
        true = [(w["start"], w["end"]) for w in row["words"]]
        path = row["path"] if Path(row["path"]).is_absolute() else str(base / row["path"])
        try:
            result = crnn.align([path], [row["text"]], model=model)[0]
            spikes = crnn.align([path], [row["text"]], model=model, edges="ctc")[0]
        except AlignmentError:
            skipped += 1
            continue
        pred = [(w["start"], w["end"]) for w in result.words]
        assert len(pred) == len(true), (row["id"], result.words)
        step = row["duration"] / len(true)
        uniform = [(i * step, (i + 1) * step) for i in range(len(true))]
        ctc = [(w["start"], w["end"]) for w in spikes.words]
        for name, spans in (("align", pred), ("align, CTC edges", ctc), ("uniform", uniform)):
            e, o = errors(spans, true)
            found[name] = (found[name][0] + e, found[name][1] + o)
        words += len(true)
    print(f"{machine(torch.device('cpu'))}; {args.checkpoint} on {args.manifest}: {len(rows) - skipped} strings, {words} words"
          + (f", {skipped} not alignable (left out)" if skipped else ""))
    print("| method | median error (s) | p90 error (s) | words overlapping their true span |")
    print("|---|---:|---:|---:|")
    for name, (errs, overlap) in found.items():
        print(f"| {name} | {np.median(errs):.3f} | {np.percentile(errs, 90):.3f} | {100 * overlap / words:.1f} % |")


if __name__ == "__main__":
    main()

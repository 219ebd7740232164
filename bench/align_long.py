"""Segment alignment of a long recording: boundaries against known joints, and flagged mismatches.

    python bench/align_long.py --model digits-en --manifest data/fsdd/test_strings.jsonl --repeat 5 --corrupt 10

Joins the manifest's recordings (digit strings of a speaker the model never heard, each with its words'
known times) into one long WAV, pauses of 0.3-1.5 s of room tone between them, ``--repeat`` times over (150 strings,
about 12 minutes, x5: an hour). The transcript has one line per recording; ``--corrupt`` of its lines are
replaced by other digits (the audio says something else there) and ``--drop`` lines are left out (audio
nobody transcribed). Then ``crnn.inference.align_long.align_segments`` aligns it, and the bench prints:

* the segments' and words' boundary errors (median and 90th percentile, seconds) against the known joints,
  over the lines left as they were, beside a uniform baseline (each line a share of the recording
  proportional to its words);
* how many corrupted lines are flagged (recall) and how many good ones are (false alarms), at the default
  threshold, and the score range of each kind, so the threshold can be checked;
* the time it took and the real-time factor (one thread).

FSDD (CC BY-SA 4.0) comes from ``python datasets/fsdd/prepare.py`` (``data/fsdd/``).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def build_recording(rows: list[dict], base: Path, repeat: int, rng: np.random.Generator, sr: int):
    from crnn.data.audio import read_audio

    pieces, truth, t = [], [], 0.0
    for _ in range(repeat):
        for row in rows:
            wav = read_audio(str(base / row["path"]), sr).numpy()
            # the pause before it: room tone at the level of its quietest 100 ms (digital silence beside a
            # noisy recording would make the recording's own noise floor look like sound)
            tenth = wav[: len(wav) // (sr // 10) * (sr // 10)].reshape(-1, sr // 10)
            floor = float(np.sqrt((tenth ** 2).mean(axis=1).min())) if len(tenth) else 1e-3
            gap = rng.uniform(0.3, 1.5)
            pieces.append(rng.normal(0, max(floor, 1e-4), int(gap * sr)).astype(np.float32))
            t += gap
            words = [{"word": w["word"], "start": t + w["start"], "end": t + w["end"]} for w in row["words"]]
            truth.append({"text": row["text"], "start": words[0]["start"], "end": words[-1]["end"], "words": words})
            pieces.append(wav)
            t += len(wav) / sr
    pieces.append(np.zeros(int(0.5 * sr), np.float32))
    return np.concatenate(pieces), truth


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="digits-en", help="a shipped model's name or a checkpoint (word units)")
    ap.add_argument("--manifest", default="data/fsdd/test_strings.jsonl")
    ap.add_argument("--repeat", type=int, default=1, help="join the manifest this many times over")
    ap.add_argument("--corrupt", type=int, default=5, help="lines replaced by other digits")
    ap.add_argument("--drop", type=int, default=0, help="lines left out of the transcript")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()

    import torch

    from crnn.inference.align_long import FLAG_BELOW, align_segments
    from crnn.model.checkpoint import load_model

    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    model = load_model(args.model).eval()
    manifest = Path(args.manifest)
    rows = [json.loads(line) for line in manifest.open() if line.strip()]
    audio, truth = build_recording(rows, manifest.parent, args.repeat, rng, model.sample_rate)
    n = len(truth)
    picks = rng.permutation(n)
    corrupt = set(int(i) for i in picks[: args.corrupt])
    dropped = set(int(i) for i in picks[args.corrupt: args.corrupt + args.drop])
    lines, kinds = [], []
    for i, seg in enumerate(truth):
        if i in dropped:
            continue
        if i in corrupt:
            words = seg["text"].split()
            other = [DIGITS[(DIGITS.index(w) + int(rng.integers(1, 10))) % 10] for w in words]
            lines.append(" ".join(other))
            kinds.append(("corrupt", i))
        else:
            lines.append(seg["text"])
            kinds.append(("good", i))
    seconds = len(audio) / model.sample_rate
    with tempfile.TemporaryDirectory() as tmp:
        import soundfile as sf

        path = Path(tmp) / "long.wav"
        sf.write(path, audio, model.sample_rate, subtype="PCM_16")
        t0 = time.perf_counter()
        result = align_segments(model, str(path), lines)
        took = time.perf_counter() - t0

    # the baseline: each line a share of the recording proportional to its words
    sizes = np.array([len(line.split()) for line in lines], dtype=float)
    edges = np.concatenate([[0.0], np.cumsum(sizes)]) / sizes.sum() * seconds
    uniform_err = []
    seg_err, word_err, good_scores, bad_scores = [], [], [], []
    flagged_bad = flagged_good = 0
    for k, (seg, (kind, i)) in enumerate(zip(result.segments, kinds)):
        if kind == "good":
            uniform_err += [abs(edges[k] - truth[i]["start"]), abs(edges[k + 1] - truth[i]["end"])]
        if kind == "corrupt":
            bad_scores.append(seg.score)
            flagged_bad += seg.flagged
            continue
        good_scores.append(seg.score)
        flagged_good += seg.flagged
        ref = truth[i]
        seg_err += [abs(seg.start - ref["start"]), abs(seg.end - ref["end"])]
        for w, r in zip(seg.words, ref["words"]):
            word_err += [abs(w["start"] - r["start"]), abs(w["end"] - r["end"])]
    # segments next to a dropped line border audio nobody transcribed: counted apart
    figures = {
        "model": args.model, "recording_s": round(seconds, 1), "lines": len(lines), "corrupted": len(corrupt),
        "dropped": len(dropped),
        "segment_boundary_median_s": round(float(np.median(seg_err)), 3),
        "segment_boundary_p90_s": round(float(np.percentile(seg_err, 90)), 3),
        "uniform_segment_boundary_median_s": round(float(np.median(uniform_err)), 3),
        "uniform_segment_boundary_p90_s": round(float(np.percentile(uniform_err, 90)), 3),
        "word_boundary_median_s": round(float(np.median(word_err)), 3),
        "word_boundary_p90_s": round(float(np.percentile(word_err, 90)), 3),
        "flag_below": FLAG_BELOW,
        "corrupted_flagged": f"{flagged_bad}/{len(corrupt)}",
        "good_flagged": f"{flagged_good}/{len(good_scores)}",
        "good_score_quantiles_0_1_5_10_50": [round(float(np.percentile(good_scores, q)), 3) for q in (0, 1, 5, 10, 50)],
        "corrupted_score_median_max": ([round(float(np.median(bad_scores)), 3), round(max(bad_scores), 3)]
                                       if bad_scores else None),
        "seconds": round(took, 1), "real_time_factor": round(took / seconds, 4),
    }
    for k, v in figures.items():
        print(f"{k}: {v}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

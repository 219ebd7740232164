"""Action boundaries from CTC forced alignment against the clips' frame labels, and a uniform baseline.

    python bench/align_boundaries.py --checkpoint runs/actions/best.pt             # 50 test clips, varied look
    python bench/align_boundaries.py --checkpoint runs/actions_basic/best.pt --look basic --clips 200
    python bench/align_boundaries.py --checkpoint CK --manifest clips/manifest.jsonl  # clips from crnn synth actions

Built-in action clips are written as mp4 files (``crnn synth actions``) and read back through the model's
reader, as ``crnn align`` reads them. Each clip's known action list is force-aligned
(``crnn.inference.align``); a boundary is where one action ends and the next begins. Rows:

* ``align (midpoint)``: each frame goes to the nearest aligned label; a boundary lies halfway between two
  labels' CTC spikes (``--frame-spans midpoint``).
* ``align (onset)``: a boundary is the first frame the CTC path emits the next label on
  (``crnn align``'s default, ``--frame-spans onset``).
* ``uniform``: the clip split evenly among its known labels (no model).

Figures: median and 90th-percentile absolute boundary error in seconds over every boundary of every clip,
and frame accuracy (the share of the clip's frames, at the clip's own rate, given their true label). Clips
whose action list needs more output frames than the clip gives are counted and left out of every row.
The mp4 files written here differ slightly from run to run (libx264), which moves the align rows' frame
accuracy by about 0.005; pass ``--manifest`` to measure the same files twice.

Measured (2-core CPU, 2026-12-07): the shipped ``actions-builtin`` on 200 fresh test clips: onset 0.100 /
0.225 s, 0.893; midpoint 0.200 / 0.375 s, 0.794; uniform 0.125 / 0.278 s, 0.861 (BENCHMARKS.md).
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

import crnn
from common import machine
from crnn.data.media import make_reader
from crnn.inference.align import AlignmentError, align_log_probs, in_input_frames, time_stride

METHODS = ("align (midpoint)", "align (onset)", "uniform")


def true_boundaries(frame_labels: list[str], fps: float) -> list[float]:
    """Seconds where the frame label changes."""
    return [i / fps for i in range(1, len(frame_labels)) if frame_labels[i] != frame_labels[i - 1]]


def frame_accuracy(starts: list[float], labels: list[str], frame_labels: list[str], fps: float) -> tuple[int, int]:
    """Frames (at the clip's rate) whose label is the segment's covering their time: (correct, total)."""
    times = np.arange(len(frame_labels)) / fps + 0.5 / fps
    idx = np.searchsorted(np.asarray(starts), times, side="right") - 1
    got = [labels[max(k, 0)] for k in idx]
    return sum(g == t for g, t in zip(got, frame_labels)), len(frame_labels)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", "-c", required=True, help="a trained action model (crnn train --task actions)")
    p.add_argument("--manifest", help="clips written by `crnn synth actions` (default: write --clips new ones)")
    p.add_argument("--clips", type=int, default=50, help="clips to write when no --manifest (default: 50)")
    p.add_argument("--split", default="test", choices=["train", "valid", "test", "test_look"])
    p.add_argument("--look", default="varied", choices=["varied", "basic"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model = crnn.load_model(args.checkpoint)
    if model.modality not in ("video", "features"):
        raise SystemExit(f"error: {args.checkpoint}: the model reads {model.modality}; this measures action clips")
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(args.manifest) if args.manifest else None
        if manifest is None:
            from crnn.data.builtin.actions import ActionsConfig, write_action_clips

            manifest = write_action_clips(tmp, args.clips, args.seed, split=args.split,
                                          config=ActionsConfig(look=args.look))
        rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
        errors, accuracy, failed = measure(model, rows, manifest.parent)
    source = f"--manifest {manifest}" if args.manifest else f"{args.split} split, {args.look} look, seed {args.seed}"
    print(machine(torch.device("cpu")))
    print(f"checkpoint {args.checkpoint} ({model.modality}, {model.reader_args.get('fps')} fps, "
          f"{model.frame_shift * 1000:g} ms per output frame); {len(rows) - failed} clips"
          + (f" ({failed} left out: action list longer than the clip allows)" if failed else "")
          + f", {len(errors['uniform'])} boundaries; clips: {source}")
    print(f"{'method':<22} {'median err (s)':>14} {'p90 err (s)':>12} {'frame acc':>10}")
    for name in METHODS:
        e = np.asarray(errors[name])
        correct, total = accuracy[name]
        med, p90 = (np.median(e), np.percentile(e, 90)) if e.size else (float("nan"),) * 2
        print(f"{name:<22} {med:>14.3f} {p90:>12.3f} {correct / max(total, 1):>10.3f}")


def measure(model, rows: list[dict], base: Path) -> tuple[dict, dict, int]:
    """Per method: absolute boundary errors (s) and (correct, total) frames; and the clips left out."""
    read = make_reader(model.modality, model.reader_args)
    fps = float(model.reader_args.get("fps") or 1.0 / model.frame_shift)
    stride = time_stride(model, fps)
    errors = {m: [] for m in METHODS}
    accuracy = {m: [0, 0] for m in METHODS}
    failed = 0
    for row in rows:
        clip = read(str(base / row["path"]))
        with torch.inference_mode():
            lp, lens = model(clip.unsqueeze(0), torch.tensor([clip.shape[0]]))
        try:
            fa = align_log_probs(lp[0, : int(lens[0])], row["labels"], model.tokenizer, row["path"])
        except AlignmentError:
            failed += 1
            continue
        truth = true_boundaries(row["frame_labels"], row["fps"])
        duration = len(row["frame_labels"]) / row["fps"]
        n = len(row["labels"])
        starts = {f"align ({spans})": [s["start"] for s in in_input_frames(fa, stride, clip.shape[0], fps, spans)[0]]
                  for spans in ("midpoint", "onset")}
        starts["uniform"] = [k * duration / n for k in range(n)]
        for m in METHODS:
            errors[m] += [abs(a - b) for a, b in zip(starts[m][1:], truth)]
            c, t = frame_accuracy(starts[m], row["labels"], row["frame_labels"], row["fps"])
            accuracy[m][0] += c
            accuracy[m][1] += t
    return errors, accuracy, failed


if __name__ == "__main__":
    main()

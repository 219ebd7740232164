"""Which actions a trained model confuses: a frame-level confusion table over a manifest with frame labels.

    python datasets/actions/confusion.py --checkpoint runs/actions-after/best.pt data/actions-test-look/manifest.jsonl

Each clip's greedy hypothesis is force-aligned to the clip's frames (as ``crnn eval``'s frame accuracy
aligns the reference), so every input frame gets the action the model says happens there; rows are the
true action, columns the predicted one, in percent of the row's frames (``-`` where the hypothesis is
empty or cannot be aligned). The diagonal is the frame accuracy of the model's own segmentation.
"""
from __future__ import annotations

import argparse
import sys

import torch
from torch.utils.data import DataLoader

import crnn
from crnn.data.collate import collate
from crnn.data.manifest import read_manifest
from crnn.data.video.dataset import make_video_dataset
from crnn.decoding.greedy import ctc_greedy
from crnn.video_metrics import frame_predictions


@torch.no_grad()
def confusion(model, rows: list[dict], batch_size: int = 16) -> torch.Tensor:
    """(V, V + 1) frame counts: true id (row) x predicted id (column; the last column: no prediction)."""
    V = len(model.tokenizer)
    table = torch.zeros(V, V + 1, dtype=torch.long)
    ds = make_video_dataset(rows, model.tokenizer, model.reader_args, train=False)
    for batch in DataLoader(ds, batch_size=batch_size, collate_fn=collate):
        if batch.frame_labels is None:
            raise SystemExit("error: the manifest rows carry no frame_labels")
        log_probs, lengths = model(batch.x, batch.x_lens)  # (B, T', V), (B,)
        for b, hyp in enumerate(ctc_greedy(log_probs, lengths)):
            gt = batch.frame_labels[b]
            n = int(lengths[b])
            try:
                pred = frame_predictions(log_probs[b, :n], hyp.tokens, len(gt), model.frontend.time_stride)
            except ValueError:  # empty or unalignable hypothesis
                pred = torch.full((len(gt),), V, dtype=torch.long)
            pred = torch.where(pred > 0, pred, torch.full_like(pred, V))
            known = gt > 0
            table.index_put_((gt[known], pred[known]), torch.ones_like(gt[known]), accumulate=True)
    return table


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("manifest", help="manifest with frame_labels (crnn synth actions writes them)")
    p.add_argument("--checkpoint", required=True)
    args = p.parse_args()
    model = crnn.load_model(args.checkpoint)
    table = confusion(model, read_manifest(args.manifest))
    names = list(model.tokenizer.symbols)
    short = [s[:7] for s in names] + ["-"]
    print(f"{'true/predicted':<14}" + "".join(f"{s:>8}" for s in short))
    for i, name in enumerate(names, start=1):
        row = table[i]
        total = int(row.sum())
        if total == 0:
            continue
        print(f"{name:<14}" + "".join(f"{100 * int(c) / total:8.1f}" for c in row[1:]))
    diag = sum(int(table[i, i]) for i in range(1, len(names) + 1))
    print(f"frame accuracy of the model's own segmentation: {100 * diag / max(int(table.sum()), 1):.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())

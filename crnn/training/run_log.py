"""A run's log: ``log.csv`` (one row per checkpointed epoch) and optional TensorBoard scalars.

The rows live in the checkpoint's training state too, and ``log.csv`` is rewritten from them (temp
file + rename) after each checkpoint, so after any crash and resume it matches the checkpoints: no
row for an epoch that was lost, no epoch counted twice.
"""
from __future__ import annotations

import csv
import io
import os
import sys
from pathlib import Path
from typing import Any

COLUMNS = ["epoch", "step", "train_loss", "val_loss", "val_cer", "val_wer", "lr", "seconds", "skipped_items",
           "nonfinite_steps"]
EMA_COLUMNS = ["ema_val_cer", "ema_val_wer"]  # present when the run keeps an EMA of the weights


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


class RunLogger:
    """Writes ``out/log.csv`` and, when asked and installed, TensorBoard event files under ``out/tb``.

    Args:
        out: the run folder.
        tensorboard: also write TensorBoard scalars. (Default: True)
    """

    def __init__(self, out: str | Path, tensorboard: bool = True):
        self.path = Path(out) / "log.csv"
        self.tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(Path(out) / "tb"))
            except ImportError:
                print("tensorboard is not installed: logging to CSV only", file=sys.stderr)

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Rewrite ``log.csv`` with ``rows`` (every epoch so far) and add the newest to TensorBoard."""
        buf = io.StringIO()
        writer = csv.writer(buf)
        columns = COLUMNS + (EMA_COLUMNS if any("ema_val_cer" in row for row in rows) else [])
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_fmt(row.get(c)) for c in columns])
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", newline="") as f:
            f.write(buf.getvalue())
        os.replace(tmp, self.path)
        if self.tb is not None and rows:
            last = rows[-1]
            self.tb.add_scalar("train/loss", last["train_loss"], last["step"])
            for key in ("val_loss", "val_cer", "val_wer", *EMA_COLUMNS):
                if last.get(key) is not None:
                    self.tb.add_scalar(key.replace("_", "/", 1), last[key], last["step"])
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()

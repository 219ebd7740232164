"""One epoch's bookkeeping: which items a batch drops (unreadable, infeasible, non-finite), the loss and
step counters, the epoch's report line, and the progress bar."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import torch

from crnn.data.build import check_bad_fraction
from crnn.data.collate import Batch
from crnn.model.network import CRNN
from crnn.training import distributed as dist_utils
from crnn.training.config import TrainConfig
from crnn.evaluation.evaluate import EvalResult, drop_infeasible



@dataclass
class EpochCounters:
    """What an epoch saw: loss on the device (read once per epoch, not per step), skipped items by reason."""

    device: torch.device
    skipped: list[str] = field(default_factory=list)  # "path: reason" of unreadable / non-finite items
    infeasible: int = 0
    used: int = 0  # items that reached a training step

    def __post_init__(self) -> None:
        self.loss_sum = torch.zeros((), device=self.device)
        self.loss_steps = torch.zeros((), device=self.device)
        self.nonfinite_steps = torch.zeros((), device=self.device)

    def admit(self, batch: Batch, model: CRNN, main: bool) -> Batch:
        """Drop and count what must not be fed: unreadable, non-finite and infeasible items."""
        self.skipped += [b.reason if b.path in b.reason else f"{b.path}: {b.reason}" for b in batch.skipped]
        if len(batch) == 0:
            return batch
        batch = drop_nonfinite(batch, self.skipped)
        if len(batch) == 0:
            return batch
        batch, bad = drop_infeasible(batch, model)
        self.infeasible += len(bad)
        if main:
            for msg in bad:
                print(f"skipping: {msg}", file=sys.stderr)
        self.used += len(batch)
        return batch

    def add_step(self, loss: torch.Tensor, finite: torch.Tensor) -> None:
        self.loss_sum += torch.where(finite, loss, 0.0)
        self.loss_steps += finite
        self.nonfinite_steps += ~finite

    def mean_loss(self) -> float:
        return float(self.loss_sum) / max(float(self.loss_steps), 1.0)

    def check_usable(self, epoch: int, cfg: TrainConfig, device: torch.device, prescan_share: float = 0.0,
                     prescan_examples: list[str] = ()) -> None:
        """Stop when an epoch fed nothing, or when the run's data is mostly bad: the rows the pre-scan left
        out (``prescan_share`` of them) and this epoch's unreadable items, counted together."""
        bad, used = dist_utils.all_reduce_sum([len(self.skipped), self.used + self.infeasible], device)
        check_bad_fraction(int(bad), int(bad + used), cfg.max_bad_fraction, f"epoch {epoch + 1}",
                           [*prescan_examples[:2], *self.skipped], prescan_share, "the pre-scan")

    def row(self, epoch: int, step: int, stats: EvalResult | None, lr: float, seconds: float) -> dict[str, Any]:
        return {"epoch": epoch + 1, "step": step, "train_loss": self.mean_loss(),
                "val_loss": stats.loss if stats else None, "val_cer": stats.cer if stats else None,
                "val_wer": stats.wer if stats else None, "lr": lr, "seconds": round(seconds, 1),
                "skipped_items": len(self.skipped) + self.infeasible + (len(stats.skipped) if stats else 0),
                "nonfinite_steps": int(self.nonfinite_steps)}

    def report(self, epoch: int, stats: EvalResult | None) -> None:
        msg = f"epoch {epoch + 1}: train loss {self.mean_loss():.3f}"
        if stats:
            msg += f", val loss {stats.loss:.3f}, CER {100 * stats.cer:.2f}%, WER {100 * stats.wer:.2f}%"
        nonfinite = int(self.nonfinite_steps)
        if self.skipped or self.infeasible or nonfinite:
            msg += (f"; skipped {len(self.skipped)} unreadable, {self.infeasible} infeasible, "
                    f"{nonfinite} non-finite step(s)")
        print(msg, file=sys.stderr)
        for line in self.skipped[:10]:
            print(f"  skipped {line}", file=sys.stderr)
        if stats and stats.skipped:
            print(f"  validation skipped {len(stats.skipped)} item(s):", file=sys.stderr)
            for line in stats.skipped[:10]:
                print(f"    {line}", file=sys.stderr)
        if stats and stats.too_short and epoch == 0:  # the same items every epoch: said once
            print(f"  validation: {len(stats.too_short)} item(s) too fast for the model's frame rate (scored; "
                  f"the model cannot output them in full), e.g. {stats.too_short[0]}", file=sys.stderr)


def drop_nonfinite(batch: Batch, skipped: list[str]) -> Batch:
    """Remove items whose input holds NaN/inf (checked on CPU, before the transfer): never fed to the model."""
    if not batch.x.is_floating_point():
        return batch
    finite = torch.isfinite(batch.x.reshape(len(batch), -1)).all(dim=1)
    if bool(finite.all()):
        return batch
    skipped += [f"{batch.paths[i]}: non-finite samples" for i in (~finite).nonzero().flatten().tolist()]
    keep = finite.nonzero().flatten()
    return Batch(batch.x[keep], batch.x_lens[keep], batch.y[keep], batch.y_lens[keep],
                 [batch.texts[i] for i in keep.tolist()], [batch.paths[i] for i in keep.tolist()], batch.skipped,
                 None if batch.frame_labels is None else [batch.frame_labels[i] for i in keep.tolist()])


def progress(loader, enabled: bool, desc: str):
    """A progress bar on a terminal; where stderr is a file or pipe (a log), none: a bar redraws itself
    there as one line per update, and the per-epoch summary lines already tell the progress."""
    if not enabled or not sys.stderr.isatty():
        return _Quiet(loader)
    from tqdm.auto import tqdm

    return tqdm(loader, desc=desc, dynamic_ncols=True, leave=False, file=sys.stderr)


class _Quiet:
    def __init__(self, it):
        self.it = it

    def __iter__(self):
        return iter(self.it)

    def set_postfix(self, **_: Any) -> None:
        pass

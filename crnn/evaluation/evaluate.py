"""One evaluation path: decode a loader, sum CTC loss and edit counts, report CER / WER / frame accuracy.

The trainer's validation and ``crnn eval`` both call :func:`evaluate`; a metric over zero items is an
error (``EmptyMetricError``), never 0 %.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch

from crnn.ctc import ctc_loss, ctc_min_frames_batch
from crnn.data.collate import Batch
from crnn.decoding import Decoder, DecodeOptions, Hypothesis
from crnn.evaluation.metrics import EmptyMetricError, error_counts, rates
from crnn.model.network import CRNN
from crnn.training import distributed as dist_utils

__all__ = ["EvalResult", "EmptyMetricError", "drop_infeasible", "evaluate"]


@dataclass
class EvalResult:
    """Corpus totals of one evaluation (summed over ranks under DDP)."""

    loss: float  # mean per-token CTC loss over the scored items
    cer: float
    wer: float
    items: int  # utterances / clips scored
    char_errors: int = 0
    chars: int = 0
    word_errors: int = 0
    words: int = 0
    skipped: list[str] = field(default_factory=list)  # "path: reason" of unreadable items
    # "path: reason" of items whose reference cannot fit their output frames under CTC: decoded and scored
    # (their errors count), but left out of the loss and of frame accuracy, which need an alignment
    too_short: list[str] = field(default_factory=list)
    frame_accuracy: float | None = None  # where the data has frame-level labels
    exact: int = 0  # items whose hypothesis equals the reference (line accuracy = exact / items)

    @property
    def exact_rate(self) -> float:
        """Share of items read without a single error (sentence / line accuracy)."""
        return self.exact / self.items


def infeasible_items(batch: Batch, model: CRNN, frames: torch.Tensor | None = None) -> tuple[torch.Tensor, list[str]]:
    """(B,) bool: items whose label cannot fit their output frames under CTC, and a message for each.
    ``frames`` (B,): the output lengths when the forward pass gave them (Default: the model's formula)."""
    frames = model.output_lengths(batch.x_lens) if frames is None else frames.cpu()
    need = ctc_min_frames_batch(batch.y, batch.y_lens)
    bad = need > frames
    msgs = [f"{batch.paths[i]}: label needs {int(need[i])} frames under CTC, input gives {int(frames[i])}"
            for i in bad.nonzero().flatten().tolist()]
    return bad, msgs


def drop_infeasible(batch: Batch, model: CRNN) -> tuple[Batch, list[str]]:
    """Remove items whose label cannot fit their frames (checked on CPU, before the transfer): training
    cannot learn from them (their CTC loss is infinite)."""
    bad, msgs = infeasible_items(batch, model)
    if not msgs:
        return batch, []
    keep = (~bad).nonzero().flatten()
    sub = Batch(batch.x[keep], batch.x_lens[keep], batch.y[keep], batch.y_lens[keep],
                [batch.texts[i] for i in keep.tolist()], [batch.paths[i] for i in keep.tolist()], batch.skipped,
                None if batch.frame_labels is None else [batch.frame_labels[i] for i in keep.tolist()])
    return sub, msgs


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    batches: Iterable[Batch],
    decoder: Callable[[torch.Tensor, torch.Tensor], list[list[Hypothesis]]] | None = None,
    device: torch.device | str = "cpu",
    amp_dtype: torch.dtype | None = None,
    on_item: Callable[[str, str, str, dict], None] | None = None,
    what: str = "evaluation",
) -> EvalResult:
    """Decode every batch and score it against its references.

    Args:
        model: a CRNN (or DDP-wrapped one), its int8 copy or an exported ``OnnxModel``; put in eval mode here.
        batches: a DataLoader (or any iterable) of ``Batch``; unreadable items arrive as ``batch.skipped``.
        decoder: ``(log_probs (B, T', V), lengths (B,)) -> n-best lists`` (Default: greedy).
        device: where the model runs.
        amp_dtype: autocast dtype on CUDA, or None for fp32.
        on_item: called per scored item as ``(path, reference, hypothesis, error counts)``.
        what: name of the data for the error raised when nothing could be scored.

    Items whose reference is longer than CTC lets their frames hold are decoded and scored like the
    rest (the model cannot get them right, and a metric that left them out would flatter it); they are
    listed in ``too_short`` and left out of the loss and frame accuracy only.

    Raises:
        EmptyMetricError: no item could be scored (all unreadable, or the data is empty).
    """
    core = model.module if hasattr(model, "module") else model
    core.eval()
    device = torch.device(device)
    decoder = decoder or Decoder(core.tokenizer, DecodeOptions(), core.frame_shift)
    totals = {"chars": 0, "words": 0, "char_errors": 0, "word_errors": 0}
    loss_sum, loss_items, items, frames_ok, frames_all, exact = 0.0, 0, 0, 0, 0, 0
    skipped: list[str] = []
    too_short: list[str] = []
    for batch in batches:
        skipped += [f"{b.path}: {b.reason}" if b.path not in b.reason else b.reason for b in batch.skipped]
        if len(batch) == 0:
            continue
        b = batch.to(device)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            log_probs, lens = core(b.x, b.x_lens)  # (B, T', V) fp32, (B,)
        infeasible, notes = infeasible_items(batch, core, lens)
        too_short += notes
        fits = (~infeasible).nonzero().flatten()  # (B',) items with a finite loss and an alignment
        if fits.numel():
            on = fits.to(log_probs.device)
            losses = ctc_loss(log_probs[on], lens[on], b.y[on], b.y_lens[on], reduction="none") / b.y_lens[on].clamp(min=1)
            loss_sum += float(losses.sum())
            loss_items += fits.numel()
        items += len(batch)
        if batch.frame_labels is not None and fits.numel() and isinstance(core, torch.nn.Module):
            from crnn.evaluation.frame_accuracy import frame_accuracy

            keep = fits.tolist()
            tokens = [batch.y[i, :batch.y_lens[i]].tolist() for i in keep]
            acc = frame_accuracy(log_probs.cpu()[fits], lens.cpu()[fits], tokens, [batch.frame_labels[i] for i in keep],
                                 stride=core.frontend.time_stride)
            frames_ok, frames_all = frames_ok + acc.correct, frames_all + acc.total
        for path, ref, nbest in zip(batch.paths, batch.texts, decoder(log_probs, lens)):
            counts = error_counts(ref, nbest[0].text)
            exact += int(counts["char_errors"] == 0)
            for k in totals:
                totals[k] += counts[k]
            if on_item is not None:
                on_item(path, ref, nbest[0].text, counts)
    summed = dist_utils.all_reduce_sum(
        [loss_sum, items, totals["char_errors"], totals["chars"], totals["word_errors"], totals["words"],
         frames_ok, frames_all, loss_items, exact], device)
    loss_sum, items = summed[0], int(summed[1])
    totals = dict(zip(("char_errors", "chars", "word_errors", "words"), (int(v) for v in summed[2:6])))
    frames_ok, frames_all, loss_items, exact = int(summed[6]), int(summed[7]), int(summed[8]), int(summed[9])
    if items == 0:
        lines = "".join(f"\n  {s}" for s in skipped[:5])
        raise EmptyMetricError(f"{what}: no item could be scored ({len(skipped)} unusable){lines}")
    r = rates(totals, what)
    loss = loss_sum / loss_items if loss_items else math.inf  # inf: not one item had an alignment
    return EvalResult(loss, r["cer"], r["wer"], items, skipped=skipped, too_short=too_short,
                      frame_accuracy=frames_ok / frames_all if frames_all else None, exact=exact, **totals)

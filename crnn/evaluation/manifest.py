"""Scoring a held-out manifest with any model: a CRNN, its int8 copy or an exported ``OnnxModel``.

``crnn eval``, ``crnn export --quantize int8 --check`` and ``bench/cpu_deploy.py`` score through here, and
here through :func:`crnn.evaluation.evaluate.evaluate`, so every model is scored the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The most WER (in points) an int8 model may lose against its fp32 model before export refuses it.
MAX_WER_LOSS = 0.5


@dataclass(frozen=True)
class WerResult:
    """Greedy word error rate of one model on one manifest (labels for video models)."""

    wer: float  # 0..1
    word_errors: int
    words: int
    items: int
    skipped: int  # unreadable items


def manifest_loader(model: Any, manifest: str, batch_size: int = 16, manifest_format: str | None = None):
    """A loader of ``manifest``'s items for ``model`` (its tokenizer, modality and reader settings).

    Raises:
        ManifestError / ValueError naming the manifest: unreadable, empty, or of another modality.
    """
    from torch.utils.data import DataLoader

    from crnn.data.build import make_dataset, read_rows
    from crnn.data.collate import collate
    from crnn.data.media import modality_of_rows

    rows = read_rows(manifest, manifest_format)
    if not rows:
        raise ValueError(f"{manifest}: no utterances")
    if modality_of_rows(rows) != model.modality:
        raise ValueError(f"{manifest}: holds {modality_of_rows(rows)} data, but the model reads {model.modality}")
    dataset = make_dataset(rows, model.tokenizer, model.modality, model.reader_args, train=False)
    return DataLoader(dataset, batch_size=batch_size, collate_fn=collate)


def manifest_wer(model: Any, manifest: str, batch_size: int = 16, manifest_format: str | None = None) -> WerResult:
    """Decode ``manifest`` greedily with ``model`` on the CPU and score it.

    Args:
        model: ``model(x, lengths) -> (log_probs (B, T', V), out_lengths (B,))`` with ``tokenizer``,
            ``modality`` and ``reader_args`` (a CRNN, its int8 copy or an ``OnnxModel``).
        manifest: a manifest file or corpus folder (``crnn.data.build.read_rows``).
        batch_size: utterances per call.

    Raises:
        ManifestError / ValueError naming the manifest; EmptyMetricError when nothing could be scored.
    """
    from crnn.evaluation.evaluate import evaluate
    from crnn.evaluation.metrics import EmptyMetricError

    result = evaluate(model, manifest_loader(model, manifest, batch_size, manifest_format), what=str(manifest))
    if result.words == 0:
        raise EmptyMetricError(f"{manifest}: no reference words to score ({len(result.skipped)} unreadable items)")
    return WerResult(result.word_errors / result.words, result.word_errors, result.words, result.items,
                     len(result.skipped))


def wer_loss_report(fp32: WerResult, int8: WerResult, limit: float = MAX_WER_LOSS) -> tuple[str, bool]:
    """One line comparing the two, and whether int8 stays within ``limit`` WER points of fp32."""
    loss = 100 * (int8.wer - fp32.wer)
    ok = loss <= limit
    line = (f"WER fp32 {100 * fp32.wer:.2f}% ({fp32.word_errors}/{fp32.words}), int8 {100 * int8.wer:.2f}% "
            f"({int8.word_errors}/{int8.words}): {loss:+.2f} points"
            + ("" if ok else f", more than the {limit:g} allowed"))
    return line, ok

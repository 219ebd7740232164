"""Batch inference: inputs -> segments -> batches -> model -> Decoder -> one result per input.

``crnn decode`` and ``crnn.transcribe`` both run ``transcribe_files``. Inputs are files (read in worker
processes) or in-memory ``(samples, sample_rate)`` pairs. Recordings longer than a threshold are cut
into segments (voice activity or fixed windows, ``crnn.inference.segment``) read one at a time, so memory follows
the segment length, not the file's; segments from any inputs share batches, and each input's segment
hypotheses are stitched into one in the input's own time. A bad input gives a result with ``error``
set and decoding goes on.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import torch
from torch.utils.data import DataLoader

from crnn.data.media import expand_inputs
from crnn.data.collate import pad_stack, time_dim
from crnn.decoding import DecodeOptions, Decoder
from crnn.decoding.hypothesis import Hypothesis
from crnn.model.network import CRNN
from crnn.runtime import release_freed_memory
from crnn.inference.batching import Input, InputPieces, length_sorted_batches
from crnn.inference.segment import Segment, SegmentOptions, stitch


@dataclass
class FileResult:
    """What decoding one input gave: n-best hypotheses (best first), or the error that stopped it.

    ``text``, ``words``, ``score`` and ``confidence`` are the best hypothesis'; ``to_json()`` is the row
    ``crnn decode --json`` prints. A segmented recording has one stitched hypothesis.
    """

    path: str
    hypotheses: list[Hypothesis] | None = None
    error: str | None = None
    duration: float | None = None  # seconds of input (audio)
    segments: int = 1  # pieces the input was decoded in
    chars: list[dict] | None = None  # text lines: per character, its pixel columns in the input image

    @property
    def best(self) -> Hypothesis | None:
        return self.hypotheses[0] if self.hypotheses else None

    @property
    def text(self) -> str:
        return self.best.text if self.best else ""

    @property
    def words(self) -> list[dict]:
        return self.best.words if self.best else []

    @property
    def score(self) -> float:
        return self.best.score if self.best else float("nan")

    @property
    def confidence(self) -> float:
        return self.best.confidence if self.best else float("nan")

    def to_json(self, nbest: int = 1) -> dict[str, Any]:
        """``{"path", "text", "score", "confidence", "words"[, "chars", "unit"][, "nbest"]}`` or
        ``{"path", "error"}``. Text lines give word and character spans in pixel columns of the input
        image (``"unit": "px"``) instead of seconds."""
        if self.error:
            return {"path": self.path, "error": self.error}
        row = {"path": self.path, "text": self.text, "score": round(self.score, 4),
               "confidence": round(self.confidence, 4), "words": self.words}
        if self.chars is not None:
            row.update(unit="px", chars=self.chars)
        if nbest > 1:
            row["nbest"] = [{"text": h.text, "score": round(h.score, 4)} for h in self.hypotheses[:nbest]]
        return row


class TranscriptionError(RuntimeError):
    """An input could not be decoded (the message names it and says why)."""


def transcribe_files(
    model: CRNN, inputs: Sequence[Input], decoder: Callable | None = None, batch_size: int = 16,
    device: torch.device | str = "cpu", workers: int | None = None, segment: SegmentOptions = SegmentOptions(),
) -> Iterator[FileResult]:
    """Decode inputs in order, yielding one FileResult per input (errors included).

    Args:
        model: a CRNN with its tokenizer.
        inputs: file paths, or ``(samples, sample_rate)`` pairs of in-memory audio.
        decoder: ``(log_probs (B, T, V), lengths (B,)) -> n-best lists``. (Default: greedy ``Decoder``)
        batch_size: pieces (whole inputs or segments) per forward pass.
        device: where the model runs.
        workers: reading processes (Default: 0 for a few inputs, else up to 4).
        segment: how long recordings are cut. (Default: voice activity above 30 s)
    """
    device = torch.device(device)
    decoder = decoder or Decoder(model.tokenizer, DecodeOptions(), model.frame_shift)
    if workers is None:
        workers = 0 if len(inputs) <= batch_size else min(4, os.cpu_count() or 1)
    loader = DataLoader(InputPieces(inputs, model, segment), batch_size=None, num_workers=workers)
    model.eval().to(device)
    done: dict[int, FileResult] = {}
    parts: dict[int, list[tuple[Segment | None, list[Hypothesis]]]] = {}
    failed: set[int] = set()
    next_i = 0
    with torch.inference_mode():
        for items in length_sorted_batches(loader, batch_size):
            signals = []
            for it in items:
                if "error" in it:
                    done[it["index"]] = FileResult(it["name"], error=it["error"])
                    parts.pop(it["index"], None)
                    failed.add(it["index"])
                elif it["index"] in failed:  # a piece read before its input failed
                    continue
                elif it["n"] == 0:
                    done[it["index"]] = FileResult(it["name"], [_empty()], duration=it["duration"], segments=0)
                else:
                    signals.append(it)
            if signals:
                x, x_lens = pad_stack([it["signal"] for it in signals], time_dim(signals[0]["signal"]))
                log_probs, lens = model(x.to(device), x_lens.to(device))
                finite = torch.isfinite(log_probs).flatten(1).all(1).tolist()  # (B,): NaN = damaged weights
                for it, nbest, ok in zip(signals, decoder(log_probs, lens), finite):
                    if not ok:
                        done[it["index"]] = FileResult(it["name"], error=f"{it['name']}: the model's outputs are "
                                                       "not finite (NaN: damaged weights?)")
                        parts.pop(it["index"], None)
                        failed.add(it["index"])
                        continue
                    if it["index"] in failed:
                        continue
                    got = parts.setdefault(it["index"], [])
                    got.append((it["segment"], nbest))
                    if len(got) == it["n"]:
                        done[it["index"]] = _finish(model, it, parts.pop(it["index"]))
                del x, x_lens, log_probs, lens, signals  # free this batch before the next one is built
                release_freed_memory()  # else fragmentation makes the peak grow with the file's length
            while next_i in done:  # yield in input order
                yield done.pop(next_i)
                next_i += 1
    while next_i in done:
        yield done.pop(next_i)
        next_i += 1


def _finish(model: CRNN, last: dict, got: list[tuple[Segment | None, list[Hypothesis]]]) -> FileResult:
    """One input's result from its decoded pieces (the n-best of a whole input, else the stitched best)."""
    if got[0][0] is None:
        if "px_per_frame" in last:
            return _in_pixels(model, last, got[0][1])
        return FileResult(last["name"], got[0][1], duration=last["duration"])
    got.sort(key=lambda p: p[0].start)
    hyp = stitch([(seg, nbest[0]) for seg, nbest in got], model.tokenizer, model.frame_shift)
    return FileResult(last["name"], [hyp], duration=last["duration"], segments=len(got))


def _in_pixels(model: CRNN, piece: dict, nbest: list[Hypothesis]) -> FileResult:
    """A text line's result: word spans (decoded in output frames) and per-character spans in pixel columns
    of the input image (``end`` exclusive)."""
    scale = piece["px_per_frame"]
    best = nbest[0]
    for w in best.words:
        w["start"], w["end"] = round(w["start"] * scale), round(w["end"] * scale)
    confs = best.token_confidences or [best.confidence] * len(best.tokens)
    chars = [{"char": model.tokenizer.decode([tok]), "start": round(a * scale), "end": round((b + 1) * scale),
              "confidence": round(c, 4)} for tok, (a, b), c in zip(best.tokens, best.spans, confs)]
    return FileResult(piece["name"], nbest, chars=chars)


def _empty() -> Hypothesis:
    """The hypothesis of a recording with no sound in it."""
    return Hypothesis(tokens=[], score=0.0, confidence=1.0)


def model_for_call(checkpoint: str | os.PathLike | None, model: CRNN | None, errors: str,
                   device: str | torch.device) -> CRNN:
    """The model a library call runs (``transcribe``, ``align``): exactly one of ``checkpoint`` (a path or a
    shipped name, loaded onto ``device``) and ``model`` (a loaded model, or a path or shipped name as well);
    ``errors`` must be ``"raise"`` or ``"keep"``."""
    if (checkpoint is None) == (model is None):
        raise ValueError("pass either checkpoint= or model=")
    if isinstance(model, (str, os.PathLike)):  # model="textlines-en" reads as the shipped model's name
        checkpoint, model = model, None
    if errors not in ("raise", "keep"):
        raise ValueError(f"errors must be 'raise' or 'keep', got {errors!r}")
    if model is None:
        from crnn.model.checkpoint import load_model

        model = load_model(checkpoint, device=device)
    return model


def is_single_input(inputs) -> bool:
    """Whether ``inputs`` is one input (a path, or a ``(samples, sample_rate)`` pair) rather than a list."""
    return isinstance(inputs, (str, os.PathLike)) or (
        isinstance(inputs, tuple) and len(inputs) == 2 and not isinstance(inputs[0], (str, os.PathLike)))


def transcribe(
    inputs: Input | Sequence[Input], checkpoint: str | os.PathLike | None = None,
    model: CRNN | str | os.PathLike | None = None, *, beam_size: int = 1, segment: str | float = "auto", batch_size: int = 16, device: str | torch.device = "cpu",
    errors: str = "raise", **decode_options: Any,
) -> list[FileResult]:
    """Transcribe files or in-memory audio with a trained model: the same results as ``crnn decode --json``.

    Args:
        inputs: a path, a ``(samples, sample_rate)`` pair, or a list of them (folders expand to their files).
        checkpoint: a checkpoint written by ``crnn train`` (or pass ``model``).
        model: a loaded model with its tokenizer (``crnn.load_model``), or a shipped model's name.
        beam_size: 1 is greedy; more runs the prefix beam search. (Default: 1)
        segment: ``"auto"``, ``"none"`` or a fixed window length in seconds (as ``--segment``).
        batch_size: pieces decoded together. (Default: 16)
        device: where the model runs. (Default: "cpu")
        errors: ``"raise"`` raises TranscriptionError for the first bad input; ``"keep"`` returns
            results with ``error`` set. (Default: "raise")
        **decode_options: other ``DecodeOptions`` fields (``nbest``, ``lm``, ``alpha``, ``hotwords``, ...).

    Returns:
        One FileResult per input, in order: ``.text``, ``.words`` (with times in the input's own
        seconds), ``.score``, ``.confidence``, ``.hypotheses``, ``.to_json()``.
    """
    model = model_for_call(checkpoint, model, errors, device)
    if model.tokenizer is None:
        raise ValueError("the model has no tokenizer: load it with crnn.load_model or attach model.tokenizer")
    single = is_single_input(inputs)
    items = [inputs] if single else list(inputs)
    items = [x for item in items for x in (expand_inputs([str(item)], model.modality)
                                           if isinstance(item, (str, os.PathLike)) else [item])]
    decoder = Decoder(model.tokenizer, DecodeOptions(beam_size=beam_size, **decode_options), model.frame_shift)
    results = list(transcribe_files(model, items, decoder, batch_size=batch_size, device=device, workers=0,
                                    segment=SegmentOptions.parse(segment)))
    if errors == "raise":
        for r in results:
            if r.error:
                raise TranscriptionError(r.error)
    return results

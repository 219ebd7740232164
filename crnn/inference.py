"""Batch inference: inputs -> segments -> batches -> model -> Decoder -> one result per input.

``crnn decode`` and ``crnn.transcribe`` both run ``transcribe_files``. Inputs are files (read in worker
processes) or in-memory ``(samples, sample_rate)`` pairs. Recordings longer than a threshold are cut
into segments (voice activity or fixed windows, ``crnn.segment``) read one at a time, so memory follows
the segment length, not the file's; segments from any inputs share batches, and each input's segment
hypotheses are stitched into one in the input's own time. A bad input gives a result with ``error``
set and decoding goes on.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence, Union

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from crnn.data.media import expand_inputs
from crnn.data.collate import pad_stack, time_dim
from crnn.decoding import DecodeOptions, Decoder
from crnn.decoding.hypothesis import Hypothesis
from crnn.model import CRNN
from crnn.runtime import release_freed_memory
from crnn.segment import Segment, EnergyMeter, find_segments, fixed_windows, stitch


# A file path, or in-memory audio as (samples (S,) array or tensor, sample_rate).
Input = Union[str, os.PathLike, tuple]


@dataclass(frozen=True)
class SegmentOptions:
    """How long recordings are cut.

    Attributes:
        mode: ``"auto"`` (voice activity, for recordings longer than ``auto_above``), ``"fixed"``
            (windows of ``length`` seconds overlapping by ``overlap``) or ``"none"`` (whole files).
        length: fixed window length, or the longest voice-activity segment, in seconds.
        overlap: overlap of fixed windows in seconds (at most half the length).
        auto_above: ``auto`` leaves recordings up to this many seconds whole.
        min_pause: silence that separates two voice-activity segments, in seconds.
    """

    mode: str = "auto"
    length: float = 20.0
    overlap: float = 2.0
    auto_above: float = 30.0
    min_pause: float = 0.3

    def __post_init__(self):
        if self.mode not in ("auto", "fixed", "none"):
            raise ValueError(f"segment mode must be 'auto', 'fixed' or 'none', got {self.mode!r}")
        if self.mode == "fixed":
            fixed_windows(self.length + 1.0, self.length, self.overlap)  # validates length and overlap

    @classmethod
    def parse(cls, value: str | float | None) -> "SegmentOptions":
        """``"auto"``, ``"none"`` or a window length in seconds (overlap: a tenth of it, 0.5-2 s)."""
        if value is None or value == "auto":
            return cls("auto")
        if value == "none":
            return cls("none")
        try:
            length = float(value)
        except ValueError:
            raise ValueError(f"--segment takes auto, none or a number of seconds, got {value!r}") from None
        if not length > 0:
            raise ValueError(f"--segment length must be positive, got {value!r}")
        return cls("fixed", length=length, overlap=min(max(0.5, length / 10), 2.0, length / 2))


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


def input_name(item: Input, index: int) -> str:
    """How an input is named in results and errors: its path, or ``<array N>``."""
    return f"<array {index}>" if isinstance(item, tuple) else str(item)


class InputPieces(IterableDataset):
    """Inputs -> the pieces to decode, as item dicts (each DataLoader worker takes every n-th input).

    Items: ``{"index", "name", "signal" (S,) | None, "k", "n", "segment" (None: the whole input),
    "duration"}``; ``n == 0`` marks an input with nothing to decode (silence), ``{"index", "name",
    "error"}`` one that failed.
    """

    def __init__(self, inputs: Sequence[Input], model: CRNN, segment: SegmentOptions):
        self.inputs = list(inputs)
        self.audio = model.modality == "audio"
        self.sample_rate = model.sample_rate
        self.segment = segment
        self.pixels_per_frame = getattr(model, "pixels_per_frame", None)
        if not self.audio:
            from crnn.data.media import make_reader

            self.load_clip = make_reader(model.modality, model.reader_args)

    def __iter__(self):
        info = get_worker_info()
        wid, n_workers = (info.id, info.num_workers) if info else (0, 1)
        for i, item in enumerate(self.inputs):
            if i % n_workers != wid:
                continue
            name = input_name(item, i)
            try:
                yield from self._pieces(i, name, item)
            except Exception as e:  # every reader error becomes a per-input message, never a crash
                reason = str(e)
                yield {"index": i, "name": name, "error": reason if name in reason else f"{name}: {reason}"}

    def _pieces(self, i: int, name: str, item: Input) -> Iterator[dict]:
        from crnn.data.audio import read_audio
        from crnn.data.audio.blocks import ArraySource, open_audio, to_model_rate

        whole = {"index": i, "name": name, "k": 0, "n": 1, "segment": None}
        if not self.audio:
            if isinstance(item, tuple):
                raise ValueError("in-memory inputs need an audio model")
            signal = self.load_clip(str(item))
            piece = dict(whole, signal=signal, duration=None)
            if self.pixels_per_frame:  # a text line: output frames -> pixel columns of the file as it is
                from crnn.data.image.reader import image_size

                piece["px_per_frame"] = self.pixels_per_frame * image_size(str(item))[1] / signal.shape[-2]
            yield piece
            return
        sr, opts = self.sample_rate, self.segment
        if isinstance(item, tuple):
            if len(item) != 2:
                raise ValueError("in-memory audio is a (samples, sample_rate) pair")
            source = ArraySource(item[0], item[1], name=name)
        elif opts.mode == "none":
            wav = read_audio(item, sr)
            yield dict(whole, signal=wav, duration=wav.numel() / sr)
            return
        else:
            source = open_audio(item, sr)
        limit = opts.auto_above if opts.mode == "auto" else opts.length
        if opts.mode == "none" or source.duration <= limit:
            wav = to_model_rate(source.read(), source.sample_rate, sr) if isinstance(item, tuple) else read_audio(item, sr)
            yield dict(whole, signal=wav, duration=wav.numel() / sr)
            return
        if opts.mode == "fixed":
            segments = fixed_windows(source.duration, opts.length, opts.overlap)
        else:
            meter = EnergyMeter(source.sample_rate)
            energies = np.concatenate([meter.feed(block) for block in source.blocks()])
            segments = find_segments(energies, min_pause=opts.min_pause, max_segment=opts.length,
                                     duration=source.duration)
        if not segments:
            yield {"index": i, "name": name, "signal": None, "k": 0, "n": 0, "segment": None,
                   "duration": source.duration}
        for k, seg in enumerate(segments):
            wav = to_model_rate(source.read(seg.start, seg.end), source.sample_rate, sr)
            yield {"index": i, "name": name, "signal": wav, "k": k, "n": len(segments), "segment": seg,
                   "duration": source.duration}


def _length_sorted_batches(items: Iterator[dict], batch_size: int, pool_batches: int = 4) -> Iterator[list[dict]]:
    """Batches of ``batch_size`` items, formed from a pool of ``pool_batches`` batches sorted by length:
    segments of similar length share a batch, so little compute and memory go to padding."""
    pool: list[dict] = []

    def drain():
        pool.sort(key=lambda it: 0 if it.get("signal") is None else it["signal"].shape[time_dim(it["signal"])])
        for i in range(0, len(pool), batch_size):
            yield pool[i:i + batch_size]
        pool.clear()

    for it in items:
        pool.append(it)
        if len(pool) >= batch_size * pool_batches:
            yield from drain()
    yield from drain()


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
        for items in _length_sorted_batches(loader, batch_size):
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


def transcribe(
    inputs: Input | Sequence[Input], checkpoint: str | os.PathLike | None = None, model: CRNN | None = None, *,
    beam_size: int = 1, segment: str | float = "auto", batch_size: int = 16, device: str | torch.device = "cpu",
    errors: str = "raise", **decode_options: Any,
) -> list[FileResult]:
    """Transcribe files or in-memory audio with a trained model: the same results as ``crnn decode --json``.

    Args:
        inputs: a path, a ``(samples, sample_rate)`` pair, or a list of them (folders expand to their files).
        checkpoint: a checkpoint written by ``crnn train`` (or pass ``model``).
        model: a loaded model with its tokenizer (``crnn.load_model``).
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
    if (checkpoint is None) == (model is None):
        raise ValueError("pass either checkpoint= or model=")
    if errors not in ("raise", "keep"):
        raise ValueError(f"errors must be 'raise' or 'keep', got {errors!r}")
    if model is None:
        from crnn.checkpoint import load_model

        model = load_model(checkpoint, device=device)
    if model.tokenizer is None:
        raise ValueError("the model has no tokenizer: load it with crnn.load_model or attach model.tokenizer")
    single = isinstance(inputs, (str, os.PathLike)) or (
        isinstance(inputs, tuple) and len(inputs) == 2 and not isinstance(inputs[0], (str, os.PathLike)))
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

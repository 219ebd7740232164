"""Cutting long recordings into segments a model can decode, and stitching the results back together.

Two ways to cut:

* **Voice activity** (``find_segments``): frame energies (25 ms frames every 10 ms) against an
  adaptive threshold (a local noise floor from a sliding window's low percentile, plus a margin
  that grows with the local peak);
  silent runs of at least ``min_pause`` are pauses, the sounds between them are padded a little,
  neighbours closer than ``max_merge_gap`` are joined up to ``max_segment`` seconds, and a sound
  longer than ``max_segment`` is cut at its quietest frame.
* **Fixed windows** (``fixed_windows``): N-second windows overlapping by a few seconds; each window
  keeps the words (tokens, without a word separator) whose middle falls in its own half of the overlaps, so one cut by a window's
  edge is taken from the neighbour that holds it whole, once.

``stitch`` shifts each segment's hypothesis into the file's own time and joins them into one.
Energies are 100 values a second, so a whole hour's fit in memory while the audio is read in blocks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from crnn.decoding.hypothesis import Hypothesis
from crnn.decoding.words import word_token_groups
from crnn.tokenizer import Tokenizer

FRAME_SECONDS = 0.025  # energy frame length
HOP_SECONDS = 0.010  # energy frame shift


@dataclass(frozen=True)
class Segment:
    """A stretch of a recording, in seconds of the file's time.

    Attributes:
        start, end: the audio decoded.
        keep_start, keep_end: words whose middle lies in [keep_start, keep_end) are kept (the overlap
            rule for fixed windows; voice-activity segments keep everything).
    """

    start: float
    end: float
    keep_start: float = -math.inf
    keep_end: float = math.inf

    @property
    def duration(self) -> float:
        return self.end - self.start


# -- energies -----------------------------------------------------------------------------------------
class EnergyMeter:
    """Frame energies in dB of a signal fed in blocks of any size (frames straddling blocks are kept whole).

    Args:
        sample_rate: rate of the samples fed.
    """

    def __init__(self, sample_rate: int):
        self.win = max(1, int(round(FRAME_SECONDS * sample_rate)))
        self.hop = max(1, int(round(HOP_SECONDS * sample_rate)))
        self._tail = np.zeros(0, dtype=np.float32)

    def feed(self, samples: np.ndarray) -> np.ndarray:
        """Add mono samples (S,); returns the energies (dB, float32) of the frames now complete."""
        x = np.concatenate([self._tail, np.asarray(samples, dtype=np.float32)])
        n = 0 if x.size < self.win else (x.size - self.win) // self.hop + 1
        if n == 0:
            self._tail = x
            return np.zeros(0, dtype=np.float32)
        frames = np.lib.stride_tricks.sliding_window_view(x, self.win)[:: self.hop][:n]  # (n, win)
        power = np.einsum("ij,ij->i", frames, frames, dtype=np.float64) / self.win
        self._tail = x[n * self.hop:]
        return (10 * np.log10(power + 1e-10)).astype(np.float32)


def frame_energies(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Energies (dB) of 25 ms frames every 10 ms of a whole signal (S,) -> (N,)."""
    return EnergyMeter(sample_rate).feed(samples)


# -- voice activity -----------------------------------------------------------------------------------
def adaptive_threshold(
    energies: np.ndarray, window: float = 30.0, margin_db: float = 6.0, max_margin_db: float = 12.0,
    silence_db: float = -55.0,
) -> np.ndarray:
    """Per-frame sound threshold (dB) from the local noise floor and peak level.

    The floor is the larger of the 10th percentiles of the ``window / 2`` seconds before and after each
    second (near a step in the noise level, the quiet side's floor would call the loud side's noise
    sound), but no higher than the quietest 50 ms within half a second of that second (a pause next to
    a long sound still counts as silence); the peak is the loudest 50 ms there (a sparse sound is still the peak; a click is
    averaged down). The threshold sits a fifth of the way from floor to peak, at least ``margin_db``
    and at most ``max_margin_db`` above the floor. A stretch without contrast is all sound if it
    is louder than ``silence_db``, else all silence.

    Args:
        energies: (N,) frame energies in dB.

    Returns:
        (N,) thresholds in dB (-inf: every frame counts as sound; inf: none does).
    """
    n = energies.size
    per_block = int(round(1.0 / HOP_SECONDS))  # one threshold per second, spread over its frames
    half = int(round(window / 2 / HOP_SECONDS))
    smooth = _smooth(energies)
    out = np.empty(n, dtype=np.float32)
    for b in range(0, n, per_block):
        before, after = energies[max(0, b - half): b + per_block], energies[b: b + per_block + half]
        floor = max(np.percentile(before, 10), np.percentile(after, 10))
        floor = min(floor, smooth[max(0, b - per_block // 2): b + 3 * per_block // 2].min())  # a pause here is no sound
        peak = smooth[max(0, b - half): b + per_block + half].max()
        if peak - floor >= margin_db + 3:
            thr = floor + min(max(margin_db, 0.2 * (peak - floor)), max_margin_db)
        else:
            thr = -np.inf if peak > silence_db else np.inf
        out[b: b + per_block] = thr
    return out


def find_segments(
    energies: np.ndarray, min_pause: float = 0.3, max_segment: float = 20.0, pad: float = 0.2,
    max_merge_gap: float = 1.0, min_sound: float = 0.05, duration: float | None = None,
) -> list[Segment]:
    """Voice-activity segments from frame energies (``EnergyMeter`` framing: 10 ms hop, 25 ms frames).

    Args:
        energies: (N,) frame energies in dB.
        min_pause: a silent run at least this long (seconds) separates two sounds. (Default: 0.3)
        max_segment: the longest segment (seconds); longer sounds are cut at their quietest frame. (Default: 20)
        pad: silence kept on each side of a sound, at most half the pause. (Default: 0.2)
        max_merge_gap: neighbouring sounds closer than this are decoded together. (Default: 1.0)
        min_sound: sounds shorter than this (clicks) are dropped. (Default: 0.05)
        duration: the recording's length in seconds (Default: from the number of frames).

    Returns:
        Segments in time order, non-overlapping, each at most ``max_segment`` long.
    """
    if max_segment <= 2 * pad + HOP_SECONDS:
        raise ValueError(f"max_segment ({max_segment} s) must exceed twice the padding ({pad} s)")
    n = energies.size
    if duration is None:
        duration = (n - 1) * HOP_SECONDS + FRAME_SECONDS if n else 0.0
    if n == 0:
        return []
    sound = energies > adaptive_threshold(energies)
    regions = _sound_regions(sound, int(round(min_pause / HOP_SECONDS)), int(round(min_sound / HOP_SECONDS)))
    # Frames -> seconds, padded by up to `pad` but never past the middle of the neighbouring pause.
    spans: list[list[float]] = []
    for i, (a, b) in enumerate(regions):
        start, end = a * HOP_SECONDS, (b - 1) * HOP_SECONDS + FRAME_SECONDS
        lo = 0.0 if i == 0 else (regions[i - 1][1] * HOP_SECONDS + start) / 2
        hi = duration if i == len(regions) - 1 else (end + regions[i + 1][0] * HOP_SECONDS) / 2
        spans.append([max(lo, start - pad), min(hi, end + pad)])
    pieces: list[list[float]] = []
    for start, end in spans:
        pieces += _split_long(start, end, energies, max_segment)
    merged: list[list[float]] = []
    for start, end in pieces:
        if merged and start - merged[-1][1] <= max_merge_gap and end - merged[-1][0] <= max_segment:
            merged[-1][1] = end
        else:
            merged.append([start, end])
    return [Segment(round(s, 4), round(e, 4)) for s, e in merged]


def _sound_regions(sound: np.ndarray, min_pause: int, min_sound: int) -> list[tuple[int, int]]:
    """Frame ranges [a, b) of sound, silent gaps shorter than ``min_pause`` frames bridged."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], sound.astype(np.int8), [0]])))
    runs = [[int(a), int(b)] for a, b in zip(edges[::2], edges[1::2])]
    bridged: list[list[int]] = []
    for a, b in runs:
        if bridged and a - bridged[-1][1] < min_pause:
            bridged[-1][1] = b
        else:
            bridged.append([a, b])
    return [(a, b) for a, b in bridged if b - a >= max(1, min_sound)]


def _split_long(start: float, end: float, energies: np.ndarray, max_segment: float) -> list[list[float]]:
    """Cut [start, end) at its quietest frame until every piece fits ``max_segment``."""
    out = []
    while end - start > max_segment:
        lo = int((start + max_segment / 2) / HOP_SECONDS)
        hi = int((start + max_segment) / HOP_SECONDS)
        cut = quietest_frame(energies, lo, hi) * HOP_SECONDS + FRAME_SECONDS / 2
        out.append([start, cut])
        start = cut
    out.append([start, end])
    return out


def quietest_frame(energies: np.ndarray, lo: int, hi: int) -> int:
    """Index in [lo, hi) of the lowest energy smoothed over 50 ms (a lone quiet frame inside a sound is no cut)."""
    lo, hi = max(0, lo), min(energies.size, hi)
    if hi <= lo:
        return lo
    return lo + int(np.argmin(_smooth(energies[max(0, lo - 2): hi + 2])[lo - max(0, lo - 2):][: hi - lo]))


def _smooth(energies: np.ndarray, width: int = 5) -> np.ndarray:
    """Moving average over ``width`` frames (50 ms), edges repeated rather than zero-padded."""
    padded = np.pad(energies, (width // 2, width - 1 - width // 2), mode="edge")
    return np.convolve(padded, np.ones(width) / width, mode="valid")


def last_cut(energies: np.ndarray, search_from: int, min_pause: float = 0.3) -> int:
    """Where to end a segment of a stream: the middle of the last pause starting after frame
    ``search_from``, else the quietest frame after it.

    Args:
        energies: (N,) frame energies in dB of the audio not yet decoded (with any history before it).
        search_from: first frame a cut may fall on.

    Returns:
        A frame index in [search_from, N).
    """
    sound = energies > adaptive_threshold(energies)
    silent = ~sound[search_from:]
    edges = np.flatnonzero(np.diff(np.concatenate([[0], silent.astype(np.int8), [0]])))
    runs = [(a, b) for a, b in zip(edges[::2], edges[1::2]) if b - a >= int(round(min_pause / HOP_SECONDS))]
    if runs:
        a, b = runs[-1]
        return search_from + int((a + b) // 2)
    return quietest_frame(energies, search_from, energies.size)


# -- fixed windows ------------------------------------------------------------------------------------
def fixed_windows(duration: float, length: float, overlap: float) -> list[Segment]:
    """Windows of ``length`` seconds every ``length - overlap``; each keeps the words whose middle lies
    between the middles of its overlaps with the previous and the next window.

    Raises:
        ValueError: ``length`` not positive or ``overlap`` not in [0, length / 2].
    """
    if length <= 0:
        raise ValueError(f"segment length must be positive, got {length}")
    if not 0 <= overlap <= length / 2:
        raise ValueError(f"overlap must be between 0 and half the segment length ({length / 2} s), got {overlap}")
    if duration <= length:
        return [Segment(0.0, duration)]
    step = length - overlap
    starts = [0.0]
    while starts[-1] + length < duration:
        starts.append(starts[-1] + step)
    out = []
    for i, s in enumerate(starts):
        end = min(s + length, duration)
        keep_start = -math.inf if i == 0 else s + overlap / 2
        keep_end = math.inf if i == len(starts) - 1 else starts[i + 1] + overlap / 2
        out.append(Segment(round(s, 4), round(end, 4), keep_start, keep_end))
    return out


# -- stitching ----------------------------------------------------------------------------------------
def stitch(pieces: list[tuple[Segment, Hypothesis]], tokenizer: Tokenizer, frame_shift: float) -> Hypothesis:
    """Join segment hypotheses into one hypothesis in the file's time.

    Each segment keeps the units (words; single tokens for vocabularies without a word separator)
    whose middle lies in its keep range; times move by the segment's start, token spans by the
    nearest whole number of frames. Where two overlapping windows both kept a unit (same text,
    overlapping in time), it is kept once.

    Args:
        pieces: (segment, its best hypothesis with token ``spans``), in time order.
        tokenizer: the model's vocabulary (word separator; text).
        frame_shift: seconds per output frame.

    Returns:
        One Hypothesis with ``text`` and ``words``; ``score`` sums the segments' scores, ``confidence``
        averages the kept tokens'. Without a word separator, each segment's kept tokens form one word.
    """
    sep = tokenizer.word_separator
    by_word = tokenizer.kind == "label" or sep is not None or bool(tokenizer.word_starts)
    tokens: list[int] = []
    spans: list[tuple[int, int]] = []
    confs: list[float] = []
    words: list[dict] = []
    last: dict | None = None  # the last unit kept: text and times, for the overlap check
    score = 0.0
    for seg, hyp in pieces:
        score += hyp.score
        shift = int(round(seg.start / frame_shift))
        token_confs = hyp.token_confidences or [hyp.confidence] * len(hyp.tokens)
        units = word_token_groups(hyp, tokenizer) if by_word else [[i] for i in range(len(hyp.tokens))]
        piece_words: list[dict] = []
        for group in units:
            start = hyp.spans[group[0]][0] * frame_shift + seg.start
            end = (hyp.spans[group[-1]][1] + 1) * frame_shift + seg.start
            if not seg.keep_start <= (start + end) / 2 < seg.keep_end:
                continue
            unit = {"word": tokenizer.decode([hyp.tokens[i] for i in group]), "start": start, "end": end,
                    "confidence": sum(token_confs[i] for i in group) / len(group)}
            if last is not None and last["word"] == unit["word"] and _overlap(last, start, end) > 0.5:
                continue  # the same unit seen by two overlapping windows
            if tokens and sep is not None:
                tokens.append(sep)
                spans.append((spans[-1][1], spans[-1][1]))
                confs.append(1.0)
            for i in group:
                tokens.append(hyp.tokens[i])
                spans.append((hyp.spans[i][0] + shift, hyp.spans[i][1] + shift))
                confs.append(token_confs[i])
            piece_words.append(unit)
            last = unit
        if not by_word and piece_words:  # one word of the segment's tokens
            piece_words = [{"word": "".join(u["word"] for u in piece_words), "start": piece_words[0]["start"],
                            "end": piece_words[-1]["end"],
                            "confidence": sum(u["confidence"] for u in piece_words) / len(piece_words)}]
        words += [dict(w, start=round(w["start"], 4), end=round(w["end"], 4), confidence=round(w["confidence"], 4))
                  for w in piece_words]
    out = Hypothesis(tokens=tokens, score=score, spans=spans, token_confidences=confs,
                     confidence=sum(confs) / len(confs) if confs else 1.0)
    out.text = tokenizer.decode(tokens)
    out.words = words
    return out


def _overlap(word: dict, start: float, end: float) -> float:
    """Overlap of ``word`` with [start, end) as a fraction of the shorter of the two."""
    inter = min(word["end"], end) - max(word["start"], start)
    shorter = max(min(word["end"] - word["start"], end - start), 1e-9)
    return max(0.0, inter) / shorter


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

"""Aligning the transcript of a long recording (an hour), segment by segment, in windows.

Whole-input alignment (:mod:`crnn.inference.align`) holds a (frames x tokens) table for the whole input,
which an hour of speech with its transcript does not fit. Here, as in CTC segmentation (Kürzinger et al.,
2020), the transcript comes as **segments** (one utterance or sentence per line) and:

1. the model's log-probabilities of the whole recording are computed in windows of ``window`` seconds with
   ``context`` seconds either side (a bidirectional model sees past each cut; only the middle is kept);
2. the segments are aligned a block at a time (a few lines, at least ``block_tokens`` tokens) inside a stretch
   of frames that starts where the previous block ended. The block may start and end anywhere in its stretch
   (a free "skip" state before the first token and after the last: audio nobody transcribed is passed over),
   and the stretch grows until the block ends well inside it;
3. each segment gets its words (their edges moved from the CTC spikes to the sound around them, as
   :mod:`crnn.inference.word_edges` does), its start and end (its first word's start, its last word's end),
   and a **score**: the
   mean per-frame log-probability of the path over the segment. A segment whose text is not in the audio
   can only be forced onto frames that say something else, so its score falls far below the others': it is
   **flagged** (``score < flag_below``) rather than silently forced.

Memory holds the log-probabilities (frames x vocabulary) and one block's table; time grows linearly with
the recording.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from crnn.ctc import ctc_min_frames, forced_path, path_spans
from crnn.inference.align import AlignmentError, encode_transcript
from crnn.inference.segment import EnergyMeter
from crnn.inference.word_edges import EDGES, energy_edges
from crnn.model.network import CRNN

FLAG_BELOW = -3.0  # segments whose tokens average below this log-probability (5 %) are flagged (bench/align_long.py)


@dataclass
class SegmentAlignment:
    """One transcript line in the recording.

    Attributes:
        index: its line number among the segments (0-based).
        text: the line as the model's tokenizer normalises it.
        start, end: seconds (end: the end of its last token's last frame).
        score: mean per-frame log-probability of the path over the segment.
        flagged: the score is below the threshold: the text probably does not match the audio there.
        words: ``{"word", "start", "end", "score"}`` in seconds.
    """

    index: int
    text: str
    start: float
    end: float
    score: float
    flagged: bool
    words: list[dict] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "text": self.text, "start": self.start, "end": self.end,
                "score": round(self.score, 4), "flagged": self.flagged, "words": self.words}


@dataclass
class LongAlignment:
    """A long recording's segment alignment (``crnn align --transcript``)."""

    path: str
    duration: float
    segments: list[SegmentAlignment]
    flag_below: float

    @property
    def flagged(self) -> list[SegmentAlignment]:
        return [s for s in self.segments if s.flagged]

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "duration": self.duration, "flag_below": self.flag_below,
                "flagged": len(self.flagged), "segments": [s.to_json() for s in self.segments]}


# -- log-probabilities of a long recording ----------------------------------------------------------
def windowed_log_probs(model: CRNN, source, window: float = 30.0, context: float = 2.0) -> torch.Tensor:
    """The model's log-probabilities (T', V) of a whole recording, computed ``window`` seconds at a time.

    Each window is read with ``context`` seconds either side and keeps only its own frames, so that a
    bidirectional layer sees across every cut; the windows start on output-frame boundaries so the kept
    frames join into one sequence in the recording's time (frame ``t`` starts at ``t * frame_shift``).

    Args:
        model: an audio CRNN in eval mode.
        source: an :class:`crnn.data.audio.blocks.AudioSource` of the recording.
    """
    from crnn.data.audio.blocks import to_model_rate

    sr, shift = model.sample_rate, model.frame_shift
    hop = int(round(shift * sr))  # model-rate samples per output frame
    win_frames = max(1, int(window / shift))
    ctx_frames = int(math.ceil(context / shift))
    total = int(round(source.duration * sr))
    n_frames = max(1, math.ceil(total / hop))
    device = next(model.parameters()).device
    pieces = []
    for first in range(0, n_frames, win_frames):
        last = min(n_frames, first + win_frames)
        a, b = max(0, first - ctx_frames), min(n_frames, last + ctx_frames)
        wav = to_model_rate(source.read(a * hop / sr, b * hop / sr), source.sample_rate, sr)
        if wav.numel() < hop:  # a sliver at the very end: no frame of its own
            break
        with torch.inference_mode():
            lp, lens = model(wav.unsqueeze(0).to(device), torch.tensor([wav.numel()], device=device))
        lp = lp[0, : int(lens[0])].float().cpu()
        keep = lp[first - a: first - a + (last - first)]
        pieces.append(keep)
        if keep.size(0) < last - first:  # the model gave fewer frames than the samples: the end of the file
            break
    return torch.cat(pieces) if pieces else torch.zeros(0, len(model.tokenizer))


# -- block alignment with free ends ----------------------------------------------------------------
def align_free_ends(log_probs: torch.Tensor, ids: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Viterbi path of ``ids`` through ``log_probs`` (T, V) that may start and end on any frame.

    A "skip" symbol of probability one is added to the vocabulary and the target becomes skip, ids, skip:
    frames before the first token and after the last cost nothing and belong to no token (their path id is
    -1); between the first and last token every frame is scored as CTC scores it.

    Returns:
        path (T,) int64 (-1 on skipped frames, 0 blank, else a token) and its per-frame log-probabilities
        (T,) (0 on skipped frames).
    """
    T, V = log_probs.shape
    skip = V
    # one padding frame either side carries the skip symbol, so that the real frames are all free to use
    lp = torch.full((T + 2, V + 1), -math.inf)
    lp[1:-1, :V] = log_probs
    lp[1:-1, skip] = 0.0
    lp[0, skip] = lp[-1, skip] = 0.0
    path, scores = forced_path(lp, [skip, *ids, skip])
    path, scores = path[1:-1].clone(), scores[1:-1].clone()
    path[path == skip] = -1
    scores[path == -1] = 0.0
    return path, scores


# -- the segment aligner ---------------------------------------------------------------------------
def align_segments(model: CRNN, item, lines: Sequence[str], name: str | None = None, *,
                   window: float = 30.0, context: float = 2.0, block_tokens: int = 200,
                   flag_below: float = FLAG_BELOW, edges: str = "energy") -> LongAlignment:
    """Align the lines of a long recording's transcript (one segment a line) to the recording.

    Args:
        model: an audio CRNN with its tokenizer, in eval mode.
        item: the recording: a path, or ``(samples, sample_rate)``.
        lines: the transcript's segments in order (blank lines dropped beforehand).
        name: how errors name the recording.
        window, context: seconds per inference window and of context either side (see
            :func:`windowed_log_probs`).
        block_tokens: lines are aligned a block at a time, each block at least this many tokens.
        flag_below: segments whose score is below this are flagged. (Default: -3.0)
        edges: ``"energy"``: words' (and so segments') edges from the sound around their CTC spikes
            (:func:`crnn.inference.word_edges.energy_edges`); ``"ctc"``: the CTC path's first and last frames.
            (Default: "energy")

    Raises:
        AlignmentError: not an audio model, no lines, a line the model cannot write (naming its line
            number), or a transcript needing more frames than the recording has.
    """
    from crnn.data.audio.blocks import ArraySource, open_audio

    name = name or (os.fspath(item) if not isinstance(item, tuple) else "<array>")
    if edges not in EDGES:
        raise ValueError(f"edges must be one of {', '.join(EDGES)}, got {edges!r}")
    if model.modality != "audio":
        raise AlignmentError(f"{name}: segment alignment of long recordings needs an audio model; this one reads "
                             f"{model.modality} (align whole inputs with a transcript each)")
    tok = model.tokenizer
    encoded = [encode_transcript(tok, line, f"{name}: transcript line {k + 1}") for k, line in enumerate(lines)]
    if not encoded:
        raise AlignmentError(f"{name}: the transcript has no lines to align")
    source = ArraySource(item[0], item[1], name=name) if isinstance(item, tuple) else open_audio(item, model.sample_rate)
    lp = windowed_log_probs(model, source, window, context)
    if not torch.isfinite(lp).all():
        raise AlignmentError(f"{name}: the model's outputs are not finite (NaN: damaged weights?)")
    T, shift = lp.size(0), model.frame_shift
    sep = tok.word_separator
    need = sum(ctc_min_frames(ids) for _, ids, _ in encoded) + (len(encoded) - 1) * (sep is not None)
    if need > T:
        raise AlignmentError(f"{name}: the transcript needs {need} output frames, the recording gives {T} "
                             f"({T * shift:.1f} s): too long a transcript for this recording (or the wrong one)")
    frames_per_token = T / max(1, sum(len(ids) for _, ids, _ in encoded))
    duration = round(source.duration, 3)
    segments: list[SegmentAlignment] = []
    cursor, k = 0, 0
    while k < len(encoded):
        # a block: whole lines, at least block_tokens tokens (or what is left)
        j, n_tokens = k, 0
        while j < len(encoded) and (n_tokens < block_tokens or j == k):
            n_tokens += len(encoded[j][1]) + (sep is not None)
            j += 1
        block_ids, owners = [], []  # token ids of the block, and which line (or None: a separator) each is
        for line in range(k, j):
            if block_ids and sep is not None:
                block_ids.append(sep)
                owners.append(None)
            block_ids += encoded[line][1]
            owners += [line] * len(encoded[line][1])
        remaining_need = sum(ctc_min_frames(encoded[m][1]) for m in range(j, len(encoded)))
        limit = T - remaining_need  # the block must leave the later lines their frames
        span, end = int(2 * frames_per_token * n_tokens + 10.0 / shift), -1
        while True:
            stop = min(limit, cursor + span)
            if stop - cursor < ctc_min_frames(block_ids):
                raise AlignmentError(f"{name}: lines {k + 1}-{j} need {ctc_min_frames(block_ids)} frames and only "
                                     f"{max(0, stop - cursor)} are left after {cursor * shift:.1f} s: the transcript "
                                     f"is longer than the recording allows")
            path, scores = align_free_ends(lp[cursor:stop], block_ids)
            previous, end = end, cursor + int(torch.nonzero(path >= 0)[-1]) + 1
            # ending near the stretch's edge means the block may run past it: look further, until it stops moving
            if stop >= limit or stop - end > int(5.0 / shift) or end == previous:
                break
            span *= 2
        spans = path_spans(path.clamp(min=0).tolist())
        line_tokens: dict[int, list[int]] = {}
        for t_index, owner in enumerate(owners):
            if owner is not None:
                line_tokens.setdefault(owner, []).append(t_index)
        for line in range(k, j):
            text, ids, groups = encoded[line]
            idx = line_tokens[line]
            a, b = spans[idx[0]][0], spans[idx[-1]][1]
            # the tokens' own frames: blanks, which a wrong text shares with the right one, dilute nothing
            score = sum(float(scores[spans[i][0]:spans[i][1] + 1].mean()) for i in idx) / len(idx)
            words = []
            for w, g in groups:
                wa, wb = spans[idx[g[0]]][0], spans[idx[g[-1]]][1]
                words.append({"word": w, "start": _sec(cursor + wa, shift, duration),
                              "end": _sec(cursor + wb + 1, shift, duration),
                              "score": round(float(scores[wa:wb + 1].mean()), 4)})
            segments.append(SegmentAlignment(line, text, _sec(cursor + a, shift, duration),
                                             _sec(cursor + b + 1, shift, duration), score,
                                             bool(score < flag_below), words))
        cursor, k = end, j
    if edges == "energy":
        _move_edges_to_sound(segments, source)
    return LongAlignment(name, duration, segments, flag_below)


def _move_edges_to_sound(segments: list[SegmentAlignment], source) -> None:
    """Every word's edges from the recording's sound (all words at once, so neighbours across blocks and lines
    share their pauses); each segment then runs from its first word's start to its last word's end."""
    meter = EnergyMeter(source.sample_rate)
    energies = np.concatenate([meter.feed(block) for block in source.blocks(60.0)] or [np.zeros(0, np.float32)])
    words = [w for seg in segments for w in seg.words]
    moved = iter(energy_edges(words, np.zeros(0, np.float32), source.sample_rate, energies=energies))
    for seg in segments:
        seg.words = [next(moved) for _ in seg.words]
        if seg.words:
            seg.start, seg.end = seg.words[0]["start"], seg.words[-1]["end"]


def _sec(frame: int, shift: float, duration: float) -> float:
    return round(min(frame * shift, duration), 3)


def read_transcript_lines(path: str | os.PathLike) -> list[str]:
    """A transcript file's segments: its non-blank lines, in order.

    Raises:
        AlignmentError: the file is missing, unreadable, not UTF-8 text or has no non-blank line.
    """
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.strip() for line in f]
    except FileNotFoundError:
        raise AlignmentError(f"{path}: no such transcript file") from None
    except UnicodeDecodeError as e:
        raise AlignmentError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise AlignmentError(f"{path}: cannot read the transcript ({e.strerror or e})") from None
    lines = [line for line in lines if line]
    if not lines:
        raise AlignmentError(f"{path}: the transcript has no non-blank line")
    return lines


def align_long(recording, transcript: str | os.PathLike | Sequence[str], checkpoint: str | os.PathLike | None = None,
               model: CRNN | None = None, *, device: str | torch.device = "cpu",
               flag_below: float = FLAG_BELOW, edges: str = "energy") -> LongAlignment:
    """Align a long recording's transcript, one segment a line: what ``crnn align --transcript`` prints.

    Args:
        recording: a path, or ``(samples, sample_rate)``.
        transcript: a text file (one segment per line; blank lines skipped), or the lines as a list.
        checkpoint: a checkpoint or a shipped model's name (or pass ``model``).
        model: a loaded audio model with its tokenizer (``crnn.load_model``).
        device: where a model loaded from ``checkpoint`` runs. (Default: "cpu")
        flag_below: segments scoring below this are flagged. (Default: -3.0)
        edges: ``"energy"`` (word and segment edges from the sound around the CTC spikes) or ``"ctc"``.
            (Default: "energy")

    Returns:
        A :class:`LongAlignment`: ``.segments`` (each ``.start``, ``.end``, ``.score``, ``.flagged``,
        ``.words``), ``.flagged``, ``.to_json()``.

    Raises:
        AlignmentError, and the audio readers' errors, naming the recording or the transcript's line.
    """
    from crnn.inference.api import model_for_call

    model = model_for_call(checkpoint, model, "raise", device).eval()
    if isinstance(transcript, (str, os.PathLike)):
        lines = read_transcript_lines(transcript)
    else:
        lines = [str(line).strip() for line in transcript if str(line).strip()]
    return align_segments(model, recording, lines, flag_below=flag_below, edges=edges)

"""Forced alignment: where each word and token of a KNOWN transcript lies in its input.

The model's log-probabilities (T', V) and the transcript's tokens go through the CTC Viterbi path
(``crnn.ctc.forced_path``: torchaudio's ``forced_align``); each token gets the output frames the path emits
it on, each word the frames from its first token's first frame to its last token's last frame. The
model's modality decides the units of the result:

* **audio**: words and tokens with start/end seconds (output frame ``t`` starts at ``t * frame_shift``); a
  word's edges are moved from its CTC spikes to the sound around them (``edges="energy"``, the default:
  :mod:`crnn.inference.word_edges`), tokens keep their spikes.
* **video / features**: one segment per label (a word of a label vocabulary), as input frames and seconds at
  the reader's ``fps``. CTC emits a label on a frame or two (a spike), so ``spans`` says how segments are
  drawn (:data:`SPANS`): ``"onset"`` (default) starts each label at its spike and runs it to the next
  label's (a CTC spike comes early in its action: the better boundaries, BENCHMARKS.md); ``"midpoint"``
  gives every input frame to the nearest aligned label (boundaries halfway between neighbouring spikes, as
  ``crnn.evaluation.frame_accuracy`` scores frames); ``"emitted"`` keeps only the
  frames the path emits each label on, the rest labelled ``"background"``.
* **image** (text lines): each character's and word's pixel columns in the input image (``end`` exclusive).

Every word, token and segment has a ``score``: the mean per-frame log-probability of its aligned path (a
token: the frames emitting it; a word: its frames, blanks inside it included). A score far below the
others flags text that does not match the input.

Text the model cannot emit is an :class:`AlignmentError` naming the input, never a partial alignment: a
symbol outside the vocabulary, characters the model's text policy would drop (digits under the ``english``
policy), or a transcript needing more output frames than the input gives.

Alignment runs on the whole input at once: inputs longer than ``max_seconds`` (Default: 60) are refused
with a message saying so. Long recordings are aligned a transcript line at a time, in windows, by
:mod:`crnn.inference.align_long`.
"""
from __future__ import annotations

import os
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import torch

from crnn.ctc import ctc_min_frames, forced_path, path_spans
from crnn.inference.api import is_single_input, model_for_call
from crnn.inference.batching import Input, input_name
from crnn.model.network import CRNN
from crnn.inference.word_edges import EDGES, energy_edges
from crnn.tokenizer import Tokenizer, UnknownSymbolError

BACKGROUND = "background"  # per-frame label of frames no aligned label covers (``spans="emitted"``)
SPANS = ("onset", "midpoint", "emitted")  # how video/features segments are drawn from the CTC spikes
MAX_SECONDS = 60.0  # inputs longer than this are refused (alignment runs on the whole input)


class AlignmentError(ValueError):
    """A transcript cannot be aligned to its input (the message names the input and says why)."""


# -- alignment in output frames --------------------------------------------------------------------
@dataclass
class FrameAlignment:
    """The forced alignment of one transcript, in the model's output frames.

    Attributes:
        text: the transcript as the tokenizer normalises it.
        tokens: the token ids aligned (word separators included).
        token_spans: per token, ``(first_frame, last_frame)`` inclusive, output frames.
        token_scores: per token, the mean log-probability of the path over its frames.
        words: per word, its text.
        word_tokens: per word, the indices into ``tokens`` of its tokens (separators belong to no word).
        word_spans: per word, ``(first_frame, last_frame)`` inclusive.
        word_scores: per word, the mean log-probability of the path over its frames (blanks inside included).
        path: (T',) the id the path emits on each frame (0 = blank).
        frame_scores: (T',) the path's log-probability on each frame.
    """

    text: str
    tokens: list[int]
    token_spans: list[tuple[int, int]]
    token_scores: list[float]
    words: list[str]
    word_tokens: list[list[int]]
    word_spans: list[tuple[int, int]]
    word_scores: list[float]
    path: torch.Tensor
    frame_scores: torch.Tensor

    @property
    def score(self) -> float:
        """Mean per-frame log-probability of the whole path."""
        return float(self.frame_scores.mean()) if self.frame_scores.numel() else float("nan")


def encode_transcript(tokenizer: Tokenizer, text: str | Sequence[str], name: str = "<input>",
                      ) -> tuple[str, list[int], list[tuple[str, list[int]]]]:
    """A transcript -> (normalised text, token ids, words as ``(text, indices into the ids)``).

    Words are the whitespace-separated words of the normalised text (labels: each label), so a vocabulary
    without a space symbol (DTMF keys) still gets the words the transcript spells ("555 1234").

    Raises:
        AlignmentError: naming ``name``: a symbol outside the vocabulary, characters the text policy drops,
            or an empty transcript.
    """
    if not isinstance(text, str):
        text = " ".join(str(t) for t in text)
    if tokenizer.kind == "label":
        words = tokenizer.split(text)
        norm = " ".join(words)
    else:
        norm = tokenizer.normalize(text)
        words = norm.split()
    if tokenizer.kind != "label" or tokenizer.text_norm is not None:
        lost = Counter(c for c in unicodedata.normalize("NFKC", text).lower() if c.isalnum())
        lost.subtract(c for c in norm.lower() if c.isalnum())
        dropped = "".join(sorted(c for c, n in lost.items() if n > 0))
        if dropped:
            policy = f"text policy {tokenizer.text_norm!r}" if tokenizer.text_norm else "text normalisation"
            raise AlignmentError(f"{name}: the model cannot write {dropped!r} (its {policy} drops them): spell the "
                                 f"transcript as the model writes it (e.g. numbers as words)")
    if not words:
        raise AlignmentError(f"{name}: the transcript is empty" + (" after the model's text normalisation"
                                                                  if text.strip() else ""))
    sep = tokenizer.word_separator
    ids: list[int] = []
    groups: list[tuple[str, list[int]]] = []
    for i, word in enumerate(words):
        if i and sep is not None:
            ids.append(sep)
        try:
            wids = tokenizer.encode([word] if tokenizer.kind == "label" else word)
        except UnknownSymbolError as e:
            raise AlignmentError(f"{name}: cannot align the word {word!r}: {e}") from None
        groups.append((tokenizer.decode(wids) if tokenizer.kind != "label" else word,
                       list(range(len(ids), len(ids) + len(wids)))))
        ids += wids
    return norm, ids, groups


def align_log_probs(log_probs: torch.Tensor, text: str | Sequence[str], tokenizer: Tokenizer,
                    name: str = "<input>", frame_shift: float | None = None) -> FrameAlignment:
    """Force-align a transcript to one utterance's log-probabilities.

    Args:
        log_probs: (T', V) log-posteriors of one utterance (valid frames only), blank = 0.
        text: the known transcript (a string, or a list of labels).
        tokenizer: the model's tokenizer.
        name: how errors name the input.
        frame_shift: seconds per output frame, only to say how long the input is in errors.

    Raises:
        AlignmentError: the transcript cannot be emitted (see :func:`encode_transcript`), needs more frames
            than ``log_probs`` has, or the model's outputs are not finite.
    """
    norm, ids, groups = encode_transcript(tokenizer, text, name)
    if log_probs.dim() != 2 or log_probs.size(1) != len(tokenizer):
        raise AlignmentError(f"{name}: expected log-probs (T, {len(tokenizer)}), got {tuple(log_probs.shape)}")
    T = log_probs.size(0)
    need = ctc_min_frames(ids)
    if need > T:
        repeats = need - len(ids)
        what = f"{len(ids)} tokens" + (f" + {repeats} blank(s) between repeated neighbours" if repeats else "")
        length = f" ({T * frame_shift:.2f} s at {frame_shift * 1000:g} ms a frame)" if frame_shift else ""
        raise AlignmentError(f"{name}: the transcript needs {need} output frames ({what}), the input gives "
                             f"{T}{length}: too long a transcript for this input (or the wrong input)")
    if not torch.isfinite(log_probs).all():
        raise AlignmentError(f"{name}: the model's outputs are not finite (NaN: damaged weights?)")
    path, frame_scores = forced_path(log_probs, ids)
    if not torch.isfinite(frame_scores).all():
        raise AlignmentError(f"{name}: the model gives this transcript zero probability")
    spans = path_spans(path.tolist())
    if len(spans) != len(ids):  # cannot happen with a valid Viterbi path; never return a partial alignment
        raise AlignmentError(f"{name}: the alignment path emits {len(spans)} tokens, the transcript has {len(ids)}")
    token_scores = [float(frame_scores[a:b + 1].mean()) for a, b in spans]
    word_spans = [(spans[g[0]][0], spans[g[-1]][1]) for _, g in groups]
    word_scores = [float(frame_scores[a:b + 1].mean()) for a, b in word_spans]
    return FrameAlignment(norm, ids, spans, token_scores, [w for w, _ in groups], [g for _, g in groups],
                          word_spans, word_scores, path, frame_scores)


# -- results in the input's units -------------------------------------------------------------------
@dataclass
class Alignment:
    """One input's alignment, in its own units, or the error that stopped it.

    Attributes:
        path: the input's name.
        modality: the model's (``"audio"``, ``"video"``, ``"features"``, ``"image"``).
        text: the transcript as aligned (normalised by the model's tokenizer).
        words: ``{"word", "start", "end", "score"}``: seconds (audio, video, features) or pixel columns
            (image, ``end`` exclusive); video and features add ``"start_frame"``, ``"end_frame"`` (input
            frames, ``end_frame`` exclusive).
        tokens: ``{"token", "start", "end", "score"}`` in the same units (word separators left out).
        score: mean per-frame log-probability of the whole path.
        duration: seconds of input aligned (a row's stretch when it has offset/duration, whose times are in
            the file's own seconds); None for images.
        fps: video and features: input frames per second.
        frame_labels: video and features: one label per input frame.
        error: why the input could not be aligned (everything else empty).
    """

    path: str
    modality: str = "audio"
    text: str = ""
    words: list[dict] = field(default_factory=list)
    tokens: list[dict] = field(default_factory=list)
    score: float = float("nan")
    duration: float | None = None
    fps: float | None = None
    frame_labels: list[str] | None = None
    error: str | None = None

    @property
    def unit(self) -> str:
        return "px" if self.modality == "image" else "s"

    def to_json(self) -> dict[str, Any]:
        """audio: ``{"path", "text", "score", "duration", "words", "tokens"}`` (NeMo style);
        video/features: ``{"path", "text", "score", "duration", "fps", "segments": [{"label", "start_frame",
        "end_frame", "start", "end", "score"}]}``; image: ``{"path", "text", "score", "unit": "px", "words",
        "chars"}``; a failed input: ``{"path", "error"}``."""
        if self.error:
            return {"path": self.path, "error": self.error}
        row: dict[str, Any] = {"path": self.path, "text": self.text, "score": round(self.score, 4)}
        if self.modality == "image":
            chars = [{"char": t["token"], "start": t["start"], "end": t["end"], "score": t["score"]}
                     for t in self.tokens]
            row.update(unit="px", words=self.words, chars=chars)
        elif self.modality in ("video", "features"):
            row.update(duration=self.duration, fps=self.fps, segments=[
                {"label": w["word"], **{k: w[k] for k in ("start_frame", "end_frame", "start", "end", "score")}}
                for w in self.words])
        else:
            row.update(duration=self.duration, words=self.words, tokens=self.tokens)
        return row


def in_seconds(fa: FrameAlignment, tokenizer: Tokenizer, frame_shift: float, duration: float | None = None,
               offset: float = 0.0) -> tuple[list[dict], list[dict]]:
    """Words and tokens with ``start``/``end`` seconds (``end``: the end of the last frame, at most ``duration``;
    ``offset`` is added, for a stretch of a longer file)."""
    def sec(frame: int) -> float:
        t = frame * frame_shift
        return round(offset + (min(t, duration) if duration is not None else t), 3)

    words = [{"word": w, "start": sec(a), "end": sec(b + 1), "score": round(s, 4)}
             for w, (a, b), s in zip(fa.words, fa.word_spans, fa.word_scores)]
    return words, _tokens(fa, tokenizer, sec)


def in_pixels(fa: FrameAlignment, tokenizer: Tokenizer, px_per_frame: float, width: int | None = None,
              ) -> tuple[list[dict], list[dict]]:
    """Words and characters of a text line as pixel columns of the input image (``end`` exclusive)."""
    def px(frame: int) -> int:
        x = round(frame * px_per_frame)
        return min(x, width) if width is not None else x

    words = [{"word": w, "start": px(a), "end": px(b + 1), "score": round(s, 4)}
             for w, (a, b), s in zip(fa.words, fa.word_spans, fa.word_scores)]
    return words, _tokens(fa, tokenizer, px)


def in_input_frames(fa: FrameAlignment, stride: int, n_input: int, fps: float, spans: str = "onset",
                    ) -> tuple[list[dict], list[str]]:
    """Video and features: per label (word), its input frames and seconds, and one label per input frame.

    Output frame ``t`` reads input frames ``[t * stride, (t + 1) * stride)``; input frames past the last
    output frame's belong to it.

    Args:
        spans: ``"midpoint"``: every input frame to the nearest aligned label (boundaries halfway between
            neighbouring spans); ``"onset"``: each label from its first emitted frame to the next label's (the
            first from frame 0); ``"emitted"``: only the frames the path emits a label on, the rest
            :data:`BACKGROUND`. (Default: "onset")

    Returns:
        segments ``{"word", "start_frame", "end_frame" (exclusive), "start", "end", "score"}`` and the
        per-frame labels (n_input,).
    """
    if spans not in SPANS:
        raise ValueError(f"spans must be one of {', '.join(SPANS)}, got {spans!r}")
    T = fa.path.numel()
    if spans == "emitted":
        ranges = [(a * stride, (b + 1) * stride) for a, b in fa.word_spans]
    else:
        ws = fa.word_spans
        starts = [0] + [(ws[k - 1][1] + ws[k][0]) // 2 + 1 if spans == "midpoint" else ws[k][0]
                        for k in range(1, len(ws))]
        ranges = [(a * stride, b * stride) for a, b in zip(starts, starts[1:] + [T])]
    ranges = [(min(a, n_input), n_input if b >= T * stride else min(b, n_input)) for a, b in ranges]
    labels = [BACKGROUND] * n_input
    segments = []
    for word, (a, b), score in zip(fa.words, ranges, fa.word_scores):
        labels[a:b] = [word] * (b - a)
        segments.append({"word": word, "start_frame": a, "end_frame": b, "start": round(a / fps, 3),
                         "end": round(b / fps, 3), "score": round(score, 4)})
    return segments, labels


def _tokens(fa: FrameAlignment, tokenizer: Tokenizer, unit) -> list[dict]:
    in_words = {i for g in fa.word_tokens for i in g}
    return [{"token": tokenizer.symbols[tok - 1], "start": unit(a), "end": unit(b + 1), "score": round(s, 4)}
            for i, (tok, (a, b), s) in enumerate(zip(fa.tokens, fa.token_spans, fa.token_scores)) if i in in_words]


# -- files in, alignments out -----------------------------------------------------------------------
# An item to align: (input, transcript), or a manifest row {"path", "text", ["offset", "duration"]}.
Item = Any


def _item_parts(item: Item, index: int) -> tuple[Input, str | Sequence[str], float | None, float | None]:
    if isinstance(item, dict):
        if "path" not in item or "text" not in item:
            raise ValueError(f"item {index}: a row needs 'path' and 'text', got keys {sorted(item)}")
        return item["path"], item["text"], item.get("offset"), item.get("duration")
    if isinstance(item, (tuple, list)) and len(item) == 2:
        return item[0], item[1], None, None
    raise ValueError(f"item {index}: expected (input, transcript) or a row with 'path' and 'text'")


def time_stride(model: CRNN, fps: float) -> int:
    """Input frames per output frame of a video or features model."""
    stride = getattr(model.frontend, "time_stride", None)
    return int(stride) if stride else max(1, round(model.frame_shift * fps))


def align_one(model: CRNN, item: Input, text: str | Sequence[str], name: str | None = None, *,
              offset: float | None = None, duration: float | None = None, max_seconds: float | None = MAX_SECONDS,
              spans: str = "onset", edges: str = "energy") -> Alignment:
    """Align one input (a path, or ``(samples, sample_rate)`` audio) with its transcript.

    ``edges`` (audio): ``"energy"`` moves each word's start and end from its CTC spikes to the sound around
    them (:func:`crnn.inference.word_edges.energy_edges`); ``"ctc"`` keeps the path's first and last frames.

    Raises:
        AlignmentError, and the readers' errors (AudioReadError, VideoReadError, ImageReadError), naming it.
    """
    name = name or input_name(item, 0)
    modality = model.modality
    if modality != "audio" and (offset is not None or duration is not None):
        raise AlignmentError(f"{name}: offset/duration select a stretch of audio; this model reads {modality}")
    if isinstance(item, tuple) and modality != "audio":
        raise AlignmentError(f"{name}: in-memory inputs need an audio model")
    result = Alignment(name, modality)
    info: dict[str, Any] = {}
    if modality == "audio":
        signal = _read_audio(model, item, name, offset, duration, max_seconds)
        result.duration = round(signal.numel() / model.sample_rate, 4)
    else:
        from crnn.data.media import make_reader

        signal = make_reader(modality, model.reader_args)(os.fspath(item))
        if modality == "image":
            from crnn.data.image.reader import image_size

            width, height = image_size(os.fspath(item))
            info = {"px": model.pixels_per_frame * height / signal.shape[-2], "width": width}
        else:
            result.fps = float(model.reader_args.get("fps") or 1.0 / model.frame_shift)
            result.duration = round(signal.shape[0] / result.fps, 4)
            if max_seconds is not None and result.duration > max_seconds:
                raise AlignmentError(_too_long(name, result.duration, max_seconds))
    device = next(model.parameters()).device
    t_dim = -1 if signal.dim() == 3 else 0  # a text line (C, H, W) grows along its width
    with torch.inference_mode():
        lp, lens = model(signal.unsqueeze(0).to(device), torch.tensor([signal.shape[t_dim]], device=device))
    lp = lp[0, : int(lens[0])].float().cpu()  # (T', V)
    fa = align_log_probs(lp, text, model.tokenizer, name, model.frame_shift if modality != "image" else None)
    result.text, result.score = fa.text, fa.score
    if modality == "audio":
        result.words, result.tokens = in_seconds(fa, model.tokenizer, model.frame_shift, result.duration,
                                                 offset or 0.0)
        if edges == "energy":
            result.words = energy_edges(result.words, signal.numpy(), model.sample_rate, offset=offset or 0.0)
    elif modality == "image":
        result.words, result.tokens = in_pixels(fa, model.tokenizer, info["px"], info["width"])
    else:
        result.words, result.frame_labels = in_input_frames(fa, time_stride(model, result.fps), signal.shape[0],
                                                            result.fps, spans)
        result.tokens = [{"token": w["word"], **{k: w[k] for k in ("start", "end", "score")}} for w in result.words]
    return result


def _too_long(name: str, seconds: float, limit: float) -> str:
    return (f"{name}: {seconds:.1f} s is longer than the alignment limit of {limit:g} s (alignment runs on the "
            f"whole input at once, its cost grows with length x transcript): give the transcript one segment a "
            f"line with --transcript (crnn.inference.align_long.align_segments), or raise the limit "
            f"(--max-seconds / max_seconds=)")


def _read_audio(model: CRNN, item: Input, name: str, offset: float | None, duration: float | None,
                max_seconds: float | None) -> torch.Tensor:
    from crnn.data.audio import read_audio
    from crnn.data.audio.blocks import ArraySource, open_audio, to_model_rate

    sr = model.sample_rate
    if isinstance(item, tuple):
        if len(item) != 2:
            raise AlignmentError(f"{name}: in-memory audio is a (samples, sample_rate) pair")
        source = ArraySource(item[0], item[1], name=name)
    else:
        source = open_audio(item, sr)
    start = offset or 0.0
    seconds = max(0.0, source.duration - start) if duration is None else min(duration, source.duration - start)
    if max_seconds is not None and seconds > max_seconds:
        raise AlignmentError(_too_long(name, seconds, max_seconds))
    if isinstance(item, tuple):
        return to_model_rate(source.read(start, start + seconds), source.sample_rate, sr)
    return read_audio(item, sr, offset=offset, duration=duration)


def align_files(model: CRNN, items: Sequence[Item], *, max_seconds: float | None = MAX_SECONDS,
                spans: str = "onset", edges: str = "energy") -> Iterator[Alignment]:
    """Align each item in order, yielding one :class:`Alignment` per item; a bad one has ``error`` set
    (naming it) and the others go on.

    Args:
        model: a CRNN with its tokenizer (``crnn.load_model``), on the device it should run on.
        items: ``(input, transcript)`` pairs (a path or ``(samples, sample_rate)`` audio; a string, or a list
            of labels), or manifest rows ``{"path", "text", ["offset", "duration"]}``.
        max_seconds: longer inputs are refused; None: no limit. (Default: 60)
        spans: video and features: how segments are drawn from the CTC spikes (:data:`SPANS`, see
            :func:`in_input_frames`). (Default: "onset")
        edges: audio: word edges from the sound around the CTC spikes (``"energy"``) or the CTC path's
            first and last frames (``"ctc"``). (Default: "energy")
    """
    if model.tokenizer is None:
        raise ValueError("the model has no tokenizer: load it with crnn.load_model or attach model.tokenizer")
    if spans not in SPANS:
        raise ValueError(f"spans must be one of {', '.join(SPANS)}, got {spans!r}")
    if edges not in EDGES:
        raise ValueError(f"edges must be one of {', '.join(EDGES)}, got {edges!r}")
    model.eval()
    for i, item in enumerate(items):
        name = f"item {i}"
        try:
            inp, text, offset, duration = _item_parts(item, i)
            name = input_name(inp, i)
            yield align_one(model, inp, text, name, offset=offset, duration=duration, max_seconds=max_seconds,
                            spans=spans, edges=edges)
        except (ValueError, OSError, RuntimeError) as e:  # every input error is a per-item message, never a crash
            reason = str(e)
            yield Alignment(name, model.modality, error=reason if name in reason else f"{name}: {reason}")


def align(
    inputs: Input | Sequence[Input], texts: str | Sequence[str] | Sequence[Sequence[str]],
    checkpoint: str | os.PathLike | None = None, model: CRNN | None = None, *, device: str | torch.device = "cpu",
    max_seconds: float | None = MAX_SECONDS, spans: str = "onset", edges: str = "energy", errors: str = "raise",
) -> list[Alignment]:
    """Force-align known transcripts to files or in-memory audio: the rows ``crnn align`` prints.

    Args:
        inputs: a path or ``(samples, sample_rate)`` pair, or a list of them.
        texts: the transcript of each input (one string for a single input; a list of labels is also one
            transcript for a label model).
        checkpoint: a checkpoint or a shipped model's name (or pass ``model``).
        model: a loaded model with its tokenizer (``crnn.load_model``).
        device: where a model loaded from ``checkpoint`` runs. (Default: "cpu")
        max_seconds: longer inputs are refused (alignment runs on the whole input); None: no limit. (Default: 60)
        spans: video and features: ``"midpoint"`` (every input frame to the nearest aligned label),
            ``"onset"`` (each label from its CTC spike to the next label's) or ``"emitted"`` (only the frames
            the path emits a label on, the rest ``"background"``). (Default: "onset")
        edges: audio: ``"energy"`` (word edges from the sound around each word's CTC spikes) or ``"ctc"``
            (the path's first and last frames). (Default: "energy")
        errors: ``"raise"`` raises AlignmentError for the first bad input; ``"keep"`` returns results with
            ``error`` set. (Default: "raise")

    Returns:
        One :class:`Alignment` per input, in order: ``.words``, ``.tokens``, ``.score``, ``.frame_labels``,
        ``.to_json()``.
    """
    model = model_for_call(checkpoint, model, errors, device)
    single = is_single_input(inputs)
    items = [inputs] if single else list(inputs)
    if single:
        texts = [texts]
    elif isinstance(texts, str):
        raise ValueError(f"{len(items)} inputs need a list of {len(items)} transcripts, got one string")
    texts = list(texts)
    if len(texts) != len(items):
        raise ValueError(f"{len(items)} input(s) but {len(texts)} transcript(s)")
    results = list(align_files(model, list(zip(items, texts)), max_seconds=max_seconds, spans=spans, edges=edges))
    if errors == "raise":
        for r in results:
            if r.error:
                raise AlignmentError(r.error)
    return results

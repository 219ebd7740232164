"""Writing alignments (``crnn.inference.align.Alignment``) in the formats users have:

* ``json``: the result's ``to_json()`` row (audio: NeMo-style words and tokens with start/end seconds;
  video/features: segments with input frames and seconds; text lines: pixel columns of words and characters).
* ``ctm``: ``utt channel start duration word confidence`` per word, where confidence is ``exp(score)``: the
  geometric mean of the path's per-frame probabilities over the word, in [0, 1] as CTM readers expect.
* ``srt``, ``vtt``: subtitles of the known transcript, cues built from the aligned words
  (``crnn.inference.outputs.subtitle_cues``).
* ``frames``: video/features: one label per input frame, one a line (``background`` where no label is aligned),
  the layout of action-segmentation ground-truth files; written as ``<stem>.frames.txt``.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

from crnn.decoding.hypothesis import Hypothesis
from crnn.inference.outputs import format_ctm, format_srt, format_vtt, json_line, output_paths, subtitle_cues

TIMED = ("audio", "video", "features")
# format -> the modalities it is written for
ALIGN_FORMATS: dict[str, tuple[str, ...]] = {
    "json": ("audio", "video", "features", "image"), "ctm": TIMED, "srt": TIMED, "vtt": TIMED,
    "frames": ("video", "features"),
}
SUFFIXES = {"frames": "frames.txt"}  # file suffix where it is not the format's name


def parse_align_formats(spec: str, modality: str) -> list[str]:
    """``"json,ctm"`` -> ``["json", "ctm"]`` (order kept, repeats dropped).

    Raises:
        ValueError: an unknown format, or one this modality has no use for (pixel positions are not times;
            audio has no frames to label).
    """
    names = list(dict.fromkeys(s.strip().lower() for s in spec.split(",") if s.strip()))
    unknown = [n for n in names if n not in ALIGN_FORMATS]
    if unknown or not names:
        raise ValueError(f"unknown output format(s) {', '.join(unknown) or repr(spec)}; choose from "
                         f"{','.join(ALIGN_FORMATS)}")
    wrong = [n for n in names if modality not in ALIGN_FORMATS[n]]
    if wrong:
        usable = ",".join(n for n, m in ALIGN_FORMATS.items() if modality in m)
        raise ValueError(f"{', '.join(wrong)}: not written for a model that reads {modality} (its formats: {usable})")
    return names


def dumps(row: dict) -> str:
    """One JSON line; a non-finite number becomes null, never a bare NaN."""
    return json_line(row)


def format_alignment_ctm(result, channel: str = "1") -> str:
    """CTM lines of the aligned words (no trailing newline; "" without words); utterance = the file's stem."""
    words = [{**w, "confidence": math.exp(w["score"])} for w in result.words]
    return format_ctm(Path(result.path).stem, Hypothesis(tokens=[], score=result.score, words=words), channel)


def format_frames(result) -> str:
    """One label per input frame, one a line."""
    return "".join(f"{label}\n" for label in result.frame_labels or [])


def _ctm(result) -> str:
    lines = format_alignment_ctm(result)
    return lines + "\n" if lines else ""


WRITERS: dict[str, Callable[..., str]] = {
    "json": lambda result: dumps(result.to_json()) + "\n",
    "ctm": _ctm,
    "srt": lambda result: format_srt(subtitle_cues(result.words)),
    "vtt": lambda result: format_vtt(subtitle_cues(result.words)),
    "frames": format_frames,
}


def render_alignment(result, fmt: str) -> str:
    """One successful alignment as the text of a file in ``fmt``."""
    if fmt not in WRITERS:
        raise ValueError(f"unknown output format {fmt!r}; choose from {','.join(WRITERS)}")
    if result.modality not in ALIGN_FORMATS[fmt]:
        raise ValueError(f"{fmt} is not written for a model that reads {result.modality}")
    return WRITERS[fmt](result)


def alignment_paths(inputs: list[str], out_dir: str | Path, formats: list[str]) -> dict[str, dict[str, Path]]:
    """Where each input's files go: ``clip.mp4`` -> ``DIR/clip.json``, ``DIR/clip.frames.txt``.

    Raises:
        ValueError: two inputs with the same name would write the same file.
    """
    paths = output_paths(inputs, out_dir, formats)
    return {inp: {fmt: p.with_name(f"{p.stem}.{SUFFIXES.get(fmt, fmt)}") for fmt, p in got.items()}
            for inp, got in paths.items()}


def write_alignment(result, paths: dict[str, Path]) -> None:
    """Write one alignment in every format of ``paths`` (format -> file), creating the folder."""
    for fmt, path in paths.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_alignment(result, fmt), encoding="utf-8")


# -- a long recording's segments (crnn align --transcript) ----------------------------------------------
def format_kaldi_segments(result) -> str:
    """Kaldi ``segments``: ``<recording>-<line:04d> <recording> <start> <end>`` per transcript line (the layout
    CTC segmentation writes, that Kaldi and ESPnet data preparation read); flagged lines included (JSON says
    which)."""
    rec = Path(result.path).stem
    return "".join(f"{rec}-{s.index:04d} {rec} {s.start:.3f} {s.end:.3f}\n" for s in result.segments)


def _segment_cues(result):
    from crnn.inference.outputs import Cue

    return [Cue(s.start, max(s.end, s.start + 0.001), s.text) for s in result.segments]


def _long_ctm(result) -> str:
    rec = Path(result.path).stem
    words = [{**w, "confidence": math.exp(w["score"])} for s in result.segments for w in s.words]
    lines = format_ctm(rec, Hypothesis(tokens=[], score=0.0, words=words))
    return lines + "\n" if lines else ""


# format -> the text of a LongAlignment's file; subtitles get one cue per transcript line
LONG_WRITERS: dict[str, Callable[..., str]] = {
    "json": lambda result: dumps(result.to_json()) + "\n",
    "ctm": _long_ctm,
    "srt": lambda result: format_srt(_segment_cues(result)),
    "vtt": lambda result: format_vtt(_segment_cues(result)),
    "segments": format_kaldi_segments,
}


def parse_long_formats(spec: str) -> list[str]:
    """``"json,segments"`` -> the formats of a segment alignment (order kept, repeats dropped)."""
    names = list(dict.fromkeys(s.strip().lower() for s in spec.split(",") if s.strip()))
    unknown = [n for n in names if n not in LONG_WRITERS]
    if unknown or not names:
        raise ValueError(f"unknown output format(s) {', '.join(unknown) or repr(spec)} for --transcript; choose "
                         f"from {','.join(LONG_WRITERS)}")
    return names


def write_long_alignment(result, out_dir: str | Path, formats: list[str]) -> list[Path]:
    """Write a segment alignment in each format: ``talk.wav`` -> ``DIR/talk.json``, ``DIR/talk.segments`` ..."""
    stem = Path(result.path.rstrip("/\\")).stem
    written = []
    for fmt in formats:
        path = Path(out_dir) / f"{stem}.{fmt}"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(LONG_WRITERS[fmt](result), encoding="utf-8")
        tmp.replace(path)
        written.append(path)
    return written

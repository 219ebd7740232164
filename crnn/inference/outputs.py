"""Writing decoding results, one writer table: plain text, JSON, CTM, and SRT / WebVTT subtitles built
from word timings. ``crnn decode`` (stdout and ``--output-dir``) and the recognition server write through
:func:`render`; a format is one entry of :data:`WRITERS`."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from typing import Callable

from crnn.decoding.hypothesis import Hypothesis


@dataclass(frozen=True)
class Cue:
    """One subtitle: text shown from ``start`` to ``end`` seconds."""

    start: float
    end: float
    text: str


def finite(value):
    """``value`` with every non-finite float (a damaged model's score) replaced by None: JSON has no NaN."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def json_line(row) -> str:
    """One JSON line, non-finite numbers as null (never a bare NaN a JSON reader refuses) and non-ASCII
    escaped, so a file name's undecodable bytes still make valid JSON."""
    return json.dumps(finite(row), allow_nan=False)


def parse_formats(spec: str) -> list[str]:
    """``"srt,vtt"`` -> ``["srt", "vtt"]`` (order kept, repeats dropped); raises ValueError on unknown ones."""
    names = [s.strip().lower() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in FORMATS]
    if unknown or not names:
        raise ValueError(f"unknown output format(s) {', '.join(unknown) or repr(spec)}; choose from {','.join(FORMATS)}")
    return list(dict.fromkeys(names))


def subtitle_cues(words: list[dict], max_chars: int = 42, max_seconds: float = 6.0, min_pause: float = 0.5) -> list[Cue]:
    """Group timed words into cues: a cue ends at a pause of ``min_pause`` seconds or more, or before
    it would grow past ``max_chars`` characters or ``max_seconds`` (a single longer word is a cue of its own).

    Args:
        words: ``[{"word", "start", "end", ...}]`` in seconds, in time order.
    """
    cues: list[Cue] = []
    cur: list[dict] = []

    def flush():
        if cur:
            cues.append(Cue(cur[0]["start"], max(cur[-1]["end"], cur[0]["start"] + 0.001),
                            " ".join(w["word"] for w in cur)))
            cur.clear()

    for w in words:
        if cur:
            text_len = sum(len(c["word"]) + 1 for c in cur) + len(w["word"])
            if (w["start"] - cur[-1]["end"] >= min_pause or text_len > max_chars
                    or w["end"] - cur[0]["start"] > max_seconds):
                flush()
        cur.append(w)
    flush()
    return cues


def _timestamp(seconds: float, decimal: str) -> str:
    ms = int(round(max(0.0, seconds) * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{decimal}{ms:03d}"


def format_ctm(utt_id: str, hyp: Hypothesis, channel: str = "1") -> str:
    """CTM lines ``utt channel start duration word confidence`` for ``hyp.words`` (seconds).

    Lines are joined by newlines, with none at the end; a hypothesis without words gives "".
    """
    lines = []
    for w in hyp.words:
        dur = w["end"] - w["start"]
        lines.append(f"{utt_id} {channel} {w['start']:.3f} {dur:.3f} {w['word']} {w['confidence']:.3f}")
    return "\n".join(lines)


def format_srt(cues: list[Cue]) -> str:
    """SubRip: numbered blocks ``HH:MM:SS,mmm --> HH:MM:SS,mmm`` and the text."""
    return "".join(f"{i}\n{_timestamp(c.start, ',')} --> {_timestamp(c.end, ',')}\n{c.text}\n\n"
                   for i, c in enumerate(cues, 1))


def format_vtt(cues: list[Cue]) -> str:
    """WebVTT: the ``WEBVTT`` header, then ``HH:MM:SS.mmm --> HH:MM:SS.mmm`` blocks."""
    return "WEBVTT\n\n" + "".join(f"{_timestamp(c.start, '.')} --> {_timestamp(c.end, '.')}\n{c.text}\n\n" for c in cues)


def _ctm(result, nbest: int) -> str:
    lines = format_ctm(Path(result.path).stem, result.best)
    return lines + "\n" if lines else ""


# format -> (result, nbest) -> the text of its file
WRITERS: dict[str, Callable[..., str]] = {
    "txt": lambda result, nbest: result.text + "\n",
    "json": lambda result, nbest: json.dumps(result.to_json(nbest), ensure_ascii=False) + "\n",
    "srt": lambda result, nbest: format_srt(subtitle_cues(result.words)),
    "vtt": lambda result, nbest: format_vtt(subtitle_cues(result.words)),
    "ctm": _ctm,
}
FORMATS = tuple(WRITERS)


def render(result, fmt: str, nbest: int = 1) -> str:
    """One successful result (``crnn.inference.FileResult``) as the text of a file in ``fmt``."""
    if fmt not in WRITERS:
        raise ValueError(f"unknown output format {fmt!r}; choose from {','.join(FORMATS)}")
    return WRITERS[fmt](result, nbest)


def output_paths(inputs: list[str], out_dir: str | Path, formats: list[str]) -> dict[str, dict[str, Path]]:
    """Where each input's files go: ``call.wav`` -> ``DIR/call.srt``.

    Raises:
        ValueError: two inputs with the same name would write the same file.
    """
    out, seen = {}, {}
    for path in inputs:
        stem = Path(path.rstrip("/\\")).stem
        if stem in seen and seen[stem] != path:
            raise ValueError(f"{seen[stem]} and {path} would both write {Path(out_dir) / stem}.*")
        seen[stem] = path
        out[path] = {fmt: Path(out_dir) / f"{stem}.{fmt}" for fmt in formats}
    return out


def write_outputs(result, paths: dict[str, Path], nbest: int = 1) -> None:
    """Write one result in every format of ``paths`` (format -> file), creating the folder."""
    for fmt, path in paths.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(result, fmt, nbest), encoding="utf-8")

"""Word edges from the sound around CTC spikes.

A CTC model emits each token on a frame or two (a spike) somewhere inside the sound of its word, so the
first and last frames of a word's path say *where* the word is, not where it begins and ends: on spoken
digits those edges are worse than splitting the recording evenly (BENCHMARKS.md). The sound says where a
word begins and ends. Given each word's spike span, :func:`energy_edges` moves:

* the boundary between two words to the **longest pause** between their spikes (start and end of that
  silent run), or, when no frame between them is silent (connected speech), to the **quietest** 50 ms
  between them (both words share it);
* the first word's start back to the end of the last pause before its spike, and the last word's end on
  to the start of the first pause after its spike (the recording's edges when there is none).

Energies are those of :func:`crnn.inference.segment.frame_energies` (25 ms frames every 10 ms). Silence is
judged locally, between the spikes at hand (see ``energy_edges``' thresholds), so a step in the background
level elsewhere in a long recording moves nothing; a pause at the outer edges must last ``min_edge_pause``
seconds, so a stop consonant's closure inside a word does not end it.
"""
from __future__ import annotations

import numpy as np

from crnn.inference.segment import HOP_SECONDS, _smooth, frame_energies, quietest_frame

EDGES = ("ctc", "energy")  # how word edges are drawn: the CTC path's first/last frames, or the sound around them


def _silent_runs(silent: np.ndarray, lo: int, hi: int) -> list[tuple[int, int]]:
    """Runs ``(a, b)`` (b exclusive) of silent frames within [lo, hi)."""
    lo, hi = max(0, lo), min(silent.size, hi)
    if hi <= lo:
        return []
    step = np.diff(np.concatenate([[0], silent[lo:hi].astype(np.int8), [0]]))
    return [(int(a) + lo, int(b) + lo) for a, b in zip(np.flatnonzero(step == 1), np.flatnonzero(step == -1))]


def energy_edges(words: list[dict], samples: np.ndarray, sample_rate: int, offset: float = 0.0,
                 min_edge_pause: float = 0.1, energies: np.ndarray | None = None, margin_db: float = 8.0,
                 drop_db: float = 25.0, min_depth_db: float = 15.0, edge_reach: float = 2.0) -> list[dict]:
    """Words (``{"word", "start", "end", ...}`` in seconds, from the CTC path) with their edges moved to the
    sound around them (see the module's text). Other keys are kept.

    Args:
        words: in time order, times in the recording's seconds.
        samples: (S,) the audio the words lie in, starting at ``offset`` seconds.
        sample_rate: its rate.
        offset: the recording time of ``samples[0]``.
        min_edge_pause: seconds of silence that end the first word's start search and the last word's end.
        energies: the frame energies of ``samples`` if already computed (``frame_energies``).
        margin_db, drop_db, min_depth_db: a frame between two spikes is silent when its energy (smoothed
            over 50 ms) is within ``margin_db`` of the stretch's quietest or ``drop_db`` below the words'
            loudest, and never within ``min_depth_db`` of the loudest (chosen on the FSDD dev speaker).
        edge_reach: seconds searched before the first word and after the last for their outer edges.
    """
    if not words:
        return []
    e = frame_energies(np.asarray(samples, dtype=np.float32), sample_rate) if energies is None else energies
    n = e.size
    if n == 0:
        return [dict(w) for w in words]
    smooth = _smooth(e)
    if smooth.max() - smooth.min() < min_depth_db:  # no sound stands out anywhere: nothing to move to
        return [dict(w) for w in words]

    def silent_in(lo: int, hi: int, peak: float) -> np.ndarray:
        """Silence within [lo, hi): within ``margin_db`` of the stretch's quietest 50 ms (a local floor: a
        step in the background level elsewhere moves nothing), or ``drop_db`` below the words' ``peak``
        (a dip to digital silence beside room tone does not make the room tone sound); never within
        ``min_depth_db`` of the peak (a shallow dip in connected speech is no pause)."""
        full = np.zeros(n, dtype=bool)
        lo, hi = max(0, lo), min(n, hi)
        if hi > lo:
            threshold = min(max(smooth[lo:hi].min() + margin_db, peak - drop_db), peak - min_depth_db)
            full[lo:hi] = smooth[lo:hi] < threshold
            for a, b in _silent_runs(~full, lo, hi):  # a blip of noise under 50 ms inside a pause is pause
                if a > lo and b < hi and b - a < 5:
                    full[a:b] = True
        return full

    def peak(a: int, b: int) -> float:
        return float(smooth[max(0, a):min(n, max(b, a + 1))].max())

    def frame(seconds: float) -> int:
        return int(np.clip(round((seconds - offset) / HOP_SECONDS), 0, n))

    def sec(f: int) -> float:
        return round(offset + f * HOP_SECONDS, 3)

    spikes = [(frame(w["start"]), max(frame(w["start"]) + 1, frame(w["end"]))) for w in words]
    starts = [sec(a) for a, _ in spikes]
    ends = [sec(b) for _, b in spikes]
    for k in range(len(words) - 1):
        lo, hi = spikes[k][1], spikes[k + 1][0]
        if hi <= lo:
            continue  # touching spikes: nothing between them to move into
        runs = _silent_runs(silent_in(lo, hi, peak(spikes[k][0], spikes[k + 1][1])), lo, hi)
        a, b = max(runs, key=lambda r: r[1] - r[0]) if runs else (quietest_frame(e, lo, hi),) * 2
        ends[k], starts[k + 1] = sec(a), sec(b)
    min_run = max(1, int(round(min_edge_pause / HOP_SECONDS)))
    reach = int(round(edge_reach / HOP_SECONDS))
    first, last = spikes[0], spikes[-1]
    lo, hi = max(0, first[0] - reach), min(n, last[1] + reach)
    # the outer edges move only where the word stands out from what lies beyond it (not in a flat signal)
    if lo < first[0] and peak(*first) - smooth[lo:first[0]].min() >= min_depth_db:
        before = [r for r in _silent_runs(silent_in(lo, first[0], peak(*first)), lo, first[0])
                  if r[1] - r[0] >= min_run or r[0] == lo]
        starts[0] = sec(before[-1][1]) if before else sec(lo)
    if last[1] < hi and peak(*last) - smooth[last[1]:hi].min() >= min_depth_db:
        after = [r for r in _silent_runs(silent_in(last[1], hi, peak(*last)), last[1], hi)
                 if r[1] - r[0] >= min_run or r[1] == hi]
        ends[-1] = sec(after[0][0]) if after else sec(hi)
    out = []
    for w, s, t in zip(words, starts, ends):
        out.append({**w, "start": s, "end": max(t, s)})
    return out

"""Segmenting long recordings: energy VAD on synthetic signals, fixed windows, stitching in the file's time."""
import math

import numpy as np
import pytest

from crnn.decoding.hypothesis import Hypothesis
from crnn.segment import (
    EnergyMeter, Segment, find_segments, fixed_windows, frame_energies, last_cut, stitch,
)
from crnn.tokenizer import Tokenizer

SR = 8000


def bursts(spec, total: float, noise_db: float = -60.0, seed: int = 0) -> np.ndarray:
    """White noise at ``noise_db`` dBFS with tones (start, end, level dBFS) added."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 10 ** (noise_db / 20), int(total * SR))
    for start, end, level in spec:
        t = np.arange(int(start * SR), int(end * SR))
        x[t] += math.sqrt(2) * 10 ** (level / 20) * np.sin(2 * np.pi * 440 * t / SR)
    return x.astype(np.float32)


def test_energies_fed_in_blocks_equal_whole_signal():
    x = bursts([(0.3, 0.9, -20)], 2.0)
    meter = EnergyMeter(SR)
    rng = np.random.default_rng(1)
    parts, i = [], 0
    while i < x.size:
        n = int(rng.integers(1, 700))
        parts.append(meter.feed(x[i:i + n]))
        i += n
    np.testing.assert_allclose(np.concatenate(parts), frame_energies(x, SR), rtol=1e-6)
    assert frame_energies(x, SR).size == (x.size - 200) // 80 + 1  # 25 ms frames every 10 ms


def test_each_sound_gets_a_segment_with_its_edges():
    spec = [(1.0, 2.5, -20), (4.0, 4.6, -25), (7.2, 9.0, -18)]
    segs = find_segments(frame_energies(bursts(spec, 10.0), SR), max_merge_gap=0.0, pad=0.2)
    assert len(segs) == 3
    for seg, (start, end, _) in zip(segs, spec):
        assert start - 0.25 <= seg.start <= start - 0.1
        assert end + 0.1 <= seg.end <= end + 0.25


def test_short_gaps_are_bridged_and_close_sounds_merged():
    spec = [(1.0, 1.5, -20), (1.7, 2.2, -20), (2.9, 3.3, -20), (6.0, 6.5, -20)]  # 0.2 s gap: not a pause
    energies = frame_energies(bursts(spec, 8.0), SR)
    assert len(find_segments(energies, max_merge_gap=0.0)) == 3
    merged = find_segments(energies, max_merge_gap=1.0)  # 0.7 s pause merged, 2.7 s not
    assert [(round(s.start), round(s.end)) for s in merged] == [(1, 4), (6, 7)]


def test_threshold_adapts_to_the_noise_floor_of_each_stretch():
    # Quiet part: tones at -45 dBFS over a -70 dB floor; loud part: tones at -10 over a -35 floor.
    # Any single threshold either misses the quiet tones or hears the loud part's noise as sound.
    quiet = [(t, t + 0.8, -45) for t in (2, 6, 10, 14, 18, 22, 26)]
    x = np.concatenate([bursts(quiet, 30.0, noise_db=-70), bursts([(t - 30, t - 29.2, -10) for t in (32, 36, 40, 44, 48, 52, 56)],
                                                               30.0, noise_db=-35, seed=1)])
    segs = find_segments(frame_energies(x, SR), max_merge_gap=0.0)
    tones = [(t, t + 0.8) for t in (2, 6, 10, 14, 18, 22, 26, 32, 36, 40, 44, 48, 52, 56)]
    holding = [[i for i, (a, b) in enumerate(tones) if s.start <= a and b <= s.end] for s in segs]
    assert sorted(i for h in holding for i in h) == list(range(14))  # every tone, whole, once
    assert all(len(h) <= 1 for h in holding)  # never two in one segment: the loud noise is no sound
    assert sum(s.duration for s in segs) < 0.5 * 60  # most of the silence is skipped


def test_a_sound_longer_than_the_limit_is_cut_at_its_quietest_frame():
    x = bursts([(0.5, 45.0, -20)], 46.0)
    dip = slice(int(13.0 * SR), int(13.1 * SR))
    x[dip] *= 0.05  # 100 ms dip: too short for a pause, the quietest place to cut
    segs = find_segments(frame_energies(x, SR), max_segment=20.0)
    assert all(s.duration <= 20.0 + 1e-6 for s in segs)
    assert 12.95 <= segs[0].end <= 13.15
    assert all(a.end == b.start for a, b in zip(segs, segs[1:]))  # nothing between cuts is lost
    assert segs[0].start < 0.5 and segs[-1].end > 45.0


def test_silence_gives_no_segments_and_sound_without_pauses_one_per_limit():
    assert find_segments(frame_energies(np.zeros(5 * SR, np.float32), SR)) == []
    assert find_segments(frame_energies(bursts([], 5.0, noise_db=-90), SR)) == []
    loud = bursts([(0, 50, -15)], 50.0, noise_db=-20)  # no contrast, but loud: all of it is sound
    segs = find_segments(frame_energies(loud, SR), max_segment=20.0)
    assert segs[0].start == 0 and segs[-1].end >= 49.9 and all(s.duration <= 20.0 for s in segs)
    assert all(a.end == b.start for a, b in zip(segs, segs[1:]))


def test_last_cut_prefers_the_last_pause_then_the_quietest_frame():
    x = bursts([(0.2, 3.0, -20), (3.6, 8.0, -20), (8.5, 10.0, -20)], 10.0)
    e = frame_energies(x, SR)
    assert abs(last_cut(e, 0) * 0.01 - 8.25) < 0.1  # the middle of the last pause
    assert abs(last_cut(e, 0, min_pause=0.55) * 0.01 - 3.3) < 0.1  # only the 0.6 s pause is long enough
    solid = frame_energies(bursts([(0, 10, -20)], 10.0), SR)
    solid[600:605] -= 30
    assert 598 <= last_cut(solid, 300) <= 606


def test_fixed_windows_cover_the_file_and_keep_ranges_tile_it():
    wins = fixed_windows(95.0, 20.0, 2.0)
    assert wins[0].start == 0 and wins[-1].end == 95.0
    assert all(w.duration <= 20.0 for w in wins)
    assert all(a.end - b.start == pytest.approx(2.0) for a, b in zip(wins[:-1], wins[1:-1]))
    assert wins[0].keep_start == -math.inf and wins[-1].keep_end == math.inf
    assert all(a.keep_end == b.keep_start for a, b in zip(wins, wins[1:]))
    assert all(w.start < w.keep_start for w in wins[1:]) and all(w.keep_end < w.end for w in wins[:-1])
    assert fixed_windows(12.0, 20.0, 2.0) == [Segment(0.0, 12.0)]
    with pytest.raises(ValueError, match="overlap"):
        fixed_windows(60.0, 10.0, 6.0)


SHIFT = 0.02
TOK = Tokenizer(list("abcdefghij "))


def hyp_for(words, seg: Segment, truncate_edges: bool = True) -> Hypothesis:
    """What a recognizer would say about ``seg``: whole words inside, words cut by an edge half-heard."""
    tokens, spans = [], []
    for text, start, end in words:
        if end <= seg.start or start >= seg.end:
            continue
        cut = start < seg.start or end > seg.end
        if cut and not truncate_edges:
            continue
        lo, hi = max(start, seg.start), min(end, seg.end)
        chars = text[: max(1, len(text) // 2)] if cut else text
        step = (hi - lo) / len(chars)
        if tokens:
            tokens.append(TOK.word_separator)
            spans.append((spans[-1][1], spans[-1][1]))
        for k, ch in enumerate(chars):
            a = int((lo + k * step - seg.start) / SHIFT)
            tokens.append(TOK.encode(ch)[0])
            spans.append((a, max(a, int((lo + (k + 1) * step - seg.start) / SHIFT) - 1)))
    return Hypothesis(tokens=tokens, score=-1.0, spans=spans, token_confidences=[0.9] * len(tokens))


@pytest.mark.parametrize("seed", range(5))
def test_window_overlaps_lose_and_double_no_word(seed):
    rng = np.random.default_rng(seed)
    words, t = [], 0.3
    while t < 118:
        n = int(rng.integers(1, 8))
        dur = rng.uniform(0.2, 0.8)
        words.append(("".join(rng.choice(list("abcdefghij"), n)), round(t, 2), round(t + dur, 2)))
        t += dur + rng.uniform(0.0, 0.4)
    wins = fixed_windows(120.0, 10.0, 2.0)
    out = stitch([(w, hyp_for(words, w)) for w in wins], TOK, SHIFT)
    assert out.text == " ".join(w for w, _, _ in words)
    assert [w["word"] for w in out.words] == [w for w, _, _ in words]
    for got, (_, start, end) in zip(out.words, words):
        assert abs(got["start"] - start) <= SHIFT + 1e-6 and abs(got["end"] - end) <= SHIFT + 1e-6
    assert len(out.spans) == len(out.tokens)


def test_stitching_shifts_times_and_spans_into_the_file():
    words = [("abc", 0.5, 1.0), ("de", 1.5, 1.9), ("fig", 61.0, 61.6), ("ha", 75.2, 75.5)]
    segs = [Segment(0.2, 2.3), Segment(60.8, 62.0), Segment(75.0, 76.0)]
    pieces = [(s, hyp_for(words, s)) for s in segs]
    out = stitch(pieces, TOK, SHIFT)
    assert out.text == "abc de fig ha"
    assert [w["start"] for w in out.words] == pytest.approx([s for _, s, _ in words], abs=SHIFT)
    assert [w["end"] for w in out.words] == pytest.approx([e for _, _, e in words], abs=SHIFT)
    first_f = [out.spans[i][0] for i, t in enumerate(out.tokens) if t == TOK.encode("f")[0]][0]
    assert first_f * SHIFT == pytest.approx(61.0, abs=SHIFT)
    assert out.score == pytest.approx(-3.0)
    assert stitch([], TOK, SHIFT).text == "" and stitch([], TOK, SHIFT).words == []


def test_label_and_separator_free_vocabularies_stitch_per_unit():
    labels = Tokenizer(["walk", "run", "sit"], kind="label")
    seg_a, seg_b = Segment(0.0, 10.0, keep_end=9.0), Segment(8.0, 18.0, keep_start=9.0)
    h_a = Hypothesis(tokens=[1, 2], score=0.0, spans=[(100, 110), (420, 440)])  # run at 8.4-8.82 s
    h_b = Hypothesis(tokens=[2, 3], score=0.0, spans=[(20, 40), (300, 320)])  # the same run, then sit
    out = stitch([(seg_a, h_a), (seg_b, h_b)], labels, SHIFT)
    assert out.text == "walk run sit"
    assert [w["start"] for w in out.words] == pytest.approx([2.0, 8.4, 14.0])
    keys = Tokenizer(list("0123456789"))  # DTMF-like: no space; tokens are the units, segments the words
    h1 = Hypothesis(tokens=[2, 3], score=0.0, spans=[(10, 12), (30, 33)])
    h2 = Hypothesis(tokens=[4], score=0.0, spans=[(5, 9)])
    out = stitch([(Segment(0, 5), h1), (Segment(30, 35), h2)], keys, SHIFT)
    assert out.text == "123" and [w["word"] for w in out.words] == ["12", "3"]
    assert out.words[1]["start"] == pytest.approx(30.1)


def test_stitching_keeps_subword_words_whole():
    from crnn.tokenizer import build_tokenizer

    texts = ["hello world", "good day", "hello good world", "a good day to you"] * 5
    tok = build_tokenizer(texts, "char", "basic", "bpe", 30)

    def piece(text, frame0=2):
        ids = tok.encode(text)
        spans = [(frame0 + 2 * k, frame0 + 2 * k) for k in range(len(ids))]
        return Hypothesis(tokens=ids, score=-1.0, spans=spans, token_confidences=[0.9] * len(ids), confidence=0.9)

    out = stitch([(Segment(0.0, 10.0), piece("hello world")), (Segment(10.0, 20.0), piece("good day"))], tok, 0.04)
    assert out.text == "hello world good day"
    assert [w["word"] for w in out.words] == ["hello", "world", "good", "day"]
    assert out.words[2]["start"] >= 10.0 > out.words[1]["end"]  # the second segment's words in file time

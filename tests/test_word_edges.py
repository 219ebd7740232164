"""Word edges from the sound around CTC spikes (``crnn.inference.word_edges``): on signals whose words'
true edges are known, under a step in the background level, beside digital silence, in connected speech,
and through ``crnn.align`` on the real DTMF model."""
import numpy as np
import pytest
import soundfile as sf

import crnn
from crnn.inference.word_edges import energy_edges
from test_trained_model import CKPT, plain_dialer

SR = 16000


def burst(seconds: float, level_db: float, rng) -> np.ndarray:
    return (10 ** (level_db / 20) * rng.standard_normal(int(seconds * SR))).astype(np.float32)


def spiked(words: list[tuple[float, float]], at: float = 0.4) -> list[dict]:
    """What a CTC path gives: a 40 ms spike ``at`` of the way into each word."""
    out = []
    for k, (a, b) in enumerate(words):
        t = a + at * (b - a)
        out.append({"word": f"w{k}", "start": round(t, 3), "end": round(t + 0.04, 3), "score": -0.1})
    return out


def test_words_with_pauses_get_their_sounds_edges():
    rng = np.random.default_rng(0)
    truth = [(0.5, 0.9), (1.3, 1.9), (2.4, 2.7)]
    parts, t = [], 0.0
    for a, b in truth:
        parts += [burst(a - t, -50, rng), burst(b - a, -10, rng)]
        t = b
    parts.append(burst(0.6, -50, rng))
    audio = np.concatenate(parts)
    words = energy_edges(spiked(truth), audio, SR)
    assert [w["word"] for w in words] == ["w0", "w1", "w2"] and all(w["score"] == -0.1 for w in words)
    for w, (a, b) in zip(words, truth):
        assert abs(w["start"] - a) <= 0.04 and abs(w["end"] - b) <= 0.04, (w, a, b)
    # the spikes' own edges are far off: the move is what brings them near
    assert max(abs(w["end"] - b) for w, (_, b) in zip(spiked(truth), truth)) > 0.15


def test_a_louder_background_on_one_side_and_digital_silence_move_nothing_wrong():
    rng = np.random.default_rng(1)
    # word, digital silence (a dip far below the room tone), room tone 20 dB up, word
    audio = np.concatenate([burst(0.3, -45, rng), burst(0.5, -5, rng), np.zeros(int(0.05 * SR), np.float32),
                            burst(0.7, -35, rng), burst(0.5, -5, rng), burst(0.3, -35, rng)])
    truth = [(0.3, 0.8), (1.55, 2.05)]
    words = energy_edges(spiked(truth), audio, SR)
    for w, (a, b) in zip(words, truth):
        assert abs(w["start"] - a) <= 0.04 and abs(w["end"] - b) <= 0.04, (w, a, b)


def test_connected_words_share_the_quietest_moment_between_them():
    rng = np.random.default_rng(2)
    audio = np.concatenate([burst(0.3, -50, rng), burst(0.4, -10, rng), burst(0.06, -20, rng),
                            burst(0.4, -10, rng), burst(0.3, -50, rng)])
    truth = [(0.3, 0.7), (0.76, 1.16)]
    words = energy_edges(spiked(truth, at=0.5), audio, SR)
    assert words[0]["end"] == words[1]["start"]
    assert 0.68 <= words[0]["end"] <= 0.78
    assert abs(words[0]["start"] - 0.3) <= 0.03 and abs(words[1]["end"] - 1.16) <= 0.03


def test_offset_and_empty_or_flat_input():
    rng = np.random.default_rng(3)
    audio = np.concatenate([burst(0.3, -50, rng), burst(0.4, -10, rng), burst(0.3, -50, rng)])
    (w,) = energy_edges(spiked([(10.3, 10.7)]), audio, SR, offset=10.0)
    assert abs(w["start"] - 10.3) <= 0.03 and abs(w["end"] - 10.7) <= 0.03
    assert energy_edges([], audio, SR) == []
    flat = spiked([(0.3, 0.7)])
    assert energy_edges(flat, np.zeros(SR, np.float32), SR) == flat  # nothing sounds: the spikes stay


def test_align_gives_word_edges_of_the_tones(tmp_path):
    wav = tmp_path / "dial.wav"
    sf.write(wav, plain_dialer("2580", 8000), 8000)  # tones at 0.2 + 0.15 k s, 90 ms each
    model = crnn.load_model(CKPT)
    (energy,) = crnn.align(str(wav), "25 80", model=model)
    (ctc,) = crnn.align(str(wav), "25 80", model=model, edges="ctc")
    assert [t["start"] for t in energy.tokens] == [t["start"] for t in ctc.tokens]  # tokens keep their spikes
    true = [(0.2, 0.35 + 0.09), (0.5, 0.65 + 0.09)]
    for w, (a, b) in zip(energy.words, true):
        assert abs(w["start"] - a) <= 0.04 and abs(w["end"] - b) <= 0.04, energy.words
    with pytest.raises(ValueError, match="edges must be one of"):
        crnn.align(str(wav), "25 80", model=model, edges="sound")

"""A long recording (utterances joined with pauses and noise) decodes like its utterances one by one.

Uses the committed DTMF checkpoint (tests/data/dtmf_tiny.pt, a bidirectional tiny model) offline, and
an untrained forward-only model for ``--stream``, whose segmented output must match the unsegmented one.
"""
import difflib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import crnn
from cli_helpers import run_cli
from crnn.data.builtin.dtmf import DTMFSpec, generate_utterance

CKPT = Path(__file__).parent / "data" / "dtmf_tiny.pt"
SR = 16000  # the model reads 8 kHz: the long file is resampled piece by piece


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """A ~90 s FLAC of 24 utterances with 1.2-3 s pauses and a noise floor; their spans and samples."""
    rng = np.random.default_rng(7)
    spec = DTMFSpec(snr_db=(15.0, 30.0), level_db=(-20.0, -6.0))
    parts, spans, utts, t = [], [], [], 0
    for _ in range(24):
        wave, _, _ = generate_utterance(rng, spec, sample_rate=SR)
        wave = wave.astype(np.float32)
        parts.append(wave)
        spans.append((t / SR, (t + wave.size) / SR))
        utts.append(wave)
        gap = int(rng.uniform(1.2, 3.0) * SR)
        parts.append(np.zeros(gap, np.float32))
        t += wave.size + gap
    x = np.concatenate(parts)
    x += rng.normal(0, 10 ** (-55 / 20), x.size).astype(np.float32)  # a noise floor under everything
    path = tmp_path_factory.mktemp("long") / "meeting.flac"
    sf.write(path, x, SR)
    return path, spans, utts


@pytest.fixture(scope="module")
def model():
    return crnn.load_model(CKPT)


@pytest.fixture(scope="module")
def one_by_one(model, recording):
    _, _, utts = recording
    return [r.text for r in crnn.transcribe([(u, SR) for u in utts], model=model)]


def edits(a: str, b: str) -> int:
    ops = difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    return sum(max(i2 - i1, j2 - j1) for tag, i1, i2, j1, j2 in ops if tag != "equal")


def keys_in_their_utterance(result, one_by_one, spans, shift) -> float:
    """Fraction of the stitched keys matched to a one-by-one key whose start lies in that key's utterance."""
    ref = "".join(one_by_one)
    owner = [i for i, text in enumerate(one_by_one) for _ in text]
    hyp = result.best
    starts = [a * shift for a, _ in hyp.spans]
    inside = matched = 0
    for block in difflib.SequenceMatcher(None, ref, hyp.text, autojunk=False).get_matching_blocks():
        for k in range(block.size):
            lo, hi = spans[owner[block.a + k]]
            matched += 1
            inside += lo <= starts[block.b + k] <= hi
    return inside / matched


@pytest.mark.slow
def test_cli_auto_segments_match_the_utterances(recording, one_by_one):
    path, spans, _ = recording
    r = run_cli("decode", "--checkpoint", CKPT, path, "--json")
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)
    assert edits("".join(one_by_one), row["text"]) <= 3
    # Pauses are longer than the merge gap: one word (a DTMF key string) per utterance, inside it.
    assert len(row["words"]) == len(spans)
    for word, (lo, hi), text in zip(row["words"], spans, one_by_one):
        assert lo <= word["start"] < word["end"] <= hi + 0.05
    assert sum(w["word"] == t for w, t in zip(row["words"], one_by_one)) >= len(spans) - 2


@pytest.mark.slow
@pytest.mark.parametrize("segment", ["auto", 12.0, 25.0])
def test_every_key_starts_inside_its_utterance(model, recording, one_by_one, segment):
    path, spans, _ = recording
    (result,) = crnn.transcribe(path, model=model, segment=segment)
    assert result.segments > 3
    assert result.duration == pytest.approx(sf.info(path).duration, abs=1e-3)
    assert edits("".join(one_by_one), result.text) <= 6
    assert keys_in_their_utterance(result, one_by_one, spans, model.frame_shift) == 1.0


@pytest.mark.slow
def test_streaming_long_input_in_segments(tmp_path, recording):
    from test_streaming import forward_only_model
    from crnn.checkpoint import save_checkpoint

    path, spans, _ = recording
    ckpt = save_checkpoint(tmp_path / "uni.pt", forward_only_model())
    seg = run_cli("decode", "--checkpoint", ckpt, path, "--stream", "--json", "--segment", "20")
    whole = run_cli("decode", "--checkpoint", ckpt, path, "--stream", "--json", "--segment", "none")
    assert seg.returncode == 0 and whole.returncode == 0, seg.stderr + whole.stderr
    seg, whole = json.loads(seg.stdout), json.loads(whole.stdout)
    words = seg["words"]  # one per segment for a vocabulary without spaces
    assert len(words) >= 5 and len(whole["words"]) == 1
    assert all(a["end"] <= b["start"] for a, b in zip(words, words[1:]))
    assert words[-1]["end"] <= spans[-1][1] + 3.0
    # The same posteriors, cut in segments: only a key repeated across a cut can come out twice.
    assert edits(whole["text"], seg["text"]) <= len(words)

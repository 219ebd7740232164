"""Aligning a long recording's transcript a line at a time (``crnn.align_long``, ``crnn align --transcript``):
the free-ends Viterbi on hand-built log-probabilities, windowed inference, the real DTMF model placing
every line of a two-minute recording and flagging the lines whose text is not in the audio, the errors, the
writers (a real subtitle parser) and the command line."""
import json
import math

import numpy as np
import pysubs2
import pytest
import soundfile as sf
import torch

import crnn
from cli_helpers import run_cli
from crnn.inference.align import AlignmentError
from crnn.inference.align_long import align_free_ends, align_segments, read_transcript_lines, windowed_log_probs
from crnn.inference.align_outputs import format_kaldi_segments, parse_long_formats, write_long_alignment
from test_trained_model import CKPT, plain_dialer

SR = 8000
KEYS = "0123456789ABCD*#"


def peaked(path: list[int], vocab: int, p: float = 0.9) -> torch.Tensor:
    lp = torch.full((len(path), vocab), (1 - p) / (vocab - 1))
    lp[torch.arange(len(path)), torch.tensor(path)] = p
    return lp.log()


def test_free_ends_skip_what_comes_before_and_after_the_tokens():
    # the input says 3 3 . 1 2 . 3 3: the transcript "1 2" lies in the middle
    lp = peaked([3, 3, 0, 1, 2, 0, 3, 3], 4)
    path, scores = align_free_ends(lp, [1, 2])
    assert path.tolist() == [-1, -1, -1, 1, 2, -1, -1, -1]
    assert scores[3].item() == pytest.approx(math.log(0.9), abs=1e-5) and scores[0].item() == 0.0
    path, _ = align_free_ends(peaked([1, 2], 4), [1, 2])  # the tokens may take the very first and last frames
    assert path.tolist() == [1, 2]


@pytest.fixture(scope="module")
def dtmf():
    return crnn.load_model(CKPT).eval()


def long_dialling(rng: np.random.Generator, n_lines: int):
    """n_lines key strings dialled one after another, pauses of 0.5-2 s between; per line its keys and the
    onset of each tone (seconds)."""
    pieces, lines, onsets, t = [], [], [], 0.0
    for _ in range(n_lines):
        keys = "".join(rng.choice(list(KEYS), size=int(rng.integers(3, 8))))
        gap = float(rng.uniform(0.5, 2.0))
        pieces.append(np.zeros(int(gap * SR), np.float32))
        t += gap
        wav = plain_dialer(keys, SR)  # tones at 0.2 + 0.15 k s within it
        lines.append(keys)
        onsets.append([t + 0.2 + 0.15 * k for k in range(len(keys))])
        pieces.append(wav)
        t += len(wav) / SR
    return np.concatenate(pieces), lines, onsets


def test_windowed_log_probs_join_into_the_whole_recordings_frames(dtmf):
    audio, _, _ = long_dialling(np.random.default_rng(0), 6)
    from crnn.data.audio.blocks import ArraySource

    source = ArraySource(audio, SR)
    whole = windowed_log_probs(dtmf, source, window=1000.0)  # one window: the plain forward pass
    with torch.inference_mode():
        lp, lens = dtmf(torch.from_numpy(audio)[None], torch.tensor([len(audio)]))
    assert torch.allclose(whole, lp[0, : int(lens[0])].float(), atol=1e-5)
    pieces = windowed_log_probs(dtmf, source, window=3.0, context=1.0)
    assert abs(pieces.size(0) - whole.size(0)) <= 1
    same = (pieces[: whole.size(0)].argmax(-1) == whole[: pieces.size(0)].argmax(-1)).float().mean()
    assert same > 0.98  # the cuts, with a second of context either side, change next to nothing


def test_a_long_recording_gets_every_line_and_flags_the_wrong_ones(dtmf, tmp_path, one_thread):
    rng = np.random.default_rng(1)
    audio, lines, onsets = long_dialling(rng, 48)
    assert len(audio) / SR > 90
    wrong = {7, 23}
    transcript = list(lines)
    for k in wrong:  # the transcript claims other keys than the audio's
        transcript[k] = "".join(KEYS[(KEYS.index(c) + 5) % 16] for c in lines[k])
    path = tmp_path / "long.wav"
    sf.write(path, audio, SR)
    # small windows and blocks: many cuts and many blocks in two minutes
    result = align_segments(dtmf, str(path), transcript, window=10.0, context=1.0, block_tokens=20)
    assert len(result.segments) == 48 and result.duration == pytest.approx(len(audio) / SR, abs=1e-3)
    assert {s.index for s in result.segments if s.flagged} == wrong
    for seg, line, starts in zip(result.segments, lines, onsets):
        if seg.index in wrong:
            assert seg.score < -3.0
            continue
        assert seg.text == line and seg.score > -1.0
        assert abs(seg.start - starts[0]) <= 0.04, (seg.index, seg.start, starts[0])
        assert starts[-1] < seg.end <= starts[-1] + 0.09 + 0.04  # the last tone, up to its end
    by_api = crnn.align_long((audio, SR), transcript, model=dtmf)  # in memory, default windows
    assert [s.flagged for s in by_api.segments] == [s.flagged for s in result.segments]
    assert max(abs(a.start - b.start) for a, b in zip(by_api.segments, result.segments)) <= 0.02


def test_errors_name_the_recording_and_the_line(dtmf, tmp_path):
    audio, lines, _ = long_dialling(np.random.default_rng(2), 3)
    path = tmp_path / "rec.wav"
    sf.write(path, audio, SR)
    with pytest.raises(AlignmentError, match=r"rec.wav: transcript line 2: cannot align the word .*'x'"):
        align_segments(dtmf, str(path), [lines[0], "12x4", lines[2]])
    with pytest.raises(AlignmentError, match=r"rec.wav: the transcript needs \d+ output frames, the recording gives"):
        align_segments(dtmf, str(path), lines * 40)
    with pytest.raises(AlignmentError, match="no lines"):
        align_segments(dtmf, str(path), [])
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    with pytest.raises(AlignmentError, match=r"empty.txt: the transcript has no non-blank line"):
        read_transcript_lines(empty)
    with pytest.raises(AlignmentError, match=r"nope.txt: no such transcript file"):
        read_transcript_lines(tmp_path / "nope.txt")
    video = crnn.create_model("video_tiny", vocab_size=3)
    video.tokenizer = crnn.tokenizer.Tokenizer(["a", "b"], kind="label")
    with pytest.raises(AlignmentError, match="needs an audio model"):
        align_segments(video, str(path), ["a b"])


def test_writers_segments_subtitles_and_ctm(dtmf, tmp_path):
    audio, lines, onsets = long_dialling(np.random.default_rng(3), 5)
    path = tmp_path / "talk.wav"
    sf.write(path, audio, SR)
    result = crnn.align_long(str(path), lines, model=dtmf)
    rows = format_kaldi_segments(result).splitlines()
    assert [r.split()[:2] for r in rows] == [[f"talk-{k:04d}", "talk"] for k in range(5)]
    assert all(float(r.split()[2]) < float(r.split()[3]) for r in rows)
    written = write_long_alignment(result, tmp_path / "out", parse_long_formats("json,segments,srt,vtt,ctm"))
    assert sorted(p.name for p in written) == ["talk.ctm", "talk.json", "talk.segments", "talk.srt", "talk.vtt"]
    subs = pysubs2.load(str(tmp_path / "out" / "talk.srt"))
    assert [e.plaintext for e in subs] == lines
    assert all(abs(e.start / 1000 - o[0]) <= 0.04 for e, o in zip(subs, onsets))
    assert len(pysubs2.load(str(tmp_path / "out" / "talk.vtt"))) == 5
    row = json.loads((tmp_path / "out" / "talk.json").read_text())
    assert row["flagged"] == 0 and [s["text"] for s in row["segments"]] == lines
    with pytest.raises(ValueError, match="frames"):
        parse_long_formats("json,frames")


@pytest.mark.slow
def test_cli_aligns_a_transcript_file_and_warns_of_flagged_lines(tmp_path):
    audio, lines, _ = long_dialling(np.random.default_rng(4), 12)
    wav = tmp_path / "calls.wav"
    sf.write(wav, audio, SR)
    lines[4] = "".join(KEYS[(KEYS.index(c) + 5) % 16] for c in lines[4])
    text = tmp_path / "calls.txt"
    text.write_text("\n".join(lines[:6]) + "\n\n" + "\n".join(lines[6:]) + "\n")  # a blank line is skipped
    r = run_cli("align", "-c", CKPT, "--transcript", text, wav)
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)
    assert len(row["segments"]) == 12 and [s["index"] for s in row["segments"] if s["flagged"]] == [4]
    assert "warning:" in r.stderr and "1 of 12 transcript line(s)" in r.stderr and "line(s) 5" in r.stderr
    out = tmp_path / "out"
    r = run_cli("align", "-c", CKPT, "--transcript", text, wav, "--output-dir", out, "--format", "segments,srt")
    assert r.returncode == 0 and r.stdout == "", r.stderr
    assert len((out / "calls.segments").read_text().splitlines()) == 12
    assert len(pysubs2.load(str(out / "calls.srt"))) == 12
    r = run_cli("align", "-c", CKPT, "--transcript", text, wav, wav)
    assert r.returncode == 2 and "one recording" in r.stderr
    r = run_cli("align", "-c", CKPT, "--transcript", tmp_path / "missing.txt", wav)
    assert r.returncode == 1 and r.stderr.startswith("error: ") and "missing.txt" in r.stderr
    assert "Traceback" not in r.stderr

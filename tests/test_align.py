"""Forced alignment of known transcripts (``crnn.align``, ``crnn align``): exact spans on hand-built
log-probabilities for each modality's units, errors that name the input, the output writers, the real DTMF
model's tone onsets, and the command line."""
import json
import math

import numpy as np
import pysubs2
import pytest
import soundfile as sf
import torch

import crnn
from cli_helpers import run_cli, tiny_model
from crnn.inference.align import (BACKGROUND, AlignmentError, align_files, align_log_probs, encode_transcript,
                                  in_input_frames, in_seconds)
from crnn.inference.align_outputs import (alignment_paths, format_alignment_ctm, parse_align_formats,
                                          render_alignment, write_alignment)
from crnn.tokenizer import Tokenizer
from test_trained_model import CKPT, plain_dialer

P = 0.9  # probability of the intended label on each frame of a hand-built path


def peaked(path: list[int], vocab: int, p: float = P) -> torch.Tensor:
    """(T, V) log-probs whose best path is ``path``: ``p`` on its label, the rest shared evenly."""
    lp = torch.full((len(path), vocab), (1 - p) / (vocab - 1))
    lp[torch.arange(len(path)), torch.tensor(path)] = p
    return lp.log()


CHARS = Tokenizer(list("abc "))  # a=1 b=2 c=3 space=4


def test_hand_built_path_gives_exact_token_and_word_spans():
    # frames: blank a a b blank ' ' c c blank
    lp = peaked([0, 1, 1, 2, 0, 4, 3, 3, 0], len(CHARS))
    fa = align_log_probs(lp, "ab c", CHARS)
    assert fa.text == "ab c" and fa.tokens == [1, 2, 4, 3]
    assert fa.token_spans == [(1, 2), (3, 3), (5, 5), (6, 7)]
    assert fa.words == ["ab", "c"] and fa.word_tokens == [[0, 1], [3]]
    assert fa.word_spans == [(1, 3), (6, 7)]
    assert fa.path.tolist() == [0, 1, 1, 2, 0, 4, 3, 3, 0]
    assert all(s == pytest.approx(math.log(P), abs=1e-5) for s in fa.token_scores + fa.word_scores)
    assert fa.score == pytest.approx(math.log(P), abs=1e-5)
    words, tokens = in_seconds(fa, CHARS, frame_shift=0.04, duration=0.35)
    assert words == [{"word": "ab", "start": 0.04, "end": 0.16, "score": round(math.log(P), 4)},
                     {"word": "c", "start": 0.24, "end": 0.32, "score": round(math.log(P), 4)}]
    assert [(t["token"], t["start"], t["end"]) for t in tokens] == [("a", 0.04, 0.12), ("b", 0.12, 0.16),
                                                                     ("c", 0.24, 0.32)]  # no space token


def test_repeated_tokens_get_separate_spans_and_a_bad_word_a_low_score():
    lp = peaked([1, 0, 1, 0, 2, 0], len(CHARS))
    lp[4] = peaked([3], len(CHARS))[0]  # the input says "c" where the transcript says "b"
    fa = align_log_probs(lp, "aab", CHARS)
    assert fa.token_spans == [(0, 0), (2, 2), (4, 4)]
    assert fa.token_scores[2] < math.log(0.1) < fa.token_scores[0]


def test_video_labels_in_input_frames_midpoint_onset_and_emitted():
    labels = Tokenizer(["walk", "run", "jump"], kind="label")
    # 6 output frames at stride 2 over 13 input frames (the 13th belongs to the last output frame)
    fa = align_log_probs(peaked([1, 0, 0, 2, 2, 0], len(labels)), "walk run", labels)
    assert fa.words == ["walk", "run"] and fa.word_spans == [(0, 0), (3, 4)]
    segs, frames = in_input_frames(fa, stride=2, n_input=13, fps=10.0, spans="midpoint")
    assert [(s["word"], s["start_frame"], s["end_frame"], s["start"], s["end"]) for s in segs] == [
        ("walk", 0, 4, 0.0, 0.4), ("run", 4, 13, 0.4, 1.3)]  # boundary halfway between the spans
    assert frames == ["walk"] * 4 + ["run"] * 9
    segs, frames = in_input_frames(fa, stride=2, n_input=13, fps=10.0)  # the default: from each onset
    assert [(s["word"], s["start_frame"], s["end_frame"], s["start"], s["end"]) for s in segs] == [
        ("walk", 0, 6, 0.0, 0.6), ("run", 6, 13, 0.6, 1.3)] and frames[5:7] == ["walk", "run"]
    segs, frames = in_input_frames(fa, stride=2, n_input=13, fps=10.0, spans="emitted")
    assert [(s["start_frame"], s["end_frame"]) for s in segs] == [(0, 2), (6, 10)]
    assert frames == ["walk"] * 2 + [BACKGROUND] * 4 + ["run"] * 4 + [BACKGROUND] * 3


def test_transcripts_the_model_cannot_write_are_errors_naming_the_input():
    lp = peaked([0, 1, 0, 2, 0, 3], len(CHARS))
    with pytest.raises(AlignmentError, match=r"clip7\.wav: cannot align the word 'abd': symbol 'd'"):
        align_log_probs(lp, "abd", CHARS, name="clip7.wav")
    with pytest.raises(AlignmentError, match=r"clip7\.wav: the transcript needs 7 output frames .*gives 6"):
        align_log_probs(lp, "abcabca", CHARS, name="clip7.wav")
    with pytest.raises(AlignmentError, match=r"needs 4 output frames \(3 tokens \+ 1 blank"):
        align_log_probs(lp[:3], "aab", CHARS, name="x")
    with pytest.raises(AlignmentError, match="x: the transcript is empty"):
        align_log_probs(lp, "   ", CHARS, name="x")
    english = Tokenizer(list("abcdefghijklmnopqrstuvwxyz' "), text_norm="english")
    with pytest.raises(AlignmentError, match=r"x: the model cannot write '2'.*'english'"):
        encode_transcript(english, "Call 2 me", "x")  # the policy would silently drop the digit
    assert encode_transcript(english, "Don't STOP, go!", "x")[0] == "don't stop go"  # punctuation is fine
    nan = lp.clone()
    nan[2, 1] = float("nan")
    with pytest.raises(AlignmentError, match="not finite"):
        align_log_probs(nan, "abc", CHARS, name="x")


def test_words_without_a_space_symbol_come_from_the_transcript():
    keys = Tokenizer(list("0123456789"))  # DTMF-like: no space in the vocabulary
    norm, ids, words = encode_transcript(keys, "555  12", "x")
    assert norm == "555 12" and ids == [6, 6, 6, 2, 3]
    assert words == [("555", [0, 1, 2]), ("12", [3, 4])]


# -- whole files through a model whose outputs are set by hand -----------------------------------------
def fake_outputs(model, path: list[int]) -> None:
    """Make ``model(x, lengths)`` return the peaked log-probs of ``path`` whatever the input."""
    lp = peaked(path, len(model.tokenizer))

    def forward(x, lengths):
        return lp[None].clone(), torch.tensor([len(path)])

    model.forward = forward


def test_audio_file_and_array_in_seconds(tmp_path):
    model = tiny_model(len(CHARS))
    model.tokenizer = CHARS
    fake_outputs(model, [0, 1, 0, 0, 2, 3, 0, 0, 0, 0])  # frame shift: 10 ms hop x 2 subsampling
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(int(0.41 * 16000), dtype=np.float32), 16000)
    (r,) = crnn.align(str(wav), "abc", model=model)
    assert model.frame_shift == pytest.approx(0.02)
    row = r.to_json()
    assert row["path"] == str(wav) and row["text"] == "abc" and row["duration"] == 0.41
    assert [(t["token"], t["start"], t["end"]) for t in row["tokens"]] == [("a", 0.02, 0.04), ("b", 0.08, 0.1),
                                                                           ("c", 0.1, 0.12)]
    assert [(w["word"], w["start"], w["end"]) for w in row["words"]] == [("abc", 0.02, 0.12)]
    (same,) = crnn.align((np.zeros(int(0.41 * 8000)), 8000), "abc", model=model)  # resampled to 16 kHz
    assert same.words == r.words and same.path == "<array 0>"
    (part,) = align_files(model, [{"path": str(wav), "text": "abc", "offset": 0.1, "duration": 0.25}])
    assert part.duration == 0.25 and [(w["start"], w["end"]) for w in part.words] == [(0.12, 0.22)]  # file time


def test_errors_raise_or_are_kept_per_input(tmp_path):
    model = tiny_model(len(CHARS))
    model.tokenizer = CHARS
    fake_outputs(model, [0, 1, 0, 2, 0])
    for name in ("good", "oov", "long"):
        sf.write(tmp_path / f"{name}.wav", np.zeros(3200, dtype=np.float32), 16000)
    paths = [str(tmp_path / f"{n}.wav") for n in ("good", "oov", "long")]
    with pytest.raises(AlignmentError, match=r"oov\.wav: cannot align the word 'xyz'"):
        crnn.align(paths, ["ab", "xyz", "abcabc"], model=model)
    good, oov, long = crnn.align(paths, ["ab", "xyz", "abcabc"], model=model, errors="keep")
    assert good.error is None and good.words[0]["word"] == "ab"
    assert oov.to_json() == {"path": paths[1], "error": oov.error} and "'x'" in oov.error
    assert long.error.startswith(f"{paths[2]}: the transcript needs 6 output frames")
    missing = crnn.align(str(tmp_path / "nope.wav"), "ab", model=model, errors="keep")[0]
    assert "nope.wav" in missing.error
    too_long = crnn.align(paths[0], "ab", model=model, max_seconds=0.1, errors="keep")[0]
    assert "longer than the alignment limit of 0.1 s" in too_long.error
    with pytest.raises(ValueError, match="2 input"):
        crnn.align(paths[:2], ["ab"], model=model)


def test_features_file_gives_segments_and_frame_labels(tmp_path):
    labels = Tokenizer(["walk", "run", "jump"], kind="label")
    model = crnn.create_model("tiny", vocab_size=len(labels), frontend="features",
                              frontend_args=dict(input_dim=4, temporal_pools=1, fps=10.0), hidden_size=8,
                              num_layers=1)
    model.tokenizer = labels
    np.save(tmp_path / "clip.npy", np.random.default_rng(0).standard_normal((13, 4)).astype(np.float32))
    fake_outputs(model, [1, 0, 0, 2, 2, 0])
    (r,) = crnn.align(str(tmp_path / "clip.npy"), ["walk", "run"], model=model)
    row = r.to_json()
    assert row["fps"] == 10.0 and row["duration"] == 1.3
    assert row["segments"] == [  # "run" from its onset (output frame 3 = input frame 6) on
        {"label": "walk", "start_frame": 0, "end_frame": 6, "start": 0.0, "end": 0.6, "score": round(math.log(P), 4)},
        {"label": "run", "start_frame": 6, "end_frame": 13, "start": 0.6, "end": 1.3, "score": round(math.log(P), 4)}]
    assert r.frame_labels == ["walk"] * 6 + ["run"] * 7
    (e,) = crnn.align(str(tmp_path / "clip.npy"), "walk run", model=model, spans="emitted")
    assert e.frame_labels.count(BACKGROUND) == 7
    frames = render_alignment(e, "frames").splitlines()
    assert len(frames) == 13 and frames[0] == "walk" and frames[-1] == BACKGROUND


def test_text_line_characters_in_pixel_columns(tmp_path):
    from PIL import Image

    model = crnn.create_model("image_tiny", vocab_size=len(CHARS))
    model.tokenizer = CHARS
    Image.new("L", (160, 64), 255).save(tmp_path / "line.png")  # twice the model's height: 8 px a frame
    fake_outputs(model, [0, 1, 1, 0, 4, 2, 0, 0, 3, 0])
    (r,) = crnn.align(str(tmp_path / "line.png"), "a bc", model=model)
    scale = model.pixels_per_frame * 64 / 32
    row = r.to_json()
    assert row["unit"] == "px" and scale == 8
    assert [(c["char"], c["start"], c["end"]) for c in row["chars"]] == [("a", 8, 24), ("b", 40, 48), ("c", 64, 72)]
    assert [(w["word"], w["start"], w["end"]) for w in row["words"]] == [("a", 8, 24), ("bc", 40, 72)]


# -- writers ----------------------------------------------------------------------------------------
def aligned_audio():
    from crnn.inference.align import Alignment

    words = [{"word": "hello", "start": 0.5, "end": 1.25, "score": -0.1},
             {"word": "world", "start": 1.5, "end": 2.0, "score": -2.0},
             {"word": "again", "start": 4.0, "end": 4.5, "score": -0.5}]
    return Alignment("talk/call.wav", "audio", "hello world again", words, [], -0.4, 5.0)


def test_ctm_and_subtitles_of_the_known_transcript(tmp_path):
    r = aligned_audio()
    assert format_alignment_ctm(r).splitlines() == [
        "call 1 0.500 0.750 hello 0.905", "call 1 1.500 0.500 world 0.135", "call 1 4.000 0.500 again 0.607"]
    paths = alignment_paths([r.path], tmp_path, ["json", "ctm", "srt", "vtt"])[r.path]
    write_alignment(r, paths)
    assert json.loads(paths["json"].read_text()) == r.to_json()
    for fmt in ("srt", "vtt"):
        subs = pysubs2.load(str(paths[fmt]), encoding="utf-8")
        assert subs.format == fmt
        assert [(e.plaintext, e.start, e.end) for e in subs] == [("hello world", 500, 2000), ("again", 4000, 4500)]


def test_formats_fit_the_modality(tmp_path):
    assert parse_align_formats("json, ctm,json", "audio") == ["json", "ctm"]
    assert parse_align_formats("frames,json", "video") == ["frames", "json"]
    with pytest.raises(ValueError, match="frames: not written for a model that reads audio"):
        parse_align_formats("json,frames", "audio")
    with pytest.raises(ValueError, match="srt"):
        parse_align_formats("srt", "image")
    with pytest.raises(ValueError, match="docx"):
        parse_align_formats("docx", "audio")
    assert alignment_paths(["x/clip.mp4"], tmp_path, ["frames"])["x/clip.mp4"]["frames"] == tmp_path / "clip.frames.txt"


# -- the real DTMF model ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dtmf():
    return crnn.load_model(CKPT)


def test_dtmf_model_finds_each_tone_and_flags_a_wrong_key(dtmf, tmp_path, one_thread):
    wav = tmp_path / "dial.wav"
    sf.write(wav, plain_dialer("14750", 8000), 8000)  # tones at 0.2 + 0.15 k s, 90 ms each
    (r,) = crnn.align(str(wav), "147 50", model=dtmf)
    assert [w["word"] for w in r.words] == ["147", "50"]
    onsets = [t["start"] for t in r.tokens]
    assert np.abs(np.array(onsets) - (0.2 + 0.15 * np.arange(5))).max() <= 0.03, onsets
    assert all(t["end"] <= 0.2 + 0.15 * k + 0.09 + 0.02 for k, t in enumerate(r.tokens))
    assert min(t["score"] for t in r.tokens) > -0.5
    (wrong,) = crnn.align(str(wav), "14A50", model=dtmf)  # 7 dialled, A claimed
    assert [t["token"] for t in wrong.tokens if t["score"] < -5] == ["A"]


@pytest.mark.slow
def test_cli_prints_json_writes_files_and_names_bad_inputs(tmp_path):
    wav = tmp_path / "call.wav"
    sf.write(wav, plain_dialer("2580", 8000), 8000)
    r = run_cli("align", "-c", CKPT, "--text", "2580", wav)
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)
    assert row["text"] == "2580" and [t["token"] for t in row["tokens"]] == list("2580")
    out = tmp_path / "out"
    r = run_cli("align", "--model", CKPT, "--text", "25 80", wav, "--output-dir", out, "--format", "json,ctm,srt,vtt")
    assert r.returncode == 0 and r.stdout == "", r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["call.ctm", "call.json", "call.srt", "call.vtt"]
    assert [line.split()[4] for line in (out / "call.ctm").read_text().splitlines()] == ["25", "80"]
    subs = pysubs2.load(str(out / "call.srt"))
    assert [e.plaintext for e in subs] == ["25 80"] and 150 <= subs[0].start <= 230

    manifest = tmp_path / "rows.jsonl"
    manifest.write_text(json.dumps({"path": "call.wav", "text": "2580"}) + "\n"
                        + json.dumps({"path": "call.wav", "text": "25x0"}) + "\n")
    r = run_cli("align", "-c", CKPT, "--manifest", manifest)
    assert r.returncode == 1
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert "error" not in rows[0] and rows[1] == {"path": str(wav), "error": rows[1]["error"]}
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {wav}: cannot align the word '25x0': symbol 'x' is not in the vocabulary"]
    assert "Traceback" not in r.stderr

    r = run_cli("align", "-c", CKPT, "--text", "2580", wav, "--output-dir", out, "--format", "frames")
    assert r.returncode == 2 and r.stderr.startswith("error: frames: not written for a model that reads audio")
    r = run_cli("align", "-c", CKPT, wav)
    assert r.returncode == 2 and "--text" in r.stderr

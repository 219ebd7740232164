"""Output files: txt / json / ctm / SRT / WebVTT, subtitles checked by loading them with pysubs2."""
import json
from pathlib import Path

import numpy as np
import pysubs2
import pytest
import soundfile as sf

from cli_helpers import run_cli
from crnn.decoding.hypothesis import Hypothesis
from crnn.inference import FileResult
from crnn.outputs import (
    format_srt, format_vtt, output_paths, parse_formats, render, subtitle_cues, write_outputs,
)

CKPT = Path(__file__).parent / "data" / "dtmf_tiny.pt"


def w(word, start, end, conf=0.9):
    return {"word": word, "start": start, "end": end, "confidence": conf}


WORDS = [w("the", 0.5, 0.7), w("cat", 0.75, 1.1), w("sat", 1.15, 1.4),  # then a 1.6 s pause
         w("on", 3.0, 3.2), w("a", 3.25, 3.3), w("mat", 3.35, 3.8), w("today", 3.85, 4.4)]


def result(words=WORDS, path="talk/call.wav"):
    hyp = Hypothesis(tokens=[1], score=-2.5, confidence=0.8)
    hyp.text, hyp.words = " ".join(x["word"] for x in words), words
    return FileResult(path, [hyp], duration=5.0)


def test_cues_end_at_pauses_and_at_length_limits():
    assert [c.text for c in subtitle_cues(WORDS)] == ["the cat sat", "on a mat today"]
    assert [c.text for c in subtitle_cues(WORDS, max_chars=10)] == ["the cat", "sat", "on a mat", "today"]
    assert [c.text for c in subtitle_cues(WORDS, max_seconds=0.8)] == ["the cat", "sat", "on a mat", "today"]
    cues = subtitle_cues(WORDS)
    assert (cues[0].start, cues[0].end, cues[1].start, cues[1].end) == (0.5, 1.4, 3.0, 4.4)
    long_word = [w("x" * 60, 1.0, 2.0)]
    assert [c.text for c in subtitle_cues(long_word)] == ["x" * 60]  # too long alone: still shown
    assert subtitle_cues([]) == []


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_subtitle_files_load_in_pysubs2(tmp_path, fmt):
    words = WORDS + [w("später", 3725.5, 3726.25)]  # past an hour, non-ASCII
    paths = output_paths(["talk/call.wav"], tmp_path, [fmt])["talk/call.wav"]
    write_outputs(result(words), paths)
    assert paths[fmt] == tmp_path / f"call.{fmt}"
    subs = pysubs2.load(str(paths[fmt]), encoding="utf-8")
    assert subs.format == fmt
    assert [e.plaintext for e in subs] == ["the cat sat", "on a mat today", "später"]
    assert [(e.start, e.end) for e in subs] == [(500, 1400), (3000, 4400), (3725500, 3726250)]


def test_timestamps_and_headers():
    cues = subtitle_cues([w("hi", 3725.5, 3726.0)])
    assert format_srt(cues) == "1\n01:02:05,500 --> 01:02:06,000\nhi\n\n"
    assert format_vtt(cues) == "WEBVTT\n\n01:02:05.500 --> 01:02:06.000\nhi\n\n"
    assert format_vtt([]) == "WEBVTT\n\n" and format_srt([]) == ""


def test_txt_json_and_ctm():
    r = result()
    assert render(r, "txt") == "the cat sat on a mat today\n"
    row = json.loads(render(r, "json"))
    assert row == {"path": "talk/call.wav", "text": "the cat sat on a mat today", "score": -2.5, "confidence": 0.8,
                   "words": WORDS}
    ctm = render(r, "ctm").splitlines()
    assert ctm[0] == "call 1 0.500 0.200 the 0.900" and len(ctm) == len(WORDS)
    empty = result([])
    assert render(empty, "txt") == "\n" and render(empty, "ctm") == "" and render(empty, "srt") == ""


def test_format_lists_and_name_clashes(tmp_path):
    assert parse_formats("srt, vtt,srt,TXT") == ["srt", "vtt", "txt"]
    with pytest.raises(ValueError, match="docx"):
        parse_formats("txt,docx")
    with pytest.raises(ValueError, match="both write"):
        output_paths(["a/call.wav", "b/call.flac"], tmp_path, ["txt"])
    assert output_paths(["a/x.wav", "a/y.wav"], tmp_path, ["txt", "json"])["a/y.wav"] == {
        "txt": tmp_path / "y.txt", "json": tmp_path / "y.json"}


def dial(keys: str, sr: int = 8000) -> np.ndarray:
    from test_trained_model import plain_dialer

    return plain_dialer(keys, sr)


@pytest.mark.slow
def test_cli_writes_every_format_per_input(tmp_path):
    names = {"call": "147", "other": "2580#"}
    for name, keys in names.items():
        sf.write(tmp_path / f"{name}.wav", dial(keys), 8000)
    out = tmp_path / "out"
    inputs = [tmp_path / f"{n}.wav" for n in names]
    r = run_cli("decode", "--checkpoint", CKPT, *inputs, "--output-dir", out, "--format", "txt,json,srt,vtt,ctm")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and "\r" not in r.stderr  # no bar when stderr is not a terminal
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.{f}" for n in names for f in
                                                           ("txt", "json", "srt", "vtt", "ctm"))
    stdout_rows = run_cli("decode", "--checkpoint", CKPT, *inputs, "--json").stdout.splitlines()
    for (name, keys), line in zip(names.items(), stdout_rows):
        assert (out / f"{name}.txt").read_text() == keys + "\n"
        assert json.loads((out / f"{name}.json").read_text()) == json.loads(line)
        subs = pysubs2.load(str(out / f"{name}.srt"))
        assert "".join(e.plaintext for e in subs) == keys and subs[0].start >= 150
        assert [e.plaintext for e in pysubs2.load(str(out / f"{name}.vtt"))] == [e.plaintext for e in subs]
        assert (out / f"{name}.ctm").read_text().startswith(f"{name} 1 ")


@pytest.mark.slow
def test_cli_output_errors(tmp_path):
    sf.write(tmp_path / "good.wav", dial("5"), 8000)
    (tmp_path / "bad.wav").write_bytes(b"RIFF\x00\x00")
    r = run_cli("decode", "--checkpoint", CKPT, tmp_path / "good.wav", tmp_path / "bad.wav", "--output-dir",
                tmp_path / "o", "--format", "srt", "--quiet")
    assert r.returncode == 1
    assert f"error: {tmp_path / 'bad.wav'}: " in r.stderr and "Traceback" not in r.stderr
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["good.srt"]
    r = run_cli("decode", "--checkpoint", CKPT, tmp_path / "good.wav", "--format", "srt")
    assert r.returncode == 2 and "error: --format needs --output-dir" in r.stderr
    r = run_cli("decode", "--checkpoint", CKPT, tmp_path / "good.wav", "--output-dir", tmp_path, "--format", "pdf")
    assert r.returncode == 2 and "error: unknown output format(s) pdf" in r.stderr
    # an output folder that cannot be written (here a file stands in its way): that input fails, named
    (tmp_path / "taken").write_text("a file, not a folder")
    r = run_cli("decode", "--checkpoint", CKPT, tmp_path / "good.wav", "--output-dir", tmp_path / "taken" / "o",
                "--format", "srt,txt")
    assert r.returncode == 1 and "cannot write output" in r.stderr and "Traceback" not in r.stderr, r.stderr

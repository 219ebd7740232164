"""``crnn eval`` in a subprocess on a tiny saved model: printed CER/WER match the per-utterance rows."""
from __future__ import annotations

import pytest
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

import crnn
from cli_helpers import tiny_model
from crnn.data.audio import read_audio
from crnn.data.audio.dataset import speech_tokenizer
from crnn.data.manifest import write_manifest
from crnn.decoding import ctc_greedy
from crnn.metrics import error_rates

ROOT = Path(__file__).resolve().parents[1]
TEXTS = ["one two", "three", "four five six", "seven", "eight nine"]


def make_checkpoint(path: Path) -> None:
    tok = speech_tokenizer(TEXTS)
    model = tiny_model(len(tok), n_mels=16)
    with torch.no_grad():
        model.head.bias[0] = -3.0  # fewer blanks: an untrained model then emits varied, non-empty text
    torch.save({"format": "crnn-checkpoint", "config": model.cfg.to_dict(), "tokenizer": tok.to_dict(),
                "state_dict": model.state_dict()}, path)


@pytest.mark.slow
def test_eval_cli_matches_metrics(tmp_path):
    make_checkpoint(tmp_path / "model.pt")
    rng = np.random.default_rng(0)
    rows = []
    for i, text in enumerate(TEXTS):
        # 16 kHz files for an 8 kHz model: eval must resample like training does
        sf.write(tmp_path / f"u{i}.wav", (0.3 * rng.standard_normal(4000 + 2000 * i)).astype(np.float32), 16000)
        rows.append({"path": str(tmp_path / f"u{i}.wav"), "text": text.upper() + "!"})  # normalised for scoring
    (tmp_path / "broken.wav").write_bytes(b"RIFF")
    rows.append({"path": str(tmp_path / "broken.wav"), "text": "one"})
    write_manifest(tmp_path / "test.jsonl", rows)

    r = subprocess.run(
        [sys.executable, "-m", "crnn", "eval", "--checkpoint", str(tmp_path / "model.pt"), str(tmp_path / "test.jsonl"),
         "-o", str(tmp_path / "hyps.jsonl"), "--batch-size", "2", "--device", "cpu"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert r.returncode == 1, r.stderr  # one file failed: reported, counted, and the exit status says so
    assert "broken.wav" in r.stderr and "1 skipped" in r.stdout

    out = [json.loads(line) for line in (tmp_path / "hyps.jsonl").read_text().splitlines()]
    assert sorted(o["reference"] for o in out) == sorted(TEXTS)
    assert any(o["hypothesis"] for o in out)
    rates = error_rates([o["reference"] for o in out], [o["hypothesis"] for o in out])
    m = re.search(r"CER ([\d.]+)% \((\d+)/(\d+) chars\)\s+WER ([\d.]+)% \((\d+)/(\d+) words\)", r.stdout)
    assert m, r.stdout
    assert int(m.group(2)) / int(m.group(3)) == rates["cer"]
    assert int(m.group(5)) / int(m.group(6)) == rates["wer"]
    assert float(m.group(1)) == round(100 * rates["cer"], 2)

    # The hypotheses are the model's greedy output on each file read at the model's rate.
    model = crnn.load_model(tmp_path / "model.pt")
    for o in out:
        x = read_audio(o["path"], 8000)[None]
        with torch.no_grad():
            lp, lens = model(x, torch.tensor([x.shape[1]]))
        assert " ".join(model.tokenizer.decode(ctc_greedy(lp, lens)[0].tokens).split()) == o["hypothesis"]


@pytest.mark.slow
def test_eval_cli_scores_an_utterance_too_fast_for_the_model(tmp_path):
    make_checkpoint(tmp_path / "model.pt")
    rng = np.random.default_rng(1)
    fast = "one two three four five six seven eight nine"  # in 0.1 s: more characters than output frames
    for name, seconds in (("ok.wav", 1.0), ("fast.wav", 0.1)):
        sf.write(tmp_path / name, (0.3 * rng.standard_normal(int(8000 * seconds))).astype(np.float32), 8000)
    write_manifest(tmp_path / "test.jsonl", [{"path": str(tmp_path / "ok.wav"), "text": "one", "duration": 1.0},
                                             {"path": str(tmp_path / "fast.wav"), "text": fast, "duration": 0.1}])
    r = subprocess.run([sys.executable, "-m", "crnn", "eval", "--checkpoint", str(tmp_path / "model.pt"),
                        str(tmp_path / "test.jsonl"), "-o", str(tmp_path / "hyps.jsonl"), "--device", "cpu"],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr  # nothing unusable: both items scored
    assert "note: " in r.stderr and "fast.wav: label needs" in r.stderr
    assert "2 utterances" in r.stdout and "1 too fast for the model's frame rate (scored)" in r.stdout
    out = {Path(o["path"]).name: o for o in map(json.loads, (tmp_path / "hyps.jsonl").read_text().splitlines())}
    assert out["fast.wav"]["reference"] == fast
    assert out["fast.wav"]["errors"]["char_errors"] > 0  # its errors are in the totals, not hidden


@pytest.mark.slow
def test_eval_cli_missing_checkpoint(tmp_path):
    write_manifest(tmp_path / "m.jsonl", [{"path": "a.wav", "text": "a"}])
    r = subprocess.run([sys.executable, "-m", "crnn", "eval", "--checkpoint", str(tmp_path / "nope.pt"),
                        str(tmp_path / "m.jsonl")], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "nope.pt" in r.stderr


def _eval(tmp_path, *argv) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "crnn", "eval", *map(str, argv), "--device", "cpu"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)


@pytest.mark.slow
def test_eval_scores_an_exported_onnx_file_and_the_int8_copy_like_the_checkpoint(tmp_path):
    pytest.importorskip("onnxruntime")
    from crnn.export import export_onnx

    make_checkpoint(tmp_path / "model.pt")
    export_onnx(crnn.load_model(tmp_path / "model.pt"), tmp_path / "model.onnx")
    rng = np.random.default_rng(3)
    rows = []
    for i, text in enumerate(TEXTS):
        sf.write(tmp_path / f"u{i}.wav", (0.3 * rng.standard_normal(6000 + 1000 * i)).astype(np.float32), 8000)
        rows.append({"path": str(tmp_path / f"u{i}.wav"), "text": text})
    write_manifest(tmp_path / "test.jsonl", rows)
    scored = {}
    for name, argv in (("pt", ["-c", "model.pt"]), ("onnx", ["-c", "model.onnx"]), ("int8", ["--model", "model.pt", "--int8"])):
        r = _eval(tmp_path, *argv, "test.jsonl", "-o", f"{name}.jsonl")
        assert r.returncode == 0, r.stderr
        scored[name] = [json.loads(line)["hypothesis"] for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
    assert scored["onnx"] == scored["pt"]  # the same graph, run by onnxruntime
    assert len(scored["int8"]) == len(TEXTS)  # int8 scored every item (its text may differ slightly)
    r = _eval(tmp_path, "-c", "model.onnx", "--int8", "test.jsonl")
    assert r.returncode == 1 and "error:" in r.stderr and "quantize int8" in r.stderr


@pytest.mark.slow
def test_eval_old_out_spelling_still_works_with_a_deprecation_note(tmp_path):
    make_checkpoint(tmp_path / "model.pt")
    sf.write(tmp_path / "u.wav", np.zeros(8000, np.float32), 8000)
    write_manifest(tmp_path / "test.jsonl", [{"path": str(tmp_path / "u.wav"), "text": "one"}])
    r = _eval(tmp_path, "--checkpoint", "model.pt", "test.jsonl", "--out", "hyps.jsonl")
    assert r.returncode == 0, r.stderr
    assert "--out is deprecated" in r.stderr and "-o/--output" in r.stderr
    assert json.loads((tmp_path / "hyps.jsonl").read_text().splitlines()[0])["reference"] == "one"

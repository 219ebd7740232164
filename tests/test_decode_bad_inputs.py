"""``crnn decode`` over a batch mixing good and bad files: each bad file fails alone, with its reason."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from cli_helpers import tiny_model
from crnn.checkpoint import save_checkpoint
from crnn.data.audio.dataset import speech_tokenizer

pytestmark = pytest.mark.slow


def tiny_checkpoint(path, nan_weights: bool = False):
    tok = speech_tokenizer(["one two three"])
    model = tiny_model(len(tok), n_mels=16)
    model.tokenizer = tok
    with torch.no_grad():
        model.head.bias[0] = -3.0  # fewer blanks: an untrained model then emits some text
        if nan_weights:
            model.head.weight.fill_(float("nan"))
    save_checkpoint(path, model)
    return path


def decode(tmp_path, *args, env_extra=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", **(env_extra or {}))
    cmd = [os.fsencode(sys.executable), b"-m", b"crnn", b"decode", *map(os.fsencode, args), b"--device", b"cpu"]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, timeout=300)


def no_nan_json(line: bytes):
    def refuse(constant):
        raise ValueError(f"bare {constant} in JSON")
    return json.loads(line, parse_constant=refuse)


def test_each_bad_file_fails_alone(tmp_path):
    ck = tiny_checkpoint(tmp_path / "model.pt")
    rng = np.random.default_rng(0)
    noise = (0.3 * rng.standard_normal(8000)).astype(np.float32)
    sf.write(tmp_path / "good1.wav", noise, 8000)
    sf.write(tmp_path / "good2.flac", noise, 16000)
    odd = os.path.join(os.fsencode(tmp_path), b"good\xff.wav")  # not valid UTF-8
    sf.write(odd, noise, 8000)
    with_nan = noise.copy()
    with_nan[10] = np.nan
    sf.write(tmp_path / "nan.wav", with_nan, 8000, subtype="FLOAT")
    data = (tmp_path / "good1.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    sf.write(tmp_path / "hz1.wav", noise[:50], 1)
    sf.write(tmp_path / "long.flac", np.zeros(8000 * 60, np.float32), 8000)  # 1.9 MB decoded, tiny on disk
    os.mkfifo(tmp_path / "pipe.wav")
    names = [b"good1.wav", b"nan.wav", b"cut.wav", b"good2.flac", b"hz1.wav", b"pipe.wav", b"long.flac",
             os.path.basename(odd)]
    # whole-file decoding (--segment none): the 60 s file would need more than the budget at once
    r = decode(tmp_path, *names, "-c", ck, "--segment", "none", env_extra={"CRNN_MAX_DECODE_BYTES": "1000000"})
    assert r.returncode == 1, r.stderr
    err = r.stderr.decode("utf-8", "surrogateescape")
    assert "Traceback" not in err
    assert "error: nan.wav: non-finite samples" in err
    assert "error: cut.wav: truncated WAV" in err
    assert "error: hz1.wav: implausible sample rate 1 Hz" in err
    assert "error: pipe.wav: is a named pipe (FIFO)" in err
    assert "error: long.flac: decoding would need" in err and "budget" in err
    assert "5 of 8 file(s) failed" in err
    decoded = [line.split(b"\t")[0] for line in r.stdout.splitlines()]
    assert decoded == [b"good1.wav", b"good2.flac", b"good\xff.wav"]  # the name printed as its own bytes

    r = decode(tmp_path, *names, "-c", ck, "--json", "--segment", "none",
               env_extra={"CRNN_MAX_DECODE_BYTES": "1000000"})
    assert r.returncode == 1
    rows = [no_nan_json(line) for line in r.stdout.splitlines()]
    assert [os.fsencode(row["path"]) for row in rows] == names  # one row per input, in order
    assert [("error" in row) for row in rows] == [False, True, True, False, True, True, True, False]


def test_json_never_prints_nan(tmp_path):
    ck = tiny_checkpoint(tmp_path / "nan.pt", nan_weights=True)
    sf.write(tmp_path / "a.wav", (0.3 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32), 8000)
    r = decode(tmp_path, "a.wav", "-c", ck, "--json")
    assert r.returncode == 1 and b"Traceback" not in r.stderr
    row = no_nan_json(r.stdout.strip())
    assert "not finite" in row["error"]


def test_an_empty_folder_among_the_inputs_is_named_not_ignored(tmp_path):
    ck = tiny_checkpoint(tmp_path / "m.pt")
    sf.write(tmp_path / "good.wav", (0.1 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32), 8000)
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no audio here")
    r = decode(tmp_path, "good.wav", "empty", "notes", "-c", ck)
    err = r.stderr.decode()
    assert r.returncode == 1 and "Traceback" not in err
    assert "error: empty: no audio files in this folder (looked for" in err and "error: notes: no audio files" in err
    assert r.stdout.decode().startswith("good.wav\t")  # the good file was decoded all the same
    assert "2 of 3 file(s) failed" in err
    alone = decode(tmp_path, "empty", "-c", ck)
    assert alone.returncode == 1 and "error: empty: no audio files in this folder" in alone.stderr.decode()


def test_eval_of_a_manifest_with_nothing_to_score_names_the_manifest(tmp_path):
    ck = tiny_checkpoint(tmp_path / "m.pt")
    sf.write(tmp_path / "a.wav", np.zeros(8000, np.float32), 8000)
    (tmp_path / "m.jsonl").write_text("".join(json.dumps({"path": str(tmp_path / "a.wav"), "text": t}) + "\n"
                                              for t in ("", "  ")))
    r = subprocess.run([sys.executable, "-m", "crnn", "eval", "-c", str(ck), "m.jsonl", "--device", "cpu"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "Traceback" not in r.stderr and "BucketBatchSampler" not in r.stderr
    assert "error: m.jsonl: nothing to score: all 2 row(s) were left out (first: m.jsonl:1: empty transcript)" in r.stderr

"""The Free Spoken Digit Dataset layout and its recipe, on a tiny copy of the layout."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from crnn.data.audio import read_audio, write_audio
from crnn.data.corpora.fsdd import fsdd_speakers, read_fsdd
from crnn.data.manifest import ManifestError, detect_format, read_manifest

ROOT = Path(__file__).resolve().parents[1]
SPEAKERS = ("ann", "bob", "cid")


def fake_fsdd(root: Path, takes: int = 6) -> Path:
    """``root/recordings/{digit}_{speaker}_{index}.wav``: short tones standing in for spoken digits."""
    rec = root / "recordings"
    rec.mkdir(parents=True)
    t = np.arange(2400) / 8000
    for s, speaker in enumerate(SPEAKERS):
        for digit in range(10):
            for k in range(takes):
                wav = 0.3 * np.sin(2 * np.pi * (200 + 40 * digit + 7 * s) * t) * np.hanning(t.size)
                write_audio(rec / f"{digit}_{speaker}_{k}.wav", wav.astype(np.float32), 8000)
    return root


def test_layout_is_detected_and_read(tmp_path):
    root = fake_fsdd(tmp_path / "fsdd", takes=2)
    assert detect_format(root) == "fsdd" and detect_format(root / "recordings") == "fsdd"
    rows = read_manifest(root)
    assert len(rows) == 60 and fsdd_speakers(root) == list(SPEAKERS)
    row = next(r for r in rows if r["id"] == "7_bob_1")
    assert row["text"] == "seven" and row["speaker"] == "bob" and row["digit"] == 7 and row["index"] == 1
    assert len(read_fsdd(root, {"ann"})) == 20
    with pytest.raises(ManifestError, match="speaker"):
        read_fsdd(root, {"zed"})
    (root / "recordings" / "notes.wav").write_bytes(b"RIFF")
    with pytest.raises(ManifestError, match="notes.wav.*not an FSDD recording name"):
        read_fsdd(root)


def run_prepare(*args):
    return subprocess.run([sys.executable, str(ROOT / "datasets" / "fsdd" / "prepare.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_prepare_makes_speaker_disjoint_splits_strings_and_an_adaptation_set(tmp_path):
    root = fake_fsdd(tmp_path / "fsdd")
    out = tmp_path / "out"
    r = run_prepare("--root", root, "--out", out, "--dev-speakers", "bob", "--test-speakers", "cid",
                    "--strings-per-speaker", "5", "--eval-strings-per-speaker", "3", "--adapt-per-digit", "2")
    assert r.returncode == 0, r.stderr
    read = {name: read_manifest(out / f"{name}.jsonl") for name in
            ("train_digits", "train_strings", "dev_digits", "dev_strings", "test_digits", "test_strings", "adapt",
             "train")}
    speakers = {name: {row["speaker"] for row in rows} for name, rows in read.items()}
    assert speakers["train_digits"] == speakers["train_strings"] == {"ann"}
    assert speakers["dev_digits"] == {"bob"} and speakers["test_strings"] == speakers["adapt"] == {"cid"}
    assert len(read["train_strings"]) == 5 and len(read["dev_strings"]) == 3
    assert len(read["train"]) == len(read["train_digits"]) + len(read["train_strings"])
    # the adaptation takes (index < 2) never appear in a test file, as recordings or inside strings
    adapt = {row["id"] for row in read["adapt"]}
    assert len(adapt) == 20 and all(row["index"] < 2 for row in read["adapt"])
    assert not adapt & {row["id"] for row in read["test_digits"]}
    assert not adapt & {t for row in read["test_strings"] for t in row["takes"]}
    # a string says its takes' digits in order, from one speaker, and is a real file of about their length
    for row in read["train_strings"]:
        words = row["text"].split()
        assert 2 <= len(words) <= 7 and words == [("zero one two three four five six seven eight nine".split())
                                                   [int(t.split("_")[0])] for t in row["takes"]]
        assert all(t.split("_")[1] == row["speaker"] for t in row["takes"])
        wav = read_audio(row["path"], 8000)
        assert abs(wav.numel() / 8000 - row["duration"]) < 1e-2 and wav.numel() > 2400 * len(words)
        assert np.isfinite(wav.numpy()).all() and wav.abs().max() <= 1.0
        # the known joints: each digit's span, in order, inside the string, as long as its recording
        spans = [(w["start"], w["end"]) for w in row["words"]]
        assert [w["word"] for w in row["words"]] == words
        assert all(a < b <= c for (a, b), (c, _) in zip(spans, spans[1:] + [(row["duration"], None)]))
        take_len = [read_audio(str(root / "recordings" / f"{t}.wav"), 8000).numel() / 8000 for t in row["takes"]]
        assert np.allclose([b - a for a, b in spans], take_len, atol=1e-3)
    assert (out / "words.txt").read_text().split() == "zero one two three four five six seven eight nine".split()
    assert json.loads((out / "splits.json").read_text())["train"]["speakers"] == ["ann"]


def test_prepare_refuses_unknown_or_overlapping_speakers(tmp_path):
    root = fake_fsdd(tmp_path / "fsdd", takes=1)
    r = run_prepare("--root", root, "--out", tmp_path / "o", "--dev-speakers", "zed")
    assert r.returncode == 1 and "zed" in r.stderr and "ann, bob, cid" in r.stderr
    r = run_prepare("--root", root, "--out", tmp_path / "o", "--dev-speakers", "bob", "--test-speakers", "bob")
    assert r.returncode == 2 and "both" in r.stderr
    r = run_prepare("--root", tmp_path / "nothing", "--out", tmp_path / "o", "--dev-speakers", "bob")
    assert r.returncode == 1 and r.stderr.startswith("error:") and "Traceback" not in r.stderr

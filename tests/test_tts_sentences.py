"""The large-vocabulary read-sentence recipe (skipped without espeak-ng and WordNet's data): unseen sentences
and unseen voices in dev/test, an LM text and lexicon from the training split only."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from crnn.data.audio import read_audio
from crnn.data.manifest import read_manifest
from crnn.tokenizer import normalize_text

ROOT = Path(__file__).resolve().parents[1]
WORDNET = Path("/usr/share/wordnet/data.noun")


@pytest.mark.espeak
@pytest.mark.slow
def test_prepare_sentences_holds_out_sentences_and_voices(tmp_path):
    if shutil.which("espeak-ng") is None or not WORDNET.is_file():
        pytest.skip("espeak-ng or WordNet not installed (apt-get install espeak-ng wordnet-base)")
    out = Path(os.path.relpath(tmp_path / "sentences", ROOT))  # relative, as the README runs it
    r = subprocess.run([sys.executable, "datasets/tts_sentences/prepare.py", "--out", str(out), "--num-train", "30",
                        "--num-dev", "5", "--num-test", "8", "--seed", "2", "--jobs", "2"],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    out = ROOT / out
    splits = {s: read_manifest(out / f"{s}.jsonl") for s in ("train", "dev", "test")}
    assert {s: len(rows) for s, rows in splits.items()} == {"train": 30, "dev": 5, "test": 8}
    for rows in splits.values():
        for row in rows:
            assert row["text"] == normalize_text(row["sentence"], "english")
            assert 3 <= len(row["text"].split()) <= 14
            wav = read_audio(row["path"], 16000)
            assert row["duration"] == pytest.approx(wav.numel() / 16000, abs=1e-3)
            # Speech about as long as its text (espeak-ng reads 140-220 words a minute), not silence.
            assert 0.15 * len(row["text"].split()) < row["duration"] < 1.0 * len(row["text"].split()) + 1.0
            assert torch.isfinite(wav).all() and float(wav.abs().max()) > 0.05
    texts = {s: {row["text"] for row in rows} for s, rows in splits.items()}
    lm_text = set((out / "lm_train.txt").read_text().splitlines())
    assert texts["train"] <= lm_text
    for held in ("dev", "test"):  # unseen sentences: neither trained on nor in the LM's text
        assert not texts[held] & texts["train"] and not texts[held] & lm_text
    assert len(lm_text) > 30_000  # thousands of sentences beyond the synthesised ones
    vocab = (out / "words.txt").read_text().split()
    assert vocab == sorted(set(vocab)) and len(vocab) > 20_000
    assert set(vocab) == {w for line in lm_text for w in line.split()}
    # Unseen voices: neither the espeak-ng voice nor the variant of a dev/test row is heard in training.
    voices = {s: {row["voice"].split("+")[0] for row in rows} for s, rows in splits.items()}
    variants = {s: {row["voice"].split("+")[1] for row in rows} for s, rows in splits.items()}
    for held in ("dev", "test"):
        assert not voices["train"] & voices[held] and not variants["train"] & variants[held]
    speakers = json.loads((out / "speakers.json").read_text())
    assert not set(speakers["espeak"]["train"]) & set(speakers["espeak"]["test"])
    noisy = [row["snr"] is not None for rows in splits.values() for row in rows]
    assert 0 < sum(noisy) < len(noisy)

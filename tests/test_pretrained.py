"""Shipped models: each loads by name with no training and no download, reads real input as its card says,
and fine-tunes (`--init-from NAME`); the registry, its CLI and the slim checkpoint writer."""
from __future__ import annotations

import json
from pathlib import Path
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

import crnn
from crnn.pretrained import (INDEX, LM_INDEX, MODELS, list_language_models, list_shipped, resolve_checkpoint,
                             resolve_language_model, write_shipped)

SHIPPED = [m.name for m in list_shipped()]


def cli(*argv, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "crnn", *map(str, argv)], capture_output=True, text=True,
                          timeout=600, cwd=cwd)


def test_every_model_listed_is_shipped_small_with_a_card():
    listed = [row["name"] for row in json.loads(INDEX.read_text())]
    assert listed and listed == SHIPPED  # nothing listed is missing from the package
    for model in list_shipped():
        assert model.size_bytes < 12e6, model.name
        card = model.card.read_text()
        for section in ("## Data and licence", "## Recipe", "## Measured"):
            assert section in card, (model.name, section)
        assert model.licence in card and model.figures


@pytest.mark.parametrize("name", SHIPPED)
def test_each_shipped_model_loads_by_name_with_fp16_weights_read_as_fp32(name):
    model = crnn.load_model(name)
    assert model.tokenizer is not None and not model.training
    assert all(p.dtype == torch.float32 for p in model.parameters())
    stored = torch.load(MODELS.get(name).path, weights_only=True)
    params = dict(model.named_parameters())
    assert all(stored["state_dict"][k].dtype == torch.float16 for k in params)  # half the size on disk
    assert "optimizer" not in json.dumps(list(stored["train_state"]))


def test_dtmf_keys_reads_fresh_key_strings_through_the_cli(tmp_path):
    from crnn.data.builtin.dtmf import generate_utterance

    rng = np.random.default_rng(2024)
    refs = {}
    for i, sr in enumerate((8000, 16000, 44100)):
        wave, rate, keys = generate_utterance(rng, sample_rate=sr)
        sf.write(tmp_path / f"k{i}.wav", wave, rate)
        refs[f"k{i}.wav"] = keys
    r = cli("decode", "--model", "dtmf-keys", *refs, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    got = dict(line.split("\t") for line in r.stdout.splitlines())
    assert got == refs


def test_models_command_lists_and_shows_cards():
    r = listing = cli("models")
    assert r.returncode == 0
    for name in SHIPPED:
        assert re.search(rf"^{re.escape(name)}\s", r.stdout, flags=re.M)
    r = cli("models", SHIPPED[0])
    assert r.returncode == 0 and r.stdout.startswith(f"# {SHIPPED[0]}")
    for lm in list_language_models():
        assert re.search(rf"^{re.escape(lm.name)}\s", listing.stdout, flags=re.M)
        shown = cli("models", lm.name)
        assert shown.returncode == 0 and shown.stdout.startswith(f"# {lm.name}")
    r = cli("models", "no-such-model")
    assert r.returncode == 1 and "error: unknown shipped model 'no-such-model'" in r.stderr


def test_a_near_miss_name_is_answered_with_the_close_match(tmp_path):
    r = cli("decode", "--model", SHIPPED[0][:-1], "x.wav", cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"did you mean '{SHIPPED[0]}'" in r.stderr


def test_a_path_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dtmf-keys").write_bytes(b"not a checkpoint")
    assert resolve_checkpoint("dtmf-keys") == tmp_path.joinpath("dtmf-keys").relative_to(tmp_path)
    with pytest.raises(crnn.model.CheckpointError, match="dtmf-keys: not a loadable"):
        crnn.load_model("dtmf-keys")


def test_write_shipped_halves_the_weights_and_keeps_the_buffers(tmp_path):
    from crnn.data.builtin.dtmf import dtmf_tokenizer
    from crnn.model.checkpoint import save_checkpoint

    model = crnn.create_model("tiny", vocab_size=len(dtmf_tokenizer()), normalize="global")
    model.tokenizer = dtmf_tokenizer()
    with torch.no_grad():
        model.frontend.global_mean.fill_(0.123456789)
    save_checkpoint(tmp_path / "best.pt", model, {"epoch": 3, "optimizer": {"state": {}}})
    path = write_shipped(tmp_path / "best.pt", "mine", out_dir=tmp_path)
    stored = torch.load(path, weights_only=True)
    assert stored["state_dict"]["head.weight"].dtype == torch.float16
    assert stored["state_dict"]["frontend.global_mean"].dtype == torch.float32  # buffers exactly as trained
    assert "optimizer" not in stored["train_state"] and stored["train_state"]["epoch"] == 3
    slim = crnn.load_model(path)
    x = torch.randn(1, 8000) * 0.1
    with torch.no_grad():
        a, _ = model.eval()(x, torch.tensor([8000]))
        b, _ = slim(x, torch.tensor([8000]))
    assert torch.allclose(a, b, atol=2e-2)  # fp16 rounding of the weights only
    assert path.stat().st_size < 0.6 * (tmp_path / "best.pt").stat().st_size
    exact = write_shipped(tmp_path / "best.pt", "mine32", out_dir=tmp_path, precision="fp32")
    assert torch.load(exact, weights_only=True)["state_dict"]["head.weight"].dtype == torch.float32
    with torch.no_grad():
        c, _ = crnn.load_model(exact)(x, torch.tensor([8000]))
    assert torch.equal(a, c)  # fp32 keeps the trained weights bit for bit
    with pytest.raises(ValueError, match="fp16 or fp32"):
        write_shipped(tmp_path / "best.pt", "bad", out_dir=tmp_path, precision="int4")


@pytest.mark.slow
def test_fine_tuning_starts_from_a_shipped_model(tmp_path):
    r = cli("train", "--init-from", "dtmf-keys", "--task", "dtmf", "--out", tmp_path / "ft", "--epochs", "1",
            "--train-size", "32", "--val-size", "16", "--batch-size", "16", "--no-progress", "--threads", "1")
    assert r.returncode == 0, r.stderr
    assert "starting from the model in dtmf-keys" in r.stderr
    log = (tmp_path / "ft" / "log.csv").read_text().splitlines()
    val_cer = float(log[1].split(",")[4])
    assert val_cer < 0.05  # one short epoch from the shipped weights already reads keys (from scratch: 100 %)


def test_the_readme_lists_every_shipped_model():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Shipped models"):readme.index("## Pick your task")]
    listed = re.findall(r"^\| `([\w-]+)` \|", section, flags=re.M)
    assert listed == SHIPPED


FSDD = Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd" / "recordings"


@pytest.mark.skipif(not FSDD.is_dir(), reason="the Free Spoken Digit Dataset is not beside this checkout")
def test_digits_en_reads_a_speaker_it_never_heard(tmp_path):
    """40 recordings of the held-out test speaker (4 takes of each digit), 8 kHz files as they are."""
    words = "zero one two three four five six seven eight nine".split()
    files = [FSDD / f"{d}_lucas_{i}.wav" for d in range(10) for i in (10, 20, 30, 40)]
    results = crnn.transcribe(files, model=crnn.load_model("digits-en"))
    wrong = sum(r.text != words[int(Path(r.path).name[0])] for r in results)
    assert wrong / len(files) <= 0.15  # measured: 8.2 % of this speaker's 450 test recordings


def test_textlines_en_reads_lines_in_fonts_it_never_saw(tmp_path):
    """30 lines of the test split (held-out font families, held-out words) written as PNG files and decoded
    by name through the CLI, as a user would."""
    from crnn.data.builtin.textlines import TextLinesConfig, write_textlines
    from crnn.evaluation.metrics import error_rates

    try:  # the system's fonts, as the task finds them: on a bare machine, STIX General from matplotlib
        manifest = write_textlines(tmp_path / "lines", 30, seed=21, config=TextLinesConfig(split="test"))
    except FileNotFoundError:
        pytest.skip("no held-out font family installed (STIX General ships with matplotlib)")
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    r = cli("decode", "--model", "textlines-en", *[row["path"] for row in rows], cwd=manifest.parent)
    assert r.returncode == 0, r.stderr
    got = dict(line.split("\t", 1) for line in r.stdout.splitlines())
    rates = error_rates([row["text"] for row in rows], [got[row["path"]] for row in rows])
    assert rates["cer"] <= 0.2  # measured on 500 such lines: see the model card


def test_textlines_en_reads_clean_printed_lines_in_fonts_it_never_saw(tmp_path):
    """Born-digital lines (black on white, as a PDF renderer prints them) in the held-out families, written
    by `crnn synth --clean` and scored by `crnn eval --model textlines-en`: the ≤ 1 % unseen-fonts target."""
    out = tmp_path / "clean"
    r = cli("synth", "textlines", "--split", "test", "--clean", "--n", "40", "--seed", "31", "--out", out)
    if r.returncode != 0 and "font" in r.stderr:
        pytest.skip("no held-out font family installed (STIX General ships with matplotlib)")
    assert r.returncode == 0, r.stderr
    r = cli("eval", "--model", "textlines-en", out / "manifest.jsonl", "-q")
    assert r.returncode == 0, r.stderr
    assert "/40 lines)" in r.stdout, r.stdout
    assert float(re.search(r"CER ([0-9.]+)%", r.stdout).group(1)) <= 1.0  # measured 0.05 % on 300 such lines


def test_textlines_en_reads_real_scans_in_the_repository_and_the_shipped_lm_helps():
    """The 161 real scanned and photographed lines of datasets/scans whose characters the model can write
    (book pages, a printout, a brochure, a test sheet), scored through `crnn eval --model textlines-en` as a
    user would (real paper, real scanners, text nobody here wrote), greedy and then with beam search and the
    shipped character LM by name."""
    manifest = Path(__file__).resolve().parents[1] / "datasets" / "scans" / "writable.jsonl"
    cers = []
    for extra in ((), ("--beam", "8", "--lm", "chars-en")):
        r = cli("eval", "--model", "textlines-en", manifest, *extra)
        assert r.returncode == 0, r.stderr
        assert "/161 lines)" in r.stdout, r.stdout  # every line scored, none skipped
        cers.append(float(re.search(r"CER ([0-9.]+)%", r.stdout).group(1)))
    assert cers[0] <= 6.0, cers  # measured: see the model card's real-scans table
    assert cers[1] < cers[0], cers  # measured: see chars-en's card (113 -> 88 character errors)


def test_every_language_model_listed_is_shipped_small_with_a_card():
    listed = [row["name"] for row in json.loads(LM_INDEX.read_text())]
    assert listed and listed == [m.name for m in list_language_models()]
    for lm in list_language_models():
        assert 0 < lm.size_bytes < 5e6, lm.name
        card = lm.card.read_text()
        for section in ("## Data and licence", "## Recipe", "## Measured"):
            assert section in card, (lm.name, section)
        assert lm.licence in card and lm.figures and lm.unit in ("char", "word")


def test_transcribe_takes_shipped_names_for_the_model_and_the_lm():
    lines = sorted((Path(__file__).resolve().parents[1] / "datasets" / "scans" / "lines").glob("huckfinn_p22_02*.png"))
    by_name = crnn.transcribe(lines, model="textlines-en", beam_size=8, lm="chars-en")
    loaded = crnn.transcribe(lines, model=crnn.load_model("textlines-en"), beam_size=8,
                             lm=crnn.pretrained.LANGUAGE_MODELS.get("chars-en").path)
    greedy = crnn.transcribe(lines, model="textlines-en")
    assert [r.text for r in by_name] == [r.text for r in loaded]
    assert [r.text for r in by_name] != [r.text for r in greedy]  # the LM changes readings


def test_a_language_model_name_is_not_a_recognition_model_and_back(tmp_path):
    assert resolve_language_model("chars-en").name == "chars-en.arpa.gz"
    r = cli("decode", "--model", "chars-en", "x.png", cwd=tmp_path)
    assert r.returncode == 1 and "chars-en is a shipped language model: give it to --lm" in r.stderr
    r = cli("eval", "--model", "textlines-en", "--beam", "4", "--lm", "textlines-en",
            Path(__file__).resolve().parents[1] / "datasets" / "scans" / "writable.jsonl", cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "error: textlines-en: a shipped recognition model, not a language model" in r.stderr
    r = cli("eval", "--model", "textlines-en", "--beam", "4", "--lm", "chars-eng",
            Path(__file__).resolve().parents[1] / "datasets" / "scans" / "writable.jsonl", cwd=tmp_path)
    assert r.returncode == 1 and "did you mean 'chars-en'" in r.stderr


def test_actions_builtin_reads_fresh_clips_as_files(tmp_path):
    """20 fresh test clips of the built-in action task, written as mp4 files and scored by name through the
    CLI (`crnn eval --model actions-builtin`), as a user would."""
    from crnn.data.builtin.actions import write_action_clips

    manifest = write_action_clips(tmp_path / "clips", 20, seed=31, split="test")
    r = cli("eval", "--model", "actions-builtin", manifest)
    assert r.returncode == 0, r.stderr
    wer = float(re.search(r"WER ([0-9.]+)%", r.stdout).group(1))
    assert wer <= 20.0, r.stdout  # measured on 200 such clips: see the model card

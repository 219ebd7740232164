"""A small DTMF model trained by ``crnn train`` (committed in tests/data) reads real files of every kind.

The checkpoint came from the default task's recipe (tiny preset, 450 steps, validation CER 0.15 %).
"""
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import crnn
from cli_helpers import run_cli
from crnn.data.builtin.dtmf import DTMFSpec, generate_utterance
from crnn.inference import transcribe_files

CKPT = Path(__file__).parent / "data" / "dtmf_tiny.pt"

# Q.23 keypad, written out independently of the package's generator.
FREQS = {"1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "A": (697, 1633),
         "4": (770, 1209), "5": (770, 1336), "6": (770, 1477), "B": (770, 1633),
         "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "C": (852, 1633),
         "*": (941, 1209), "0": (941, 1336), "#": (941, 1477), "D": (941, 1633)}


def plain_dialer(keys: str, sr: int, tone_s=0.09, gap_s=0.06) -> np.ndarray:
    """A textbook dialer: fixed 90 ms tones, 60 ms pauses, equal levels, no noise."""
    t = np.arange(int(tone_s * sr)) / sr
    out = [np.zeros(int(0.2 * sr))]
    for k in keys:
        lo, hi = FREQS[k]
        out += [0.25 * (np.sin(2 * np.pi * lo * t) + np.sin(2 * np.pi * hi * t)), np.zeros(int(gap_s * sr))]
    out.append(np.zeros(int(0.2 * sr)))
    return np.concatenate(out).astype(np.float32)


@pytest.fixture(scope="module")
def model():
    return crnn.load_model(CKPT)


def decode(model, paths):
    return {r.path: (r.hypotheses[0].text if r.hypotheses else r.error) for r in transcribe_files(model, paths)}


@pytest.mark.parametrize("sr", [8000, 16000, 44100])
def test_reads_a_standard_dialer_it_never_saw(model, tmp_path, sr):
    keys = ["0123456789", "*#ABCD", "5", "9D7*00#"]
    paths = []
    for i, k in enumerate(keys):
        paths.append(str(tmp_path / f"dial_{i}.wav"))
        sf.write(paths[-1], plain_dialer(k, sr), sr, subtype="PCM_16")
    got = decode(model, paths)
    assert [got[p] for p in paths] == keys


def test_same_transcripts_across_formats_rates_and_channels(model, tmp_path):
    rng = np.random.default_rng(11)
    spec = DTMFSpec(snr_db=(15, 30))
    n_same = n_total = n_right = 0
    for i in range(5):
        wave, sr, keys = generate_utterance(rng, spec, sample_rate=16000)
        ref = tmp_path / f"u{i}_16k.wav"
        sf.write(ref, wave, 16000)
        t48 = torch.from_numpy(wave)[None]
        import torchaudio.functional as AF

        w48 = AF.resample(t48, 16000, 48000)[0].numpy()
        w8 = AF.resample(t48, 16000, 8000)[0].numpy()
        variants = {f"u{i}.flac": (wave, 16000), f"u{i}.mp3": (wave, 16000), f"u{i}.ogg": (wave, 16000),
                    f"u{i}_48k_stereo.wav": (np.stack([w48, 0.8 * w48], axis=1), 48000), f"u{i}_8k.wav": (w8, 8000)}
        for name, (data, rate) in variants.items():
            sf.write(tmp_path / name, data, rate)
        got = decode(model, [str(ref)] + [str(tmp_path / n) for n in variants])
        base = got.pop(str(ref))
        n_right += base == keys
        n_same += sum(v == base for v in got.values())
        n_total += len(got)
    assert n_right >= 4  # the 16 kHz WAVs themselves are (nearly all) read right
    assert n_same / n_total >= 0.95, (n_same, n_total)


@pytest.mark.slow
def test_beam_search_cli_with_timestamps_on_real_files(tmp_path):
    paths = []
    for i, k in enumerate(["147", "2580#"]):
        paths.append(tmp_path / f"k{i}.wav")
        sf.write(paths[-1], plain_dialer(k, 16000), 16000)
    r = run_cli("decode", "--checkpoint", CKPT, *paths, "--beam", "8", "--nbest", "2", "--json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["text"] for row in rows] == ["147", "2580#"]
    for row, dur in zip(rows, [0.4 + 3 * 0.15, 0.4 + 5 * 0.15]):
        assert row["score"] <= 0 and 0 < row["confidence"] <= 1
        assert row["words"] and all(0 <= w["start"] <= w["end"] <= dur + 0.05 for w in row["words"])
        assert len(row["nbest"]) == 2 and row["nbest"][0]["score"] >= row["nbest"][1]["score"]


@pytest.mark.slow
def test_decode_cli_on_the_device_gives_the_cpu_transcripts(tmp_path, device):
    """``crnn decode --device D`` over noisy files: the CPU's texts, timings and (nearly) its scores."""
    rng = np.random.default_rng(5)
    paths = []
    for i in range(6):
        wave, sr, _ = generate_utterance(rng, sample_rate=8000, spec=DTMFSpec(snr_db=(5, 20)))
        paths.append(tmp_path / f"u{i}.wav")
        sf.write(paths[-1], wave, sr)
    rows = {}
    for dev in ("cpu", device):
        r = run_cli("decode", "--checkpoint", CKPT, *paths, "--beam", "8", "--json", "--device", dev)
        assert r.returncode == 0, r.stderr
        rows[dev] = [json.loads(line) for line in r.stdout.splitlines()]
    cpu, dev = rows["cpu"], rows[device]
    assert len(cpu) == len(paths) and sum(bool(row["text"]) for row in cpu) >= 5
    assert [row["text"] for row in dev] == [row["text"] for row in cpu]
    for a, b in zip(cpu, dev):
        assert [(w["word"], w["start"], w["end"]) for w in a["words"]] == \
            [(w["word"], w["start"], w["end"]) for w in b["words"]]
        assert b["score"] == pytest.approx(a["score"], abs=1e-2)

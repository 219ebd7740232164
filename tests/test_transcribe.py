"""``crnn.transcribe``: files or in-memory audio, the same results as ``crnn decode --json``."""
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import crnn
import torch
from cli_helpers import run_cli
from test_trained_model import plain_dialer

CKPT = Path(__file__).parent / "data" / "dtmf_tiny.pt"


@pytest.fixture(scope="module")
def model():
    return crnn.load_model(CKPT)


@pytest.mark.slow
def test_same_rows_as_the_cli(tmp_path):
    paths = []
    for i, keys in enumerate(["147", "2580#", "9D"]):
        paths.append(str(tmp_path / f"k{i}.wav"))
        sf.write(paths[-1], plain_dialer(keys, 16000), 16000)
    results = crnn.transcribe(paths, checkpoint=CKPT, beam_size=8, nbest=2)
    assert [r.text for r in results] == ["147", "2580#", "9D"]
    cli = run_cli("decode", "--checkpoint", CKPT, *paths, "--beam", "8", "--nbest", "2", "--json")
    assert cli.returncode == 0, cli.stderr
    assert [r.to_json(nbest=2) for r in results] == [json.loads(line) for line in cli.stdout.splitlines()]


def test_arrays_decode_like_files(model, tmp_path):
    wave = plain_dialer("0123456789", 8000)
    sf.write(tmp_path / "d.wav", wave, 8000, subtype="FLOAT")
    from_file, from_array = crnn.transcribe([str(tmp_path / "d.wav"), (wave, 8000)], model=model)
    assert from_file.text == "0123456789"
    assert from_array.path == "<array 1>"
    assert {**from_array.to_json(), "path": ""} == {**from_file.to_json(), "path": ""}
    assert from_file.words[0]["start"] > 0.15 and from_file.words[0]["end"] <= from_file.duration


def test_arrays_at_other_rates_and_shapes(model):
    import torch

    w48 = plain_dialer("*#ABCD", 48000)
    stereo = np.stack([w48, 0.5 * w48], axis=1)  # (S, C)
    (r1,), (r2,) = crnn.transcribe((w48, 48000), model=model), crnn.transcribe([(torch.from_numpy(stereo), 48000)], model=model)
    assert r1.text == r2.text == "*#ABCD"
    assert r1.duration == pytest.approx(w48.size / 48000, abs=1e-3)


def test_a_single_path_gives_a_list_of_one(model, tmp_path):
    sf.write(tmp_path / "one.flac", plain_dialer("5", 8000), 8000)
    results = crnn.transcribe(tmp_path / "one.flac", model=model)
    assert len(results) == 1 and results[0].text == "5" and results[0].words[0]["word"] == "5"


def test_bad_inputs_name_themselves(model, tmp_path):
    missing = str(tmp_path / "missing.wav")
    with pytest.raises(crnn.TranscriptionError, match=f"{missing}: no such file"):
        crnn.transcribe([missing], model=model)
    nan = plain_dialer("5", 8000)
    nan[100] = np.nan
    good, bad_file, bad_array = crnn.transcribe([(plain_dialer("7", 8000), 8000), missing, (nan, 8000)],
                                                model=model, errors="keep")
    assert good.text == "7" and good.error is None
    assert bad_file.error.startswith(missing) and bad_file.to_json() == {"path": missing, "error": bad_file.error}
    assert bad_array.error.startswith("<array 2>: non-finite samples")
    _, empty = crnn.transcribe([(nan[:0], 8000), (np.zeros(80000), 8000)], model=model, errors="keep")
    assert "no audio samples" in _.error and empty.text == "" and empty.error is None
    with pytest.raises(ValueError, match="either"):
        crnn.transcribe([missing], checkpoint=CKPT, model=model)
    with pytest.raises(ValueError, match="either"):
        crnn.transcribe([missing])


def test_long_arrays_are_segmented_and_fixed_windows_are_offered(model):
    rng = np.random.default_rng(0)
    keys = ["147", "2580#", "9D", "36", "*0#", "ABC", "5", "88"]
    parts, starts = [], []
    t = 0
    for k in keys:
        wave = plain_dialer(k, 8000)
        starts.append(t / 8000)
        gap = np.zeros(int(rng.uniform(3.0, 5.0) * 8000), np.float32)
        parts += [wave, gap]
        t += wave.size + gap.size
    x = np.concatenate(parts)
    assert x.size / 8000 > 30  # long enough for "auto"
    (auto,) = crnn.transcribe((x, 8000), model=model)
    assert auto.segments == len(keys)  # one per dialled number: the pauses are longer than the merge gap
    assert [w["word"] for w in auto.words] == keys
    assert all(s + 0.15 <= w["start"] <= s + 0.3 for w, s in zip(auto.words, starts))
    (whole,) = crnn.transcribe((x, 8000), model=model, segment="none")
    assert whole.segments == 1 and whole.text == "".join(keys)
    (fixed,) = crnn.transcribe((x, 8000), model=model, segment=7.5)
    assert fixed.segments > 4 and fixed.text == "".join(keys)


def test_a_long_input_failing_midway_fails_alone(model, tmp_path):
    keys = plain_dialer("147", 8000)
    long = np.concatenate([np.r_[keys, np.zeros(3 * 8000, np.float32)] for _ in range(12)])  # ~45 s
    bad = long.copy()
    bad[int(40.0 * 8000)] = np.inf
    sf.write(tmp_path / "bad.wav", bad, 8000, subtype="FLOAT")
    for segment in ("auto", 10.0):  # found in the energy pass; found in the 5th window, after 4 were decoded
        before, failed, after = crnn.transcribe([(long, 8000), str(tmp_path / "bad.wav"), (keys, 8000)],
                                                model=model, errors="keep", batch_size=2, segment=segment)
        assert before.text == "147" * 12 and before.segments > 4 and after.text == "147"
        assert failed.hypotheses is None
        assert failed.error == f"{tmp_path / 'bad.wav'}: non-finite samples (NaN or infinity) at 40.00 s"


@pytest.mark.parametrize("array, reason", [
    (np.zeros((300, 300), np.float32), "is neither"),
    (np.zeros((0, 2), np.float32), "contains no audio samples"),
    (np.zeros((2, 3, 400), np.float32), "expected (samples,) or (channels, samples)"),
    (np.array([0.1, np.nan] * 200, np.float32), "non-finite"),
    (np.array(["a"] * 400), "must be real numbers"),
    (np.zeros(400, np.complex64), "must be real numbers"),
])
def test_arrays_of_a_shape_or_dtype_audio_cannot_have_are_refused_with_the_reason(array, reason):
    from crnn.data.audio import AudioReadError
    from crnn.data.audio.blocks import array_samples

    with pytest.raises(AudioReadError) as e:
        array_samples(array, "<array 0>")
    assert reason in str(e.value) and "<array 0>" in str(e.value)


def test_integer_arrays_are_scaled_by_their_own_range_and_channels_averaged():
    from crnn.data.audio.blocks import array_samples

    half = np.full(400, 16384, np.int16)
    assert np.allclose(array_samples(half), 0.5)
    assert np.allclose(array_samples(np.full(400, 192, np.uint8)), 0.5)
    assert np.allclose(array_samples(np.full(400, 2 ** 30, np.int32)), 0.5)
    stereo = np.stack([np.full(400, 0.2), np.full(400, 0.4)]).astype(np.float32)  # (C, S)
    assert np.allclose(array_samples(stereo), 0.3) and np.allclose(array_samples(stereo.T), 0.3)


def test_forward_features_refuses_inputs_of_another_form():
    model = crnn.create_model("tiny", vocab_size=5, hidden_size=8, num_layers=1)
    x = torch.zeros(2, 4000)
    with pytest.raises(ValueError, match=r"reads \(B, S\) samples, got \(2, 1, 4000\)"):
        model.forward_features(x[:, None], torch.tensor([4000, 4000]))
    with pytest.raises(ValueError, match="lengths must be \\(2,\\)"):
        model.forward_features(x, torch.tensor([4000]))
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, 4000\]"):
        model.forward_features(x, torch.tensor([4000, 5000]))
    with pytest.raises(ValueError, match="real float values, got torch.int16"):
        model.forward_features(x.to(torch.int16), torch.tensor([4000, 4000]))
    feats, lengths = model.forward_features(x, torch.tensor([4000, 2000]))
    assert feats.shape[0] == 2 and lengths.tolist()[0] > lengths.tolist()[1]

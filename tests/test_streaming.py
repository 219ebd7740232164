"""Streaming recognition: chunked posteriors equal offline ones; the CLI streams files and stdin."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from cli_helpers import ROOT, run_cli

import crnn
from crnn.data.builtin.dtmf import dtmf_tokenizer, generate_utterance
from crnn.streaming import StreamingError, StreamingRecognizer, stream_file
from crnn.checkpoint import save_checkpoint


def forward_only_model(cell: str = "gru", time_subsample: int = 2, normalize: str = "global", seed: int = 0):
    torch.manual_seed(seed)
    tok = dtmf_tokenizer()
    model = crnn.create_model("tiny", vocab_size=len(tok), bidirectional=False, cell=cell, normalize=normalize,
                              time_subsample=time_subsample, hidden_size=32, num_layers=2).eval()
    if normalize == "global":  # non-trivial statistics, so normalisation is really exercised
        model.frontend.global_mean.normal_(-5, 1)
        model.frontend.global_std.uniform_(1, 3)
    model.tokenizer = tok
    return model


@pytest.mark.parametrize("cell,time_subsample", [("gru", 2), ("lstm", 4), ("gru", 1), ("mingru", 2)])
@pytest.mark.parametrize("chunk_seconds", [0.001, 0.05, 0.37, 10.0])
def test_streamed_posteriors_equal_offline(cell, time_subsample, chunk_seconds, device):
    model = forward_only_model(cell, time_subsample).to(device)
    wave, sr, _ = generate_utterance(np.random.default_rng(1), sample_rate=8000, keys="159#D")
    wave = torch.from_numpy(wave)
    with torch.no_grad():
        offline, n = model(wave[None].to(device), torch.tensor([wave.numel()], device=device))
    stream = stream_file(model, wave, chunk_seconds)
    assert stream.frames.shape == offline[0, : int(n[0])].shape and stream.frames.device == offline.device
    torch.testing.assert_close(stream.frames, offline[0], atol=2e-5, rtol=1e-4)
    assert stream.text == model.tokenizer.decode(crnn.ctc_greedy(offline, n)[0].tokens)


def test_frames_arrive_while_audio_does():
    model = forward_only_model(time_subsample=4)
    wave = torch.from_numpy(generate_utterance(np.random.default_rng(2), sample_rate=8000)[0])
    stream = StreamingRecognizer(model)
    chunk = 400  # 50 ms
    for i in range(0, wave.numel(), chunk):
        new = stream.accept(wave[i:i + chunk])
        assert new.shape[1] == model.cfg.vocab_size
        heard = int(model.output_lengths(torch.tensor([min(i + chunk, wave.numel())]))[0])
        assert stream.n_out >= heard - 1  # at most one output frame waits for its lookahead
    assert stream.latency_seconds < 0.1
    stream.finish()
    with pytest.raises(RuntimeError, match="finished"):
        stream.accept(wave[:10])
    stream.reset()
    assert stream.frames.shape[0] == 0 and stream.text == ""


def test_per_utterance_normalisation_streams_approximately():
    model = forward_only_model(normalize="utterance")
    wave = torch.from_numpy(generate_utterance(np.random.default_rng(3), sample_rate=8000)[0])
    with torch.no_grad():
        offline, _ = model(wave[None], torch.tensor([wave.numel()]))
    whole = stream_file(model, wave, chunk_seconds=100.0)  # one chunk: the statistics are the offline ones
    torch.testing.assert_close(whole.frames, offline[0], atol=2e-5, rtol=1e-4)
    chunked = stream_file(model, wave, chunk_seconds=0.1)  # running statistics: same length, close values
    assert chunked.frames.shape == offline[0].shape
    assert (chunked.frames.exp() - offline[0].exp()).abs().mean() < 0.1


def test_models_that_cannot_stream_say_why():
    tok = dtmf_tokenizer()
    with pytest.raises(StreamingError, match="--unidirectional"):
        StreamingRecognizer(crnn.create_model("tiny", vocab_size=len(tok)))
    with pytest.raises(StreamingError, match="audio"):
        StreamingRecognizer(crnn.create_model("features_tiny", vocab_size=5, input_dim=8, bidirectional=False))


@pytest.mark.slow
def test_decode_cli_streams_files_and_stdin(tmp_path):
    model = forward_only_model(seed=4)
    ckpt = save_checkpoint(tmp_path / "uni.pt", model, {})
    rng = np.random.default_rng(5)
    wavs = []
    for i in range(2):
        wave, sr, _ = generate_utterance(rng, sample_rate=8000)
        path = tmp_path / f"k{i}.wav"
        sf.write(path, wave, sr, subtype="PCM_16")
        wavs.append(path)

    offline = run_cli("decode", "--checkpoint", ckpt, *wavs, "--json", "--device", "cpu")
    assert offline.returncode == 0, offline.stderr
    streamed = run_cli("decode", "--checkpoint", ckpt, *wavs, "--json", "--stream", "--chunk-ms", "30",
                       "--device", "cpu")
    assert streamed.returncode == 0, streamed.stderr
    off_rows = [json.loads(line) for line in offline.stdout.splitlines()]
    st_rows = [json.loads(line) for line in streamed.stdout.splitlines()]
    assert [r["text"] for r in st_rows] == [r["text"] for r in off_rows]
    assert [r["score"] for r in st_rows] == pytest.approx([r["score"] for r in off_rows], abs=1e-3)

    # stdin: raw 16-bit PCM at the model's rate, with partial transcripts as they grow
    pcm, _ = sf.read(wavs[0], dtype="int16")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "crnn", "decode", "--checkpoint", str(ckpt), "-", "--stream",
                        "--partial", "--device", "cpu"], input=pcm.astype("<i2").tobytes(), capture_output=True,
                       cwd=ROOT, env=env, timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    lines = r.stdout.decode().splitlines()
    final = lines[-1].split("\t")
    assert final == ["-", off_rows[0]["text"]]
    partials = [line.split("\t")[2] for line in lines[:-1]]
    assert all(p.startswith("-\tpartial\t") for p in lines[:-1])
    assert all(off_rows[0]["text"].startswith(p[:-1]) for p in partials if p)  # a prefix, bar the last key

    # a missing file is reported and the others still decode; a bidirectional model is refused
    r = run_cli("decode", "--checkpoint", ckpt, tmp_path / "nope.wav", wavs[1], "--stream", "--device", "cpu")
    assert r.returncode == 1 and "nope.wav" in r.stderr
    assert r.stdout.strip().split("\t") == [str(wavs[1]), off_rows[1]["text"]]
    bi = crnn.create_model("tiny", vocab_size=len(model.tokenizer))
    bi.tokenizer = model.tokenizer
    r = run_cli("decode", "--checkpoint", save_checkpoint(tmp_path / "bi.pt", bi, {}), wavs[0], "--stream")
    assert r.returncode == 2 and "--unidirectional" in r.stderr

    # a closed standard input is an error naming it, not a traceback
    r = subprocess.run([sys.executable, "-m", "crnn", "decode", "--checkpoint", str(ckpt), "-", "--stream",
                        "--device", "cpu"], capture_output=False, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       cwd=ROOT, env=env, timeout=300, preexec_fn=lambda: os.close(0))
    err = r.stderr.decode()
    assert r.returncode == 1 and "error: -: standard input is closed" in err and "Traceback" not in err, err
    # option values out of range are usage errors
    for flag, value in (("--chunk-ms", "0"), ("--chunk-ms", "nan"), ("--batch-size", "0"), ("--workers", "-1"),
                        ("--blank-skip", "0"), ("--alpha", "nan"), ("--token-prune", "0")):
        r = run_cli("decode", "--checkpoint", ckpt, wavs[0], flag, value)
        assert r.returncode == 2 and f"argument {flag}" in r.stderr and "Traceback" not in r.stderr, (flag, r.stderr)

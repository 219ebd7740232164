"""The whole-model streaming graph: raw samples in chunks through onnxruntime, log-mel, conv context,
normalisation statistics and recurrent state carried, equal to the offline model; the README's
no-torch example runs as written and gives the offline transcript."""
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from test_export import SR, mixed_batch, tiny_model

from crnn.export import ExportError
from crnn.streaming import StreamingRecognizer
from crnn.streaming_graph import export_streaming_model_onnx

ROOT = Path(__file__).resolve().parents[1]
STATES = ["samples", "mel", "count", "stats", "rnn"]


def streaming_model(cell: str, normalize: str = "global"):
    model = tiny_model(cell, bidirectional=False)
    model.frontend.cfg.normalize = normalize
    model.cfg.frontend_args["normalize"] = normalize
    if normalize == "global":  # statistics as a trained model would hold them
        with torch.no_grad():
            model.frontend.global_mean.fill_(-6.0)
            model.frontend.global_std.fill_(3.0)
    return model


def stream(session, x: torch.Tensor, lengths: torch.Tensor, units: int) -> list[np.ndarray]:
    """Feed (B, S) audio in chunks of ``units`` x chunk_multiple samples; each stream's log-probs (T'_b, V)."""
    meta = session.get_modelmeta().custom_metadata_map
    shapes, dtypes = json.loads(meta["state_shapes"]), json.loads(meta["state_dtypes"])
    B, N = x.size(0), units * int(meta["chunk_multiple"])
    state = {n: np.zeros([B if d == "batch" else d for d in shapes[n]], dtypes[n]) for n in STATES}
    pieces, tails = [[] for _ in range(B)], [None] * B
    for pos in range(0, int(lengths.max()), N):
        chunk = np.zeros((B, N), np.float32)
        part = x[:, pos:pos + N].numpy()
        chunk[:, :part.shape[1]] = part
        num = np.clip(lengths.numpy() - pos, 0, N).astype(np.int64)
        out = session.run(None, {"audio": chunk, "num_samples": num, **{f"{n}_in": state[n] for n in STATES}})
        log_probs, n_done, tail, n_tail = out[:4]
        state = dict(zip(STATES, out[4:]))
        for b in range(B):
            if num[b] > 0:  # a stream that has ended is not fed: its last call's tail stands
                pieces[b].append(log_probs[b, : n_done[b]])
                tails[b] = tail[b, : n_tail[b]]
    return [np.concatenate(p + [t]) for p, t in zip(pieces, tails)]


@pytest.fixture(scope="module")
def lstm_graph(tmp_path_factory):
    """A forward-only LSTM model (two state tensors per layer) and its streaming graph's folder."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    model = streaming_model("lstm")
    folder = tmp_path_factory.mktemp("streaming")
    export_streaming_model_onnx(model, folder / "model.streaming.onnx")
    return model, folder


@pytest.mark.slow
def test_streaming_graph_equals_offline_for_any_chunk(lstm_graph):
    ort = pytest.importorskip("onnxruntime")
    model, folder = lstm_graph
    path = folder / "model.streaming.onnx"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["streaming"] == "audio-chunks" and int(meta["chunk_multiple"]) == 160  # 10 ms hop x 2, 8 kHz
    x, lengths = mixed_batch([3.0, 1.7, 0.25], seed=4)  # ends mid-chunk; 0.25 s: shorter than one chunk
    with torch.no_grad():
        offline, out_lens = model(x, lengths)
    for units in (1, 6, 32):  # 20, 120, 640 ms
        for b, got in enumerate(stream(session, x, lengths, units)):
            ref = offline[b, : out_lens[b]].numpy()
            assert got.shape == ref.shape, (units, b)
            assert np.abs(got - ref).max() < 1e-4, (units, b)


@pytest.mark.slow
def test_per_utterance_normalisation_streams_like_the_recognizer(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    model = streaming_model("gru", normalize="utterance")  # and a GRU
    session = ort.InferenceSession(str(export_streaming_model_onnx(model, tmp_path / "u.onnx")),
                                   providers=["CPUExecutionProvider"])
    x, lengths = mixed_batch([2.1], seed=6)
    got = stream(session, x, lengths, units=5)[0]
    rec = StreamingRecognizer(model)
    for start in range(0, x.size(1), 5 * 160):  # the same chunks
        rec.accept(x[0, start:start + 5 * 160])
    rec.finish()
    ref = rec.frames.numpy()
    assert got.shape == ref.shape and np.abs(got - ref).max() < 1e-4


def test_streaming_graph_refuses_what_cannot_stream():
    with pytest.raises(ExportError, match="forward-only"):
        export_streaming_model_onnx(tiny_model("gru"), "unused.onnx")
    import crnn
    from crnn.data.builtin.dtmf import dtmf_tokenizer

    video = crnn.create_model("video_tiny", vocab_size=17, hidden_size=8, num_layers=1, bidirectional=False)
    video.tokenizer = dtmf_tokenizer()
    with pytest.raises(ExportError, match="log-mel audio frontend"):
        export_streaming_model_onnx(video, "unused.onnx")


def readme_streaming_block() -> str:
    readme = "\n".join(p.read_text(encoding="utf-8") for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])
    blocks = [b for b in re.findall(r"^```python\n(.*?)^```", readme, flags=re.S | re.M) if "model.streaming.onnx" in b]
    assert len(blocks) == 1
    return blocks[0]


@pytest.mark.slow
def test_readme_streaming_example_runs_without_torch(lstm_graph):
    import crnn
    from crnn.data.builtin.dtmf import generate_utterance

    model, tmp_path = lstm_graph
    wave = generate_utterance(np.random.default_rng(2), sample_rate=SR)[0]
    (tmp_path / "runs/demo/samples").mkdir(parents=True)
    sf.write(tmp_path / "runs/demo/samples/keys_00_8k.wav", wave, SR)
    audio = torch.from_numpy(sf.read(tmp_path / "runs/demo/samples/keys_00_8k.wav", dtype="float32")[0])
    with torch.no_grad():
        lp, n = model(audio[None], torch.tensor([audio.numel()]))
    offline = model.tokenizer.decode(crnn.ctc_greedy(lp, n)[0].tokens)
    assert offline  # the comparison is not between empty transcripts

    code = readme_streaming_block() + '\nimport sys\nassert "torch" not in sys.modules, "the example imported torch"\n'
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1] == offline


def test_cli_writes_the_whole_model_graph_for_audio_and_encoder_head_otherwise(monkeypatch, tmp_path, capsys):
    import crnn
    import crnn.streaming_graph
    from crnn.cli.export import write_streaming
    from crnn.data.builtin.dtmf import dtmf_tokenizer

    calls = []
    monkeypatch.setattr(crnn.streaming_graph, "export_streaming_model_onnx", lambda m, p: calls.append("whole") or p)
    encoder_head = lambda m, p: calls.append("encoder-head") or p  # noqa: E731
    write_streaming(streaming_model("gru"), tmp_path / "a.onnx", encoder_head)
    write_streaming(streaming_model("gru", normalize="utterance"), tmp_path / "u.onnx", encoder_head)
    assert "not equal" in capsys.readouterr().err  # per-utterance statistics: said at export time
    video = crnn.create_model("video_tiny", vocab_size=17, hidden_size=8, num_layers=1, bidirectional=False)
    video.tokenizer = dtmf_tokenizer()
    write_streaming(video, tmp_path / "v.onnx", encoder_head)
    assert calls == ["whole", "whole", "encoder-head"]

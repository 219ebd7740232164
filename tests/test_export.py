"""Export: the exportable layer path equals the normal one; ONNX files run by onnxruntime match PyTorch
(mixed lengths, every cell, streaming with carried state); torch.export programs; the CLI round trip."""
import json

import numpy as np
import pytest
import soundfile as sf
import torch
from cli_helpers import run_cli

import crnn
from crnn.cells.base import export_mode
from crnn.cells.registry import CELLS
from crnn.checkpoint import CheckpointError, save_checkpoint
from crnn.data.builtin.dtmf import dtmf_tokenizer, generate_utterance
from crnn.export import (ExportError, OnnxModel, export_metadata, export_onnx, export_streaming_onnx,
                         save_program, state_layout)

SR = 8000  # the tiny preset's sample rate
# One batch mixing 0.5 s to 30 s.
MIXED_SECONDS = [0.5, 30.0, 4.0, 12.5, 1.3]


def tiny_model(cell: str = "gru", bidirectional: bool = True, num_layers: int = 2, seed: int = 0) -> crnn.CRNN:
    torch.manual_seed(seed)
    tok = dtmf_tokenizer()
    model = crnn.create_model("tiny", vocab_size=len(tok), cell=cell, hidden_size=16, num_layers=num_layers,
                              bidirectional=bidirectional).eval()
    with torch.no_grad():  # a sharper head, so greedy paths hold several tokens, not only blanks
        model.head.weight.mul_(8)
    model.tokenizer = tok
    return model


def mixed_batch(seconds=MIXED_SECONDS, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, S) DTMF audio padded with zeros, lengths (B,)."""
    rng = np.random.default_rng(seed)
    waves = []
    for s in seconds:
        n = int(s * SR)
        wave = generate_utterance(rng, sample_rate=SR)[0]
        wave = np.resize(wave, n) + 0.01 * rng.standard_normal(n)  # repeat/cut to the wanted length
        waves.append(torch.from_numpy(wave.astype(np.float32)))
    lengths = torch.tensor([w.numel() for w in waves])
    x = torch.zeros(len(waves), int(lengths.max()))
    for i, w in enumerate(waves):
        x[i, : w.numel()] = w
    return x, lengths


def greedy_texts(model, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[str]:
    return [model.tokenizer.decode(h.tokens) for h in crnn.ctc_greedy(log_probs, lengths)]


def assert_parity(model, onnx_path, x, lengths):
    """log_probs within 1e-3 on every valid frame, same out_lengths, same greedy transcripts."""
    with torch.no_grad():
        ref, ref_lens = model(x, lengths)
    got, got_lens = OnnxModel(onnx_path)(x, lengths)
    assert torch.equal(got_lens, ref_lens.to(torch.int64))
    assert got.shape == ref.shape
    valid = torch.arange(ref.size(1))[None, :] < ref_lens[:, None]  # (B, T')
    assert torch.isfinite(got[valid]).all()
    assert (got[valid] - ref[valid]).abs().max().item() < 1e-3
    texts = greedy_texts(model, ref, ref_lens)
    assert greedy_texts(model, got, got_lens) == texts
    return texts


# -- the exportable path in PyTorch itself (no onnx needed) ----------------------------------------
@pytest.mark.parametrize("cell", crnn.list_cells())
@pytest.mark.parametrize("bidirectional", [True, False])
def test_export_path_equals_normal_path(cell, bidirectional, one_thread):
    model = tiny_model(cell, bidirectional)
    x, lengths = mixed_batch([0.5, 3.0, 1.2])
    with torch.no_grad():
        ref, ref_lens, ref_state = model.forward_features(x, lengths, return_state=True)
        with export_mode():
            got, got_lens, got_state = model.forward_features(x, lengths, return_state=True)
    assert torch.equal(got_lens, ref_lens)
    valid = torch.arange(ref.size(1))[None, :] < ref_lens[:, None]
    torch.testing.assert_close(got[valid], ref[valid], atol=1e-5, rtol=1e-4)
    assert not got[~valid].any()  # padded frames stay zero
    if cell not in ("lstm",):  # torch's padded LSTM path reads no final memory cell for ragged batches
        for a, b in zip(got_state, ref_state):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("prepared", [False, True])
def test_dft_log_mel_equals_stft_log_mel(prepared):
    model = tiny_model()
    x, lengths = mixed_batch([0.5, 2.0, 0.02])  # the last is shorter than one window: padded, 0 frames
    fe = model.frontend
    if prepared:  # what export does: the folded DFT (8 kHz: a 200-sample Hann window in 256-sample frames)
        fe.prepare_export()
        assert hasattr(fe, "fold_cos")
    with torch.no_grad():
        ref, n = fe.features(x, lengths)
        with export_mode():
            got, n2 = fe.features(x, lengths)
    assert torch.equal(n, n2) and got.shape == ref.shape
    torch.testing.assert_close(got, ref, atol=2e-3, rtol=1e-3)


@pytest.mark.parametrize("sample_rate, folded", [(16000, True), (11025, True), (22050, False)])
def test_exported_mel_power_matches_torchaudio(sample_rate, folded):
    """The folded DFT needs w[n] == w[N - n]: a 551-sample window in 1024-sample frames is off by one
    sample, so 22.05 kHz keeps the plain DFT Conv1d; either way the power equals torchaudio's."""
    from crnn.frontends.audio import AudioFrontend, AudioFrontendConfig

    fe = AudioFrontend(AudioFrontendConfig(sample_rate=sample_rate, n_mels=40)).eval()
    fe.prepare_export()
    assert hasattr(fe, "fold_cos") is folded and hasattr(fe, "dft_basis") is not folded
    x = torch.randn(2, sample_rate + 123, generator=torch.Generator().manual_seed(0)) * 0.3
    with torch.no_grad():
        ref = fe.mel(x)
        with export_mode():
            got = fe.mel_power(x)
    assert got.shape == ref.shape
    torch.testing.assert_close(got, ref, atol=1e-3, rtol=1e-4)


# -- ONNX, run by onnxruntime ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def gru_export(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    torch.manual_seed(0)
    model = tiny_model("gru")
    path = tmp_path_factory.mktemp("onnx") / "gru.onnx"
    export_onnx(model, path)
    return model, path


@pytest.mark.slow
def test_onnx_parity_on_mixed_lengths(gru_export):
    model, path = gru_export
    x, lengths = mixed_batch()
    texts = assert_parity(model, path, x, lengths)
    assert sum(len(t) for t in texts) > 0  # the comparison is not between empty transcripts
    # Batch and length are dynamic: a different batch size and length run through the same file.
    x2, lengths2 = mixed_batch([0.7, 2.2], seed=3)
    assert_parity(model, path, x2, lengths2)


def test_onnx_metadata_describes_the_model(gru_export):
    onnx = pytest.importorskip("onnx")
    model, path = gru_export
    proto = onnx.load(str(path))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["vocabulary"]) == ["<blank>", *model.tokenizer.symbols]
    assert meta["blank"] == "0" and meta["modality"] == "audio"
    assert int(meta["sample_rate"]) == SR
    assert float(meta["frame_shift"]) == pytest.approx(model.frame_shift)
    assert json.loads(meta["config"]) == model.cfg.to_dict()
    assert [i.name for i in proto.graph.input] == ["audio", "lengths"]
    assert [o.name for o in proto.graph.output] == ["log_probs", "out_lengths"]
    # Weights are inside the one file (no external data).
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
    loaded = OnnxModel(path)
    assert loaded.tokenizer.symbols == model.tokenizer.symbols
    assert loaded.cfg == model.cfg and loaded.frame_shift == pytest.approx(model.frame_shift)


@pytest.mark.slow
@pytest.mark.parametrize("cell", crnn.list_cells())
def test_onnx_parity_for_every_cell(cell, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    model = tiny_model(cell, num_layers=1, seed=1)
    path = export_onnx(model, tmp_path / f"{cell}.onnx")
    x, lengths = mixed_batch()
    assert_parity(model, path, x, lengths)


@pytest.mark.slow
@pytest.mark.parametrize("preset,input_name", [("video_tiny", "frames"), ("video_motion_tiny", "frames"),
                                               ("features_tiny", "features")])
def test_onnx_parity_for_video_and_feature_models(preset, input_name, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from crnn.tokenizer import Tokenizer

    torch.manual_seed(0)
    tok = Tokenizer(["walk", "jump", "wave"], kind="label")
    extra = {"input_dim": 24} if preset == "features_tiny" else {}
    model = crnn.create_model(preset, vocab_size=len(tok), hidden_size=16, num_layers=1, **extra).eval()
    model.tokenizer = tok
    path = export_onnx(model, tmp_path / "model.onnx")
    onnx_model = OnnxModel(path)
    assert onnx_model.input_name == input_name
    assert onnx_model.modality == ("features" if preset == "features_tiny" else "video")
    lengths = torch.tensor([40, 9, 23])  # frames
    if preset != "features_tiny":
        x = torch.randint(0, 256, (3, 40, 3, 64, 64), dtype=torch.uint8)
        assert onnx_model.input_dtype == torch.uint8
    else:
        x = torch.randn(3, 40, 24)
    with torch.no_grad():
        ref, ref_lens = model(x, lengths)
    got, got_lens = onnx_model(x, lengths)
    assert torch.equal(got_lens, ref_lens)
    valid = torch.arange(ref.size(1))[None, :] < ref_lens[:, None]
    assert (got[valid] - ref[valid]).abs().max().item() < 1e-3


@pytest.mark.slow
def test_streaming_graph_chunk_by_chunk_equals_offline(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    model = tiny_model("lstm", bidirectional=False)  # LSTM: two state tensors per layer
    path = export_streaming_onnx(model, tmp_path / "lstm.streaming.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    L, K, batch, H = json.loads(meta["state_shape"])
    assert (L, K, H) == state_layout(model) == (2, 2, 16) and batch == "batch"
    assert [i.name for i in session.get_inputs()] == ["features", "lengths", meta["state_in"]]

    x, lengths = mixed_batch([3.0, 1.7])
    with torch.no_grad():
        offline, out_lens = model(x, lengths)  # (B, T', V)
        feats, feat_lens = model.frontend(x, lengths)  # what the streaming graph reads, (B, T', D)
    state = np.zeros((L, K, 2, H), np.float32)
    pieces = []
    for start in range(0, feats.size(1), 7):  # 7 frames a chunk; the shorter stream ends mid-way
        chunk = feats[:, start:start + 7]
        valid = (feat_lens - start).clamp(0, chunk.size(1))
        log_probs, state = session.run(None, {"features": chunk.numpy(), "lengths": valid.numpy(),
                                              "state_in": state})
        pieces.append(torch.from_numpy(log_probs))
    streamed = torch.cat(pieces, dim=1)
    valid = torch.arange(offline.size(1))[None, :] < out_lens[:, None]
    assert (streamed[valid] - offline[valid]).abs().max().item() < 1e-4
    # The final state is each stream's state at its own last frame.
    with torch.no_grad(), export_mode():
        _, _, ref_states = model.encoder(feats, feat_lens)
    for layer, (h, c) in enumerate(ref_states):
        np.testing.assert_allclose(state[layer, 0], h[0].numpy(), atol=1e-5)
        np.testing.assert_allclose(state[layer, 1], c[0].numpy(), atol=1e-5)


@pytest.mark.slow
def test_torch_export_program_runs_other_lengths(tmp_path):
    model = tiny_model("gru_ref", bidirectional=False, num_layers=1)  # small: tracing is the slow part
    path = save_program(model, tmp_path / "model.pt2")
    extra = {"metadata.json": ""}
    program = torch.export.load(str(path), extra_files=extra)
    assert json.loads(extra["metadata.json"]) == export_metadata(model)
    x, lengths = mixed_batch([0.6, 2.5, 1.1], seed=5)  # another batch size and length than traced
    with torch.no_grad():
        ref, ref_lens = model(x, lengths)
        got, got_lens = program.module()(x, lengths)
    assert torch.equal(got_lens, ref_lens)
    valid = torch.arange(ref.size(1))[None, :] < ref_lens[:, None]
    torch.testing.assert_close(got[valid], ref[valid], atol=1e-5, rtol=1e-4)


# -- refusals with reasons ------------------------------------------------------------------------
def test_cell_without_exportable_path_is_refused_by_name():
    class PlainLayer(torch.nn.Module):  # obeys the layer contract but has no exportable time loop
        def __init__(self, input_size, hidden_size, bidirectional=True):
            super().__init__()
            self.proj = torch.nn.Linear(input_size, hidden_size)
            self.output_size = hidden_size

        def forward(self, x, lengths, state=None):
            return self.proj(x), lengths, state

    crnn.register_cell("plain_test_cell")(PlainLayer)
    try:
        model = tiny_model("plain_test_cell")
        with pytest.raises(ExportError, match="plain_test_cell.*cannot be exported"):
            export_onnx(model, "unused.onnx")
    finally:
        CELLS.unregister("plain_test_cell")


def test_streaming_export_of_bidirectional_model_is_refused():
    with pytest.raises(ExportError, match="forward-only"):
        export_streaming_onnx(tiny_model(), "unused.onnx")


def test_video3d_export_is_refused_with_the_reason():
    model = crnn.create_model("video3d_tiny", vocab_size=4, hidden_size=8, num_layers=1)
    model.tokenizer = dtmf_tokenizer()
    with pytest.raises(ExportError, match="video3d.*dynamic length"):
        export_onnx(model, "unused.onnx")


def test_onnx_model_names_a_bad_file(tmp_path):
    pytest.importorskip("onnxruntime")
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a protobuf at all")
    with pytest.raises(CheckpointError, match="broken.onnx"):
        OnnxModel(bad)
    with pytest.raises(CheckpointError, match="no such"):
        OnnxModel(tmp_path / "missing.onnx")


# -- the command line -----------------------------------------------------------------------------
@pytest.mark.slow
def test_cli_export_then_decode_onnx_gives_the_pt_transcripts(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    model = tiny_model("gru", num_layers=1)
    ckpt = save_checkpoint(tmp_path / "model.pt", model)
    rng = np.random.default_rng(7)
    wavs = []
    for i, seconds in enumerate([0.8, 2.5, 6.0]):
        wave = generate_utterance(rng, sample_rate=SR)[0]
        wave = np.resize(wave, int(seconds * SR))
        wavs.append(tmp_path / f"utt{i}.wav")
        sf.write(wavs[-1], wave, SR)

    r = run_cli("export", "--checkpoint", ckpt, "--format", "onnx", "-o", tmp_path / "model.onnx")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "model.onnx").is_file() and "wrote" in r.stdout
    assert not (tmp_path / "model.streaming.onnx").exists()  # bidirectional: no streaming graph

    outputs = {}
    for name in ("model.pt", "model.onnx"):
        r = run_cli("decode", "--checkpoint", tmp_path / name, "--json", "--device", "cpu", *wavs)
        assert r.returncode == 0, r.stderr
        outputs[name] = [json.loads(line) for line in r.stdout.splitlines()]
    pt, ox = outputs["model.pt"], outputs["model.onnx"]
    assert [row["text"] for row in ox] == [row["text"] for row in pt]
    assert any(row["text"] for row in pt)
    assert [[(w["word"], w["start"], w["end"]) for w in row["words"]] for row in ox] == \
        [[(w["word"], w["start"], w["end"]) for w in row["words"]] for row in pt]


@pytest.mark.slow
def test_cli_export_errors_name_the_problem(tmp_path):
    r = run_cli("export", "--checkpoint", tmp_path / "missing.pt", "-o", tmp_path / "m.onnx")
    assert r.returncode == 1 and r.stderr.startswith("error: ") and "missing.pt" in r.stderr
    assert "Traceback" not in r.stderr
    r = run_cli("export", "--checkpoint", tmp_path / "missing.pt", "--format", "tflite", "-o", "m.onnx")
    assert r.returncode == 2
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00garbage")
    r = run_cli("decode", "--checkpoint", bad, tmp_path / "none.wav")
    assert r.returncode != 0 and "error: " in r.stderr and "bad.onnx" in r.stderr
    assert "Traceback" not in r.stderr


def test_the_onnx_runner_refuses_inputs_of_another_form(tmp_path):
    pytest.importorskip("onnxruntime")
    from crnn.export import OnnxModel, export_onnx
    from crnn.data.builtin.dtmf import dtmf_tokenizer

    model = crnn.create_model("tiny", vocab_size=len(dtmf_tokenizer()), hidden_size=8, num_layers=1)
    model.tokenizer = dtmf_tokenizer()
    runner = OnnxModel(export_onnx(model, tmp_path / "m.onnx"))
    x = torch.zeros(2, 4000)
    with pytest.raises(ValueError, match=r"reads \(B, S\) samples, got \(4000,\)"):
        runner(x[0], torch.tensor([4000]))
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, 4000\]"):
        runner(x, torch.tensor([4000, 9000]))
    log_probs, lengths = runner(x, torch.tensor([4000, 2000]))
    assert log_probs.shape[0] == 2 and lengths[0] > lengths[1]

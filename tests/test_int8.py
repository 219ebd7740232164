"""int8 models: PyTorch dynamic quantization (``crnn decode --int8``) stays close to fp32 and keeps the
layer contract; the held-out check of ``crnn export --quantize int8 --check`` passes a faithful int8
file and refuses one that loses accuracy."""
import json
from copy import deepcopy
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn as nn
from cli_helpers import run_cli
from test_export import SR, mixed_batch, tiny_model
from train_helpers import fit_batch

from crnn.checkpoint import save_checkpoint
from crnn.data.builtin.dtmf import DTMFSpec, generate_utterance
from crnn.deploy.int8 import QuantizedRNNLayer, int8_for_decoding, quantize_dynamic_int8
from crnn.evaluation.manifest import WerResult, manifest_wer, wer_loss_report

# Stated tolerance of int8 against fp32 on the tiny model: log-probs within 0.25 on every valid frame
# (measured 0.02-0.09), greedy label agreement above 95 % of the frames.
INT8_ATOL, INT8_AGREE = 0.25, 0.95


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn", "mingru"])
def test_torch_int8_close_to_fp32(cell, one_thread):
    model = tiny_model(cell)
    q = quantize_dynamic_int8(model)
    assert q.quantization == "int8-dynamic" and q.tokenizer is model.tokenizer
    if cell in ("gru", "lstm", "rnn"):  # the torch.nn recurrent module itself is int8
        assert all(isinstance(layer, QuantizedRNNLayer) for layer in q.encoder.layers)
    assert "quantized" in type(q.head).__module__
    assert isinstance(model.head, nn.Linear) and "quantized" not in type(model.head).__module__  # caller's untouched
    x, lengths = mixed_batch([0.5, 4.0, 1.3])
    with torch.inference_mode():
        ref, ref_lens = model(x, lengths)
        got, got_lens = q(x, lengths)
    assert torch.equal(got_lens, ref_lens)
    valid = torch.arange(ref.size(1))[None] < ref_lens[:, None]
    diff = (got - ref)[valid].abs().max().item()
    assert 0 < diff < INT8_ATOL, diff  # really quantized, still close
    agree = (got.argmax(-1) == ref.argmax(-1))[valid].float().mean().item()
    assert agree > INT8_AGREE, agree


def test_int8_layer_keeps_padding_and_state(one_thread):
    model = tiny_model("gru", bidirectional=False)
    q = quantize_dynamic_int8(model)
    x, lengths = mixed_batch([0.5, 2.0])
    with torch.inference_mode():
        feats, n = q.frontend(x, lengths)
        y, _, states = q.encoder(feats, n)
        # Carried state: two halves of the longer stream give the output of the whole.
        half = int(n[1]) // 2
        a, _, s = q.encoder(feats[1:, :half], n[1:] * 0 + half)
        b, _, _ = q.encoder(feats[1:, half:int(n[1])], n[1:] - half, s)
    assert not y[0, int(n[0]):].any()  # padded frames stay zero
    s0 = torch.randn(1, 2, 16)
    with torch.inference_mode():
        _, _, s1 = q.encoder.layers[0](feats, torch.tensor([0, int(n[1])]), s0)
    assert torch.equal(s1[:, 0], s0[:, 0])  # an empty item keeps the state it came with
    torch.testing.assert_close(torch.cat([a, b], 1)[0], y[1, :int(n[1])], atol=0.05, rtol=0)


def test_wer_loss_report_limits():
    fp32, same, worse = WerResult(0.10, 10, 100, 5, 0), WerResult(0.105, 10, 100, 5, 0), WerResult(0.12, 12, 100, 5, 0)
    line, ok = wer_loss_report(fp32, same)
    assert ok and "fp32 10.00%" in line and "int8 10.50%" in line and "+0.50 points" in line
    line, ok = wer_loss_report(fp32, worse)
    assert not ok and "+2.00 points" in line and "more than the 0.5 allowed" in line


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    """A tiny GRU model fitted to 8 short DTMF files, and a manifest of them: (model, manifest, wavs).

    Hidden unit 0 of the forward direction is dead (its update gate's bias is huge, so z = 1 exactly and
    the unit stays at its zero start, with no gradient): ``_spoil_int8`` uses it."""
    torch.manual_seed(0)
    model = tiny_model("gru", num_layers=1)
    H = model.cfg.hidden_size
    with torch.no_grad():
        model.encoder.layers[0].rnn.bias_ih_l0[H] = 1e4  # gates r, z, n: row H is unit 0's update gate
    folder = tmp_path_factory.mktemp("heldout")
    rng = np.random.default_rng(3)
    waves, rows = [], []
    for i in range(8):
        wave, _, keys = generate_utterance(rng, DTMFSpec(min_keys=2, max_keys=4), sample_rate=SR)
        sf.write(folder / f"u{i}.wav", wave, SR)
        waves.append(torch.from_numpy(wave.astype(np.float32)))
        rows.append({"audio_filepath": f"u{i}.wav", "text": keys})
    (folder / "heldout.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    lengths = torch.tensor([w.numel() for w in waves])
    x = torch.nn.utils.rnn.pad_sequence(waves, batch_first=True)
    y = torch.nn.utils.rnn.pad_sequence([torch.tensor(model.tokenizer.encode(r["text"])) for r in rows], batch_first=True)
    y_lens = torch.tensor([len(r["text"]) for r in rows])
    with torch.random.fork_rng():
        torch.set_num_threads(1)
        fit_batch(model, SimpleNamespace(x=x, x_lens=lengths, y=y, y_lens=y_lens), steps=200, lr=1e-2)
    return model, str(folder / "heldout.jsonl"), sorted(folder.glob("u*.wav"))


def test_manifest_wer_scores_fp32_and_int8_alike(held_out, one_thread):
    model, manifest, _ = held_out
    fp32 = manifest_wer(model, manifest)
    assert fp32.items == 8 and fp32.words == 8 and fp32.wer == 0.0  # the model fits its 8 files
    int8 = manifest_wer(quantize_dynamic_int8(model), manifest)
    assert int8.words == 8 and int8.wer <= 0.125


def _spoil_int8(model):
    """A copy of ``model`` whose int8 copy loses accuracy and whose fp32 outputs are the same: the head
    weights that read the dead hidden unit get a huge value. fp32 multiplies it by zero; per-tensor
    int8 then rounds every other head weight to zero."""
    bad = deepcopy(model)
    with torch.no_grad():
        bad.head.weight[:, 0] = 1e4
    return bad


@pytest.mark.slow
def test_cli_export_check_passes_faithful_int8_and_refuses_a_spoiled_one(held_out, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    model, manifest, _ = held_out
    save_checkpoint(tmp_path / "good.pt", model)
    bad = _spoil_int8(model)
    assert manifest_wer(bad, manifest).wer == 0.0  # the spoiling leaves the fp32 model as it was
    save_checkpoint(tmp_path / "bad.pt", bad)

    # One word in 8 is 12.5 points: the faithful int8 file may flip one close call on this tiny set.
    r = run_cli("export", "-c", tmp_path / "good.pt", "--quantize", "int8", "--check", manifest,
                "--max-wer-loss", "13", "-o", tmp_path / "g.onnx")
    assert r.returncode == 0, r.stderr
    assert "WER fp32 0.00%" in r.stdout and (tmp_path / "g.onnx").is_file()

    r = run_cli("export", "-c", tmp_path / "bad.pt", "--quantize", "int8", "--check", manifest, "-o", tmp_path / "b.onnx")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "WER fp32 0.00%" in r.stdout and "more than the 0.5 allowed" in r.stdout
    assert r.stderr.startswith("error: ") and "b.onnx" in r.stderr
    assert not (tmp_path / "b.onnx").exists() and (tmp_path / "b.fp32.onnx").is_file()

    r = run_cli("export", "-c", tmp_path / "bad.pt", "--quantize", "int8", "--check", manifest, "--force",
                "-o", tmp_path / "b.onnx", "--no-streaming")
    assert r.returncode == 0 and "warning: " in r.stderr and (tmp_path / "b.onnx").is_file()

    r = run_cli("export", "-c", tmp_path / "good.pt", "--check", manifest, "-o", tmp_path / "x.onnx")
    assert r.returncode == 2 and "error: " in r.stderr
    r = run_cli("export", "-c", tmp_path / "good.pt", "--quantize", "int8", "--check", tmp_path / "none.jsonl",
                "-o", tmp_path / "x.onnx")
    assert r.returncode == 1 and r.stderr.startswith("error: ") and "none.jsonl" in r.stderr


@pytest.mark.slow
def test_cli_decode_int8(held_out, tmp_path):
    model, manifest, wavs = held_out
    ckpt = save_checkpoint(tmp_path / "model.pt", model)
    refs = [json.loads(line)["text"] for line in open(manifest)]
    for extra in ([], ["--int8"]):
        r = run_cli("decode", "-c", ckpt, "--device", "cpu", "--json", *extra, *wavs)
        assert r.returncode == 0, r.stderr
        texts = [json.loads(line)["text"] for line in r.stdout.splitlines()]
        assert sum(a == b for a, b in zip(texts, refs)) >= (8 if not extra else 7)


def test_int8_for_decoding_names_what_it_cannot_do():
    with pytest.raises(ValueError, match="--quantize int8"):
        int8_for_decoding(SimpleNamespace(modality="audio"), torch.device("cpu"))  # e.g. an OnnxModel
    with pytest.raises(ValueError, match="CPU only"):
        int8_for_decoding(tiny_model("gru"), torch.device("cuda"))

"""Text lines through every command, as a user runs them: synth -> train -> decode (pixel spans) -> eval
(line accuracy) -> export (ONNX with the resize inside, checked against PyTorch by onnxruntime)."""
from __future__ import annotations

import csv
import re
import json

import pytest
import torch

from cli_helpers import run_cli

TINY_IMAGE = ["--model", "image_tiny", "--hidden-size", "24", "--num-layers", "1", "--frontend-arg", "widths=[8,16,16]",
              "--frontend-arg", "out_dim=24", "--no-progress", "--no-tensorboard", "--workers", "0", "--device", "cpu"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("textlines")
    for split, n in (("train", 64), ("test", 30)):
        r = run_cli("synth", "textlines", "--out", root / split, "--n", n, "--split", split, "--seed", "1")
        assert r.returncode == 0, r.stderr
    # the model's characters are those of its 64 training lines: test on 10 lines it can write in full
    seen = set("".join(json.loads(line)["text"] for line in (root / "train" / "manifest.jsonl").open()))
    test = root / "test" / "manifest.jsonl"
    writable = [line for line in test.read_text().splitlines() if set(json.loads(line)["text"]) <= seen]
    assert len(writable) >= 10
    test.write_text("\n".join(writable[:10]) + "\n")
    r = run_cli("train", "--train-manifest", root / "train" / "manifest.jsonl", "--val-manifest",
                root / "test" / "manifest.jsonl", "--out", root / "run", "--epochs", "4", "--batch-size", "16",
                "--lr", "1e-2", "--warmup-steps", "2", *TINY_IMAGE, timeout=600)
    assert r.returncode == 0, r.stderr
    return root


@pytest.mark.slow
def test_training_on_written_lines_learns(trained):
    rows = list(csv.DictReader(open(trained / "run" / "log.csv")))
    losses = [float(r["train_loss"]) for r in rows]
    assert len(losses) == 4 and losses[-1] < 0.8 * losses[0]
    ck = torch.load(trained / "run" / "last.pt", weights_only=True)
    assert ck["config"]["frontend"] == "image"
    symbols = ck["tokenizer"]["symbols"]
    assert "A" in symbols or "B" in symbols or any(s.isupper() for s in symbols)  # case kept
    assert any(s in symbols for s in ".,;:!?")  # punctuation kept


@pytest.mark.slow
def test_decode_gives_pixel_spans_and_refuses_timed_formats(trained):
    line = trained / "test" / "line_00000.png"
    width = json.loads((trained / "test" / "manifest.jsonl").read_text().splitlines()[0])["width"]
    r = run_cli("decode", "--checkpoint", trained / "run" / "last.pt", "--json", line)
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)
    assert row["unit"] == "px" and row["path"].endswith("line_00000.png")
    for span in row["chars"] + row["words"]:
        assert 0 <= span["start"] < span["end"] <= width + 4
    assert "".join(c["char"] for c in row["chars"]).strip() == row["text"]
    r = run_cli("decode", "--checkpoint", trained / "run" / "last.pt", "--output-dir", trained / "out",
                "--format", "srt", line)
    assert r.returncode == 2 and r.stderr.startswith("error:") and "pixels" in r.stderr


@pytest.mark.slow
def test_eval_reports_cer_and_line_accuracy(trained, tmp_path):
    r = run_cli("eval", "--checkpoint", trained / "run" / "last.pt", trained / "test" / "manifest.jsonl",
                "--beam", "4", "--out", tmp_path / "hyps.jsonl")
    assert r.returncode == 0, r.stderr
    m = re.search(r"CER [\d.]+% .* line accuracy [\d.]+% \((\d+)/10 lines\)", r.stdout)
    assert m, r.stdout
    rows = [json.loads(line) for line in (tmp_path / "hyps.jsonl").read_text().splitlines()]
    assert len(rows) == 10 and int(m.group(1)) == sum(row["reference"] == row["hypothesis"] for row in rows)


@pytest.mark.slow
def test_onnx_export_matches_pytorch_and_resizes_inside(trained, tmp_path):
    pytest.importorskip("onnxruntime")
    from PIL import Image

    from crnn.checkpoint import load_model
    from crnn.data.build import make_dataset, read_rows
    from crnn.data.collate import collate
    from crnn.export import OnnxModel

    onnx_path = tmp_path / "lines.onnx"
    r = run_cli("export", "--checkpoint", trained / "run" / "last.pt", "--output", onnx_path)
    assert r.returncode == 0, r.stderr
    model, runtime = load_model(trained / "run" / "last.pt"), OnnxModel(onnx_path)
    assert runtime.modality == "image" and runtime.pixels_per_frame == 4
    rows = read_rows(str(trained / "test" / "manifest.jsonl"))[:4]
    batch = collate([make_dataset(rows, model.tokenizer, "image", model.reader_args, train=False)[i] for i in range(4)])
    with torch.no_grad():
        want, want_lens = model.eval()(batch.x, batch.x_lens)
    got, got_lens = runtime(batch.x, batch.x_lens)
    assert torch.equal(got_lens, want_lens)
    for i, n in enumerate(want_lens.tolist()):  # padding columns aside, the same log-probs
        assert torch.allclose(got[i, :n], want[i, :n], atol=1e-4), float((got[i, :n] - want[i, :n]).abs().max())
    # a line twice the model's height is resized inside the graph, as torch's antialiased bilinear resize does
    x64 = (torch.nn.functional.interpolate(batch.x[:1], scale_factor=2, mode="nearest") * 255).round()
    w64 = batch.x_lens[:1] * 2
    got64, lens64 = runtime.session.run(["log_probs", "out_lengths"],
                                        {"image": x64.to(torch.uint8).numpy(), "lengths": w64.numpy()})
    x32 = torch.nn.functional.interpolate(x64 / 255, size=(32, x64.shape[-1] // 2), mode="bilinear",
                                          align_corners=False, antialias=True)
    with torch.no_grad():
        want32, want_lens32 = model(x32, batch.x_lens[:1])
    assert lens64.tolist() == want_lens32.tolist()
    n = int(want_lens32[0])
    assert torch.allclose(torch.from_numpy(got64)[0, :n], want32[0, :n], atol=1e-4)
    # decoded from the big file, character spans are in the big file's pixels
    Image.fromarray(x64[0, 0].to(torch.uint8).numpy()).save(tmp_path / "big.png")
    r = run_cli("decode", "--checkpoint", onnx_path, "--json", tmp_path / "big.png")
    assert r.returncode == 0, r.stderr
    assert all(c["end"] <= int(w64[0]) + 8 for c in json.loads(r.stdout)["chars"])


@pytest.mark.slow
def test_builtin_task_trains_and_synth_refuses_actions_split(tmp_path):
    r = run_cli("train", "--task", "textlines", "--train-size", "32", "--val-size", "8", "--epochs", "1",
                "--batch-size", "16", "--out", tmp_path / "run", *TINY_IMAGE)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "run" / "last.pt").is_file()
    r = run_cli("synth", "textlines", "--out", tmp_path / "x", "--split", "test_look")
    assert r.returncode == 2 and r.stderr.startswith("error:")

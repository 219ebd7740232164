"""The model as a network and as a backbone; presets; checkpoints."""
import pytest
import torch

import crnn
from crnn.checkpoint import CheckpointError, load_model, read_checkpoint
from crnn.checkpoint import save_checkpoint
from crnn.tokenizer import Tokenizer


def tiny(**kw):
    m = crnn.create_model("tiny", vocab_size=6, hidden_size=16, conv_channels=4, n_mels=16, **kw)
    m.tokenizer = Tokenizer(list("abcde"))
    return m


def test_forward_shapes_and_fp32_log_probs(device):
    m = tiny().eval().to(device)
    x, lens = torch.randn(2, 8000, device=device), torch.tensor([8000, 5000], device=device)
    lp, n = m(x, lens)
    assert lp.shape == (2, int(n.max()), 6) and lp.dtype == torch.float32 and lp.device == x.device
    torch.testing.assert_close(lp.exp().sum(-1), torch.ones(lp.shape[:2], device=device))
    assert torch.equal(n, m.output_lengths(lens))


def test_backbone_api(device):
    m = tiny().eval().to(device)
    x, lens = torch.randn(2, 8000, device=device), torch.tensor([8000, 4000], device=device)
    feats, n = m.forward_features(x, lens)
    assert feats.shape == (2, int(n.max()), m.num_features)
    assert m.num_features == 2 * 16
    m.reset_classifier(11)
    assert m.forward_head(feats).shape[-1] == 11


def test_create_model_overrides_and_errors():
    m = crnn.create_model("small", vocab_size=30, cell="lstm", num_layers=1, n_mels=40)
    assert m.cfg.cell == "lstm" and m.cfg.frontend_args["n_mels"] == 40 and len(m.encoder.layers) == 1
    with pytest.raises(KeyError, match="unknown model preset"):
        crnn.create_model("nope", vocab_size=3)
    with pytest.raises(KeyError, match="unknown cell"):
        crnn.create_model("tiny", vocab_size=3, cell="nope")
    assert {"tiny", "small", "ds2"} <= set(crnn.list_models())


def test_checkpoint_round_trip(tmp_path):
    m = tiny().eval()
    path = save_checkpoint(tmp_path / "m.pt", m, {"epoch": 3})
    assert not list(tmp_path.glob("*.tmp"))  # written through a temp file then renamed
    m2 = load_model(path)
    x, lens = torch.randn(1, 4000), torch.tensor([4000])
    torch.testing.assert_close(m(x, lens)[0], m2(x, lens)[0])
    assert m2.tokenizer.symbols == list("abcde")


def test_checkpoint_moves_between_devices(tmp_path, device):
    """Saved from ``device``, loaded on the CPU and on ``device``: same log-probs as the saved model."""
    m = tiny().eval().to(device)
    path = save_checkpoint(tmp_path / "m.pt", m, {"epoch": 1})
    x, lens = torch.randn(2, 4000), torch.tensor([4000, 3000])
    with torch.no_grad():
        want = m(x.to(device), lens.to(device))[0].cpu()
        on_cpu = load_model(path)
        assert next(on_cpu.parameters()).device.type == "cpu"
        torch.testing.assert_close(on_cpu(x, lens)[0], want, atol=1e-5, rtol=1e-4)
        back = load_model(path, device=device)
        assert next(back.parameters()).device.type == torch.device(device).type
        torch.testing.assert_close(back(x.to(device), lens.to(device))[0].cpu(), want, atol=1e-5, rtol=1e-4)
        # and the other way: a CPU checkpoint onto the device
        cpu_path = save_checkpoint(tmp_path / "cpu.pt", on_cpu)
        moved = load_model(cpu_path, device=device)
        torch.testing.assert_close(moved(x.to(device), lens.to(device))[0].cpu(), want, atol=1e-5, rtol=1e-4)


def test_foreign_and_broken_checkpoints_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        read_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="junk.pt"):
        read_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a crnn checkpoint"):
        read_checkpoint(tmp_path / "other.pt")

    class Evil:  # a pickle that would run code if loaded without weights_only
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"format": "crnn-checkpoint", "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="evil.pt"):
        read_checkpoint(tmp_path / "evil.pt")


def test_truncated_checkpoint_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", tiny())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        load_model(path)

"""Weight averaging: EMA during training, checkpoint averaging after it (library, trainer and CLI)."""
import csv

import pytest
import torch
import torch.nn as nn

from crnn.checkpoint import CheckpointError, load_model, read_checkpoint, save_checkpoint
from crnn.training.averaging import WeightEMA, average_checkpoints, average_state_dicts
from cli_helpers import tiny_model
from crnn.tokenizer import build_tokenizer


def tiny_model_with_tokenizer(seed: int, **overrides):
    torch.manual_seed(seed)
    tok = build_tokenizer(["ab ba"], "char")
    model = tiny_model(len(tok), **overrides)
    model.tokenizer = tok
    return model


def test_ema_follows_the_weights_with_its_decay():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    ema = WeightEMA(model, decay=0.5)
    w0 = model[0].weight.detach().clone()
    for _ in range(30):  # warm-up caps the decay at (1 + n) / (10 + n): below 0.5 only for n < 8
        with torch.no_grad():
            model[0].weight.add_(1.0)
        ema.update(model)
    # after many steps of +1 with decay 0.5 the average lags the weights by d / (1 - d) = 1 step
    assert torch.allclose(ema.shadow["0.weight"], model[0].weight - 1.0, atol=1e-3)
    model[1].num_batches_tracked.fill_(7)
    ema.update(model)
    assert int(ema.shadow["1.num_batches_tracked"]) == 7  # integer buffers are copied, not averaged
    own = model[0].weight.detach().clone()
    with ema.applied(model):
        assert torch.equal(model[0].weight, ema.shadow["0.weight"])
    assert torch.equal(model[0].weight, own) and not torch.equal(own, w0)
    with pytest.raises(ValueError):
        WeightEMA(model, decay=1.0)


def test_average_state_dicts_is_the_mean():
    a = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)}
    b = {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(5)}
    out = average_state_dicts([a, b])
    assert torch.equal(out["w"], torch.tensor([2.0, 4.0])) and int(out["n"]) == 5
    with pytest.raises(ValueError, match="not the same architecture"):
        average_state_dicts([a, {"w": torch.zeros(3), "n": torch.tensor(1)}])


def test_average_checkpoints_of_one_model_and_refusal_of_two(tmp_path):
    m1, m2 = tiny_model_with_tokenizer(seed=1), tiny_model_with_tokenizer(seed=2)
    save_checkpoint(tmp_path / "a.pt", m1)
    save_checkpoint(tmp_path / "b.pt", m2)
    avg = average_checkpoints([tmp_path / "a.pt", tmp_path / "b.pt"])
    k = "head.weight"
    assert torch.allclose(avg["state_dict"][k], (m1.state_dict()[k] + m2.state_dict()[k]) / 2)
    other = tiny_model_with_tokenizer(seed=1, hidden_size=8)
    save_checkpoint(tmp_path / "c.pt", other)
    with pytest.raises(CheckpointError, match="different model"):
        average_checkpoints([tmp_path / "a.pt", tmp_path / "c.pt"])


@pytest.mark.slow
def test_trainer_keeps_ema_and_averaged_models_validated_and_cli_average(tmp_path):
    from cli_helpers import TINY, run_cli

    out = tmp_path / "run"
    r = run_cli("train", "--out", out, "--train-size", "16", "--val-size", "8", "--epochs", "3", "--batch-size", "8",
                "--warmup-steps", "2", "--ema", "0.9", "--average-last", "2", *TINY)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (out / "epochs").iterdir()) == ["epoch-2.pt", "epoch-3.pt"]  # older ones removed
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert len(rows) == 3 and all(row["ema_val_cer"] != "" for row in rows)
    ema = read_checkpoint(out / "ema.pt")
    best_ema = min(float(row["ema_val_cer"]) for row in rows)
    assert ema["train_state"]["weights"] == "ema" and ema["train_state"]["best"]["cer"] == pytest.approx(best_ema)
    last = read_checkpoint(out / "last.pt")
    assert "ema" in last["train_state"]  # a resumed run continues the same average
    averaged = read_checkpoint(out / "averaged.pt")
    assert "validation CER" in r.stderr and averaged["train_state"]["best"]["cer"] >= 0
    e2, e3 = (read_checkpoint(out / "epochs" / f"epoch-{k}.pt")["state_dict"] for k in (2, 3))
    k = "head.weight"
    assert torch.allclose(averaged["state_dict"][k], (e2[k] + e3[k]) / 2)
    load_model(out / "averaged.pt")  # a complete, loadable model

    r = run_cli("average", out / "epochs" / "epoch-2.pt", out / "epochs" / "epoch-3.pt", "-o", tmp_path / "avg.pt")
    assert r.returncode == 0, r.stderr
    assert torch.allclose(read_checkpoint(tmp_path / "avg.pt")["state_dict"][k], averaged["state_dict"][k])
    r = run_cli("average", out / "epochs" / "epoch-2.pt", tmp_path / "missing.pt", "-o", tmp_path / "x.pt")
    assert r.returncode == 1 and "missing.pt" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x.pt").exists()

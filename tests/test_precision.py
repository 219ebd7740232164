"""Mixed-precision training steps on the built-in DTMF task, on every device under test."""
import math

import pytest
import torch
from cli_helpers import tiny_model

from crnn.data.collate import collate
from crnn.data.builtin.dtmf import DTMFDataset
from crnn.training.step import make_optimizer, train_step

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_training_steps_fall_and_stay_finite(precision, device):
    """The trainer's own step under autocast: every loss finite, every update applied, the loss falls."""
    torch.manual_seed(0)
    data = DTMFDataset(8, seed=11, sample_rate=8000)
    batch = collate([data[i] for i in range(8)]).to(device)
    model = tiny_model(len(data.tokenizer)).to(device).train()
    amp_dtype = DTYPES[precision]
    optimizer = make_optimizer(model, lr=3e-3, weight_decay=0.0)
    scaler = torch.amp.GradScaler(torch.device(device).type, enabled=amp_dtype == torch.float16)
    losses = []
    for _ in range(25):
        loss, finite = train_step(model, batch, optimizer, scaler, amp_dtype, grad_clip=5.0)
        assert math.isfinite(float(loss)), losses
        if amp_dtype != torch.float16:  # fp16 may skip a step while the loss scale settles
            assert bool(finite), losses
        losses.append(float(loss))
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in model.parameters())
    assert min(losses[-5:]) < 0.6 * losses[0], losses


@pytest.mark.slow
def test_trainer_runs_and_resumes_on_the_device(tmp_path, device):
    """``train`` on ``device`` at its default precision (bf16 on CUDA): finite losses, checkpoints that load
    on the CPU, and a resume that carries the optimizer state over on the same device."""
    from cli_helpers import tiny_train_config

    from crnn.checkpoint import load_model, read_checkpoint
    from crnn.training import train

    cfg = dict(out=str(tmp_path / "run"), device=device, train_size=32, val_size=16, batch_size=8, lr=3e-3)
    first = train(tiny_train_config(epochs=2, **cfg))
    losses = [row["train_loss"] for row in first["history"]]
    assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0], losses
    assert all(row["nonfinite_steps"] == 0 for row in first["history"])
    assert next(load_model(first["best"]).parameters()).device.type == "cpu"
    resumed = train(tiny_train_config(epochs=3, resume="auto", **cfg))
    assert [row["epoch"] for row in resumed["history"]] == [1, 2, 3]
    assert read_checkpoint(resumed["last"])["train_state"]["step"] == 12

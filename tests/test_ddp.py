"""DistributedDataParallel through torchrun: two CPU processes (gloo) stay in lock-step."""
import os
import subprocess
import sys

import pytest
import torch

from cli_helpers import ROOT, TINY

pytestmark = pytest.mark.slow

SCRIPT = r'''
import os, sys, torch
from crnn.training import TrainConfig, train
from crnn.training.trainer import new_model, seed_everything
out = sys.argv[1]
cfg = TrainConfig(out=out, train_size=32, val_size=16, epochs=2, batch_size=8, device="cpu", workers=0,
                  progress=False, tensorboard=False, warmup_steps=2,
                  model_args=dict(hidden_size=16, num_layers=1, conv_channels=4, n_mels=24))
s = train(cfg)
torch.save(dict(s["model"].named_parameters()), os.path.join(out, f"rank{os.environ['RANK']}.pt"))
seed_everything(cfg.seed)  # the trainer's own initialisation, rebuilt the way train() builds it
torch.save(dict(new_model(cfg, "audio", None).named_parameters()), os.path.join(out, "init.pt"))
print("CER", s["best_cer"], "steps", s["history"][-1])
'''


def test_two_process_training_keeps_identical_weights(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29533",
                        str(script), str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    w0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert w0.keys() == w1.keys()
    # parameters (BatchNorm running statistics are broadcast from rank 0 at each forward instead)
    for k in w0:
        torch.testing.assert_close(w0[k], w1[k], rtol=0, atol=0, msg=k)
    # rank 0 alone writes logs and checkpoints; each rank ran half the steps of one process
    assert (tmp_path / "best.pt").is_file() and (tmp_path / "log.csv").read_text().count("\n") == 3
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    assert ckpt["train_state"]["step"] == 2 * 2  # 32 items / (2 ranks x 8) = 2 steps per epoch
    init = torch.load(tmp_path / "init.pt", weights_only=True)
    assert init.keys() == w0.keys()
    moved = [k for k in w0 if not torch.equal(w0[k], init[k])]
    assert len(moved) >= len(w0) - 2, f"weights that never moved from their initial values: {set(w0) - set(moved)}"
    assert "model gru" in r.stderr and "2 process(es)" in r.stderr


def test_torchrun_cli_reports_once(tmp_path):
    """Under torchrun only rank 0 prints the run's result."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29534",
                        "train.py", "--out", str(tmp_path / "run"), "--train-size", "16", "--val-size", "8",
                        "--epochs", "1", "--batch-size", "8", "--warmup-steps", "2", *TINY],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("best: ") == 1 and "inf%" not in r.stdout, r.stdout

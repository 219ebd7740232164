"""The tiny test model (one recipe for every test) and running the real CLI in a subprocess."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The tiny model: the `tiny` preset shrunk so a training run takes seconds on a CPU.
TINY_MODEL = dict(hidden_size=16, num_layers=1, conv_channels=4, n_mels=24)
# The same as command-line switches, plus a quiet CPU run.
TINY = ["--hidden-size", "16", "--num-layers", "1", "--frontend-arg", "conv_channels=4", "--frontend-arg", "n_mels=24",
        "--no-progress", "--no-tensorboard", "--workers", "0", "--device", "cpu"]


def tiny_model(vocab_size: int, **overrides):
    """A fresh tiny audio model (untrained)."""
    import crnn

    return crnn.create_model("tiny", vocab_size=vocab_size, **{**TINY_MODEL, **overrides})


def tiny_train_config(**overrides):
    """A quiet CPU TrainConfig of the tiny model (built-in DTMF data unless a manifest is given)."""
    from crnn.training import TrainConfig

    base = dict(device="cpu", workers=0, progress=False, tensorboard=False, batch_size=8, warmup_steps=2,
                model="tiny", model_args=dict(TINY_MODEL))
    return TrainConfig(**{**base, **overrides})


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300, module: str = "crnn") -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", module, *map(str, args)]
    return subprocess.run(cmd, cwd=cwd or ROOT, env=env, capture_output=True, text=True, timeout=timeout)

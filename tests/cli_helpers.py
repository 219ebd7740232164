"""Running the real CLI in a subprocess."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Tiny-model switches so CLI runs take seconds on a CPU.
TINY = ["--hidden-size", "16", "--num-layers", "1", "--frontend-arg", "conv_channels=4", "--frontend-arg", "n_mels=24",
        "--no-progress", "--no-tensorboard", "--workers", "0", "--device", "cpu"]


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300, module: str = "crnn") -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", module, *map(str, args)]
    return subprocess.run(cmd, cwd=cwd or ROOT, env=env, capture_output=True, text=True, timeout=timeout)

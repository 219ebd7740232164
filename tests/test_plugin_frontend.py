"""A frontend registered through --plugin trains, decodes and evaluates through the CLI, by its modality."""
import json

import numpy as np
import pytest

from cli_helpers import TINY, run_cli
from crnn.data.builtin.dtmf import write_dtmf_dataset

pytestmark = pytest.mark.slow

PLUGIN = '''
import torch
import torch.nn as nn

from crnn.frontends import register_frontend


@register_frontend("frame_linear", modality="audio")
class FrameLinear(nn.Module):
    """Waveform (B, S) -> non-overlapping frames of ``hop`` samples -> log-magnitude spectrum -> Linear."""

    def __init__(self, sample_rate=8000, hop=160, dim=32):
        super().__init__()
        self.sample_rate, self.hop = sample_rate, hop
        self.proj = nn.Linear(hop // 2 + 1, dim)
        self.output_size = dim
        self.frame_shift = hop / sample_rate

    @classmethod
    def from_args(cls, args):
        return cls(**args)

    def output_lengths(self, lengths):
        return torch.div(lengths, self.hop, rounding_mode="floor")

    def forward(self, x, lengths):
        n = self.output_lengths(lengths)
        T = x.size(1) // self.hop
        frames = x[:, : T * self.hop].reshape(x.size(0), T, self.hop)
        spec = torch.log1p(torch.fft.rfft(frames).abs())
        return self.proj(spec), n


@register_frontend("feature_linear", modality="features")
class FeatureLinear(nn.Module):
    """Precomputed features (B, T, D) -> Linear, one output frame per input frame."""

    def __init__(self, input_dim=6, dim=16, fps=10.0):
        super().__init__()
        self.proj = nn.Linear(input_dim, dim)
        self.output_size, self.frame_shift, self.time_stride = dim, 1.0 / fps, 1

    @classmethod
    def from_args(cls, args):
        return cls(**args)

    def output_lengths(self, lengths):
        return lengths

    def forward(self, x, lengths):
        return self.proj(x.float()), lengths
'''


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    path = tmp_path_factory.mktemp("plugin") / "my_frontends.py"
    path.write_text(PLUGIN)
    return path


def test_plugin_audio_frontend_trains_decodes_and_evaluates(plugin, tmp_path):
    manifest = write_dtmf_dataset(tmp_path / "data", n=16, seed=3, sample_rate=8000)
    out = tmp_path / "run"
    r = run_cli("train", "--plugin", plugin, "--frontend", "frame_linear", "--frontend-arg", "sample_rate=8000",
                "--train-manifest", manifest, "--val-manifest", manifest, "--out", out, "--epochs", "2",
                "--batch-size", "8", "--warmup-steps", "2", "--model", "tiny", *TINY[:4], *TINY[8:])
    assert r.returncode == 0, r.stderr
    info = json.loads(run_cli("info", "--plugin", plugin, out / "best.pt").stdout)
    assert info["config"]["frontend"] == "frame_linear"
    wavs = sorted(str(p) for p in (tmp_path / "data").glob("*.wav"))[:3]
    r = run_cli("decode", "--plugin", plugin, "--checkpoint", out / "best.pt", "--json", *wavs)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["path"] for row in rows] == wavs and all("text" in row for row in rows)
    r = run_cli("eval", "--plugin", plugin, "--checkpoint", out / "best.pt", manifest)
    assert r.returncode == 0, r.stderr
    assert "CER" in r.stdout and "16 utterances" in r.stdout
    # without the plugin the model cannot be built: a clear error, no traceback
    r = run_cli("decode", "--checkpoint", out / "best.pt", wavs[0])
    assert r.returncode == 1 and "frame_linear" in r.stderr and "Traceback" not in r.stderr


def test_plugin_feature_frontend_trains_decodes_and_evaluates(plugin, tmp_path):
    rng = np.random.default_rng(0)
    labels = ["wave", "point", "clap"]
    rows = []
    for i in range(12):
        seq = [labels[j] for j in rng.integers(0, 3, size=2)]
        feats = np.concatenate([np.tile(np.eye(3)[labels.index(s)] * 3, (6, 2)) for s in seq])  # (12, 6)
        np.save(tmp_path / f"clip{i}.npy", (feats + 0.1 * rng.standard_normal(feats.shape)).astype(np.float32))
        rows.append({"path": f"clip{i}.npy", "text": " ".join(seq), "num_frames": len(feats)})
    manifest = tmp_path / "feats.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    r = run_cli("train", "--plugin", plugin, "--frontend", "feature_linear", "--train-manifest", manifest,
                "--val-manifest", manifest, "--out", out, "--epochs", "2", "--batch-size", "4", "--warmup-steps", "2",
                "--hidden-size", "16", "--num-layers", "1", *TINY[8:])
    assert r.returncode == 0, r.stderr
    r = run_cli("decode", "--plugin", plugin, "--checkpoint", out / "best.pt", "--json", str(tmp_path / "clip0.npy"))
    assert r.returncode == 0, r.stderr
    assert set(json.loads(r.stdout)["text"].split()) <= set(labels)
    r = run_cli("eval", "--plugin", plugin, "--checkpoint", out / "best.pt", manifest)
    assert r.returncode == 0, r.stderr
    assert "label WER" in r.stdout and "12 clips" in r.stdout

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


DEFAULTS_PLUGIN = '''
import torch

from crnn.frontends import register_frontend
from crnn.frontends.audio import AudioFrontend
from crnn.frontends.video import FeaturesFrontend, VideoFrontend


@register_frontend("doubled_audio", modality="audio")
class DoubledAudio(AudioFrontend):
    """The built-in audio frontend on a waveform scaled by two: every setting is the parent's default."""

    def forward(self, x, lengths):
        return super().forward(2 * x, lengths)


@register_frontend("doubled_video", modality="video")
class DoubledVideo(VideoFrontend):
    def forward(self, x, lengths):
        return super().forward(x, lengths)


@register_frontend("doubled_features", modality="features")
class DoubledFeatures(FeaturesFrontend):
    def forward(self, x, lengths):
        return super().forward(2 * x, lengths)


@register_frontend("rateless_audio", modality="audio")
class RatelessAudio(torch.nn.Module):
    """An audio frontend that never says its sample rate."""

    output_size, frame_shift = 8, 0.01

    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(160, 8)

    @classmethod
    def from_args(cls, args):
        return cls()

    def output_lengths(self, lengths):
        return torch.div(lengths, 160, rounding_mode="floor")

    def forward(self, x, lengths):
        T = x.size(1) // 160
        return self.proj(x[:, : T * 160].reshape(x.size(0), T, 160)), self.output_lengths(lengths)
'''

QUICK = ["--epochs", "1", "--batch-size", "4", "--warmup-steps", "2", "--hidden-size", "16", "--num-layers", "1",
         *TINY[8:]]


@pytest.fixture(scope="module")
def defaults_plugin(tmp_path_factory):
    path = tmp_path_factory.mktemp("plugin") / "subclassed_frontends.py"
    path.write_text(DEFAULTS_PLUGIN)
    return path


def test_plugin_audio_subclass_trains_on_builtin_data_with_its_defaults(defaults_plugin, tmp_path):
    """No --frontend-arg at all: the built-in data take the sample rate the subclass inherits (16 kHz)."""
    out = tmp_path / "run"
    r = run_cli("train", "--plugin", defaults_plugin, "--frontend", "doubled_audio", "--out", out,
                "--train-size", "8", "--val-size", "4", *QUICK)
    assert r.returncode == 0, r.stderr
    info = json.loads(run_cli("info", "--plugin", defaults_plugin, out / "best.pt").stdout)
    assert info["config"]["frontend"] == "doubled_audio"
    manifest = write_dtmf_dataset(tmp_path / "data", n=2, seed=3, sample_rate=8000)  # resampled to 16 kHz
    r = run_cli("eval", "--plugin", defaults_plugin, "--checkpoint", out / "best.pt", manifest)
    assert r.returncode == 0, r.stderr
    assert "2 utterances" in r.stdout


def test_plugin_video_subclass_reads_clips_at_its_default_rate_and_size(defaults_plugin, tmp_path):
    from crnn.data.builtin.actions import ActionsConfig, write_action_clips
    from crnn.data.manifest import read_manifest

    manifest = write_action_clips(tmp_path / "clips", n=4, seed=1, config=ActionsConfig(look="basic"))
    out = tmp_path / "run"
    r = run_cli("train", "--plugin", defaults_plugin, "--frontend", "doubled_video", "--train-manifest", manifest,
                "--val-manifest", manifest, "--out", out, *QUICK)
    assert r.returncode == 0, r.stderr
    clip = read_manifest(manifest)[0]["path"]
    r = run_cli("decode", "--plugin", defaults_plugin, "--checkpoint", out / "best.pt", "--json", clip)
    assert r.returncode == 0, r.stderr
    assert "text" in json.loads(r.stdout)


def test_plugin_features_subclass_trains_with_its_defaults(defaults_plugin, tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(4):
        np.save(tmp_path / f"f{i}.npy", rng.standard_normal((20, 2048)).astype(np.float32))  # the default input_dim
        rows.append({"path": f"f{i}.npy", "text": "a b" if i % 2 else "b", "num_frames": 20})
    manifest = tmp_path / "feats.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = run_cli("train", "--plugin", defaults_plugin, "--frontend", "doubled_features", "--train-manifest", manifest,
                "--val-manifest", manifest, "--out", tmp_path / "run", *QUICK)
    assert r.returncode == 0, r.stderr
    r = run_cli("eval", "--plugin", defaults_plugin, "--checkpoint", tmp_path / "run" / "best.pt", manifest)
    assert r.returncode == 0 and "4 clips" in r.stdout, r.stderr


def test_plugin_audio_frontend_without_a_sample_rate_is_an_error_line(defaults_plugin, tmp_path):
    r = run_cli("train", "--plugin", defaults_plugin, "--frontend", "rateless_audio", "--out", tmp_path / "run",
                "--train-size", "4", "--val-size", "2", *QUICK)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "error:" in r.stderr and "rateless_audio" in r.stderr and "sample_rate" in r.stderr

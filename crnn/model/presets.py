"""Typed model configuration, stored in every checkpoint as a dict."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class ModelConfig:
    frontend: str = "audio"          # registered frontend name: "audio", "video", "video3d", "features", ...
    frontend_args: dict = field(default_factory=dict)  # the frontend's own config fields
    cell: str = "gru"                # registered recurrent cell name (see crnn.list_cells())
    hidden_size: int = 256           # hidden units per direction
    num_layers: int = 3              # stacked recurrent layers
    bidirectional: bool = True       # both directions in every layer
    dropout: float = 0.1             # dropout between recurrent layers and before the head
    layer_norm: bool = False         # LayerNorm after each recurrent layer
    vocab_size: int = 0              # output classes including the CTC blank (id 0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model config fields: {sorted(unknown)}")
        return cls(**d)


# Named presets. "dtmf" is the built-in default task's model: small enough to train on a 2-core CPU.
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        frontend_args=dict(sample_rate=8000, n_mels=40, conv_channels=16, time_subsample=2),
        hidden_size=96, num_layers=2, dropout=0.1,
    ),
    "small": dict(
        frontend_args=dict(sample_rate=16000, n_mels=80, conv_channels=32, time_subsample=2),
        hidden_size=256, num_layers=3, dropout=0.1,
    ),
    # DeepSpeech2-like: 2 conv layers (time stride 2), 5 bidirectional GRU layers of 512 per direction.
    "ds2": dict(
        frontend_args=dict(sample_rate=16000, n_mels=80, conv_channels=32, time_subsample=2),
        hidden_size=512, num_layers=5, dropout=0.1,
    ),
    # Video: the built-in action task (64x64 clips at 10 fps) on a CPU; per-frame CNN + temporal conv (x2:
    # at x4 an action of 5 frames gets about one output frame, and training stalls well above x2's error).
    "video_tiny": dict(
        frontend="video",
        frontend_args=dict(backbone="small", height=64, width=64, fps=10.0, cnn_channels=[16, 32, 64, 64],
                           cnn_grid=4, cnn_dim=128, temporal_channels=128, temporal_pools=1),
        hidden_size=96, num_layers=2, dropout=0.1,
    ),
    # The action task's default: video_tiny's CNN reading each frame and its difference from the previous one
    # (appearance + motion, fused early): the actions are motion, and from scratch on the varied look the
    # frames alone leave the blank plateau too late for a CPU budget. The stride-4 stem makes a CPU training
    # step about 0.6x as long for the same error per epoch.
    "video_motion_tiny": dict(
        frontend="video_motion",
        frontend_args=dict(backbone="small", height=64, width=64, fps=10.0, cnn_channels=[16, 32, 64, 64],
                           cnn_grid=4, cnn_dim=128, cnn_stem="stride4", temporal_channels=128, temporal_pools=1,
                           streams="both", fusion="early"),
        hidden_size=96, num_layers=2, dropout=0.1,
    ),
    # Sign language / real clips: ResNet-18 per frame (112x112), as CNN-BiLSTM-CTC recognisers.
    "video_small": dict(
        frontend="video",
        frontend_args=dict(backbone="resnet18", height=112, width=112, fps=25.0, temporal_channels=512,
                           temporal_pools=2),
        hidden_size=256, num_layers=2, dropout=0.2,
    ),
    # 3D CNN frontend for the action task (small custom 3D CNN, time x4).
    "video3d_tiny": dict(
        frontend="video3d",
        frontend_args=dict(backbone="small", height=64, width=64, fps=10.0, channels=[16, 32, 64, 96],
                           time_subsample=4),
        hidden_size=96, num_layers=2, dropout=0.1,
    ),
    # Text lines (the original CRNN's task): grey lines 32 px high, a VGG-style CNN pooling the height to 1 and
    # the width by 4 (a character of a 32 px line spans 3-6 output frames), a BiGRU reading the columns.
    "image_tiny": dict(
        frontend="image",
        frontend_args=dict(height=32, channels=1, widths=[16, 32, 64, 96], out_dim=128),
        hidden_size=128, num_layers=2, dropout=0.1,
    ),
    # Printed lines in many fonts (the shipped line model): image_tiny's CNN half as wide again, a wider BiGRU;
    # about 1.0 M parameters, a CPU step 1.3x image_tiny's.
    "image_base": dict(
        frontend="image",
        frontend_args=dict(height=32, channels=1, widths=[24, 48, 96, 128], out_dim=160),
        hidden_size=160, num_layers=2, dropout=0.1,
    ),
    # Photographed or scanned lines in colour, longer training: wider CNN, bigger recurrent layers.
    "image_small": dict(
        frontend="image",
        frontend_args=dict(height=32, channels=3, widths=[64, 128, 256, 256, 256], out_dim=256),
        hidden_size=256, num_layers=2, dropout=0.1,
    ),
    # Precomputed per-frame features (e.g. Breakfast I3D, 2048-d at 15 fps); set input_dim for others.
    "features_tiny": dict(
        frontend="features",
        frontend_args=dict(input_dim=2048, fps=15.0, temporal_channels=128, temporal_pools=2),
        hidden_size=96, num_layers=2, dropout=0.1,
    ),
}

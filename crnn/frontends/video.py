"""Video frontends: clips (B, T, C, H, W) or per-frame features (B, T, D) -> (B, T', D').

* ``"video"``: a 2D CNN on every frame (small CNN or torchvision's ResNet-18 architecture), then
  temporal Conv1d + max-pool blocks (kernel 5, pool 2; two blocks subsample time by 4), as in
  CNN-BiLSTM-CTC sign-language recognisers.
* ``"video3d"``: a 3D CNN over the clip (a small custom one, or torchvision's ``r3d_18`` /
  ``r2plus1d_18`` architectures with their temporal strides reduced to the configured subsampling).
* ``"video_motion"``: the same per-frame CNN reading each frame together with its difference from the
  previous frame (an appearance stream and a motion stream, fused early or late).
* ``"features"``: precomputed per-frame features, optionally subsampled by the same temporal blocks.

Pixels may arrive as uint8 (0..255) or float (0..1); normalisation happens here, on the model's
device. Padded frames never change valid outputs in eval mode: the 2D CNN only sees valid frames,
and every temporal convolution reads zeros past each clip's end.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
from torch.nn.modules.utils import _pair

from crnn.cells.base import exporting
from crnn.frontends import config_from_args, register_frontend
from crnn.lengths import conv_out_length, length_mask

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _normalize_pixels(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (0..255) or float (0..1) pixels (..., C, H, W) -> standardised float32."""
    scale = (1 / 255.0 if x.dtype == torch.uint8 else 1.0) / std[:, None, None]
    return torch.addcmul(-mean[:, None, None] / std[:, None, None], x.float(), scale)  # one pass over the pixels


def _channels_last(frames: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) in the channels-last layout: the oneDNN and cuDNN convolutions' own, about 1.5x faster for
    a CPU training step of the small CNN (no reordering around every convolution and pooling)."""
    return frames.contiguous(memory_format=torch.channels_last)


class _GridPool(nn.AdaptiveAvgPool2d):
    """Adaptive average pooling to a grid that hands a map already of the grid's size through untouched."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = _pair(self.output_size)
        return x if tuple(x.shape[-2:]) == size else super().forward(x)


# -- temporal blocks shared by "video" and "features" ----------------------------------------------
class TemporalConvStack(nn.Module):
    """``num_pools`` x (Conv1d(kernel, same padding) -> BN -> ReLU -> MaxPool1d(2)) over time.

    Args:
        input_size: feature size D in.
        channels: feature size out of every block.
        kernel: temporal kernel (odd). (Default: 5)
        num_pools: blocks, each halving time; 0 makes this an identity. (Default: 2)
    """

    def __init__(self, input_size: int, channels: int, kernel: int = 5, num_pools: int = 2):
        super().__init__()
        if kernel % 2 != 1:
            raise ValueError(f"temporal kernel must be odd, got {kernel}")
        self.kernel, self.num_pools = kernel, num_pools
        self.blocks = nn.ModuleList()
        size = input_size
        for _ in range(num_pools):
            self.blocks.append(nn.Sequential(
                nn.Conv1d(size, channels, kernel, padding=kernel // 2, bias=False),
                nn.BatchNorm1d(channels),
                nn.ReLU(inplace=True),
            ))
            size = channels
        self.pool = nn.MaxPool1d(2, 2)
        self.output_size = size

    @property
    def stride(self) -> int:
        return 2 ** self.num_pools

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        for _ in range(self.num_pools):
            lengths = conv_out_length(lengths, kernel=2, stride=2, padding=0)
        return lengths

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, D), lengths (B,) -> (B, T / 2**num_pools, channels), lengths."""
        if not self.blocks:
            return x, lengths
        x = x * length_mask(lengths, x.size(1)).unsqueeze(-1).to(x.dtype)
        if exporting():  # the same padding, with a symbolic length
            x = torch.cat([x, x.new_zeros(x.size(0), torch.sym_max(0, self.stride - x.size(1)), x.size(2))], dim=1)
        elif x.size(1) < self.stride:  # too short for one output frame: pad so shapes stay defined
            x = nn.functional.pad(x, (0, 0, 0, self.stride - x.size(1)))
        x = x.transpose(1, 2)  # (B, D, T)
        for block in self.blocks:
            x = block(x)  # (B, C, T)
            x = self.pool(x)  # (B, C, T/2): a pair is valid only if both frames are
            lengths = conv_out_length(lengths, kernel=2, stride=2, padding=0)
            x = x * length_mask(lengths, x.size(2))[:, None, :].to(x.dtype)  # zeros for the next conv
        return x.transpose(1, 2), lengths  # (B, T', C)


class _TemporalFrontend(nn.Module):
    """What every video frontend shares: a config dataclass with ``fps``, and time arithmetic from
    ``time_stride`` (input frames per output frame) and ``output_lengths``, defined by each subclass."""

    @property
    def time_stride(self) -> int:
        """Input frames per output frame."""
        raise NotImplementedError

    @property
    def frame_shift(self) -> float:
        """Seconds between consecutive output frames."""
        return self.time_stride / self.cfg.fps

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frames (B,) -> output frames (B,)."""
        raise NotImplementedError


class _TemporalStackFrontend(_TemporalFrontend):
    """"video" and "features": time is subsampled by a TemporalConvStack after per-frame features."""

    temporal: TemporalConvStack

    @property
    def time_stride(self) -> int:
        return self.temporal.stride

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frames (B,) -> output frames (B,)."""
        return self.temporal.output_lengths(lengths)


# -- per-frame 2D CNN + temporal blocks ------------------------------------------------------------
@dataclass
class VideoFrontendConfig:
    backbone: str = "small"            # per-frame CNN: "small" or "resnet18" (torchvision architecture)
    backbone_weights: str | None = None  # local state_dict file for the backbone (None: random init)
    in_channels: int = 3               # colour channels of the frames
    height: int = 64                   # frame size readers resize clips to ...
    width: int = 64                    # ... (the CNN itself pools globally, so any size runs)
    fps: float = 10.0                  # frame rate readers sample clips at; sets frame_shift
    crop_margin: float = 0.0           # readers resize this much larger, then crop (random in training, centre otherwise)
    cnn_channels: list = field(default_factory=lambda: [16, 32, 64, 64])  # "small": channels per stage
    cnn_grid: int = 4                  # "small": spatial grid kept per frame (1 = global average)
    cnn_dim: int = 128                 # "small": per-frame feature size
    cnn_stem: str = "pool"             # "small": the /4 stem: "pool" (5x5 conv stride 2, 2x2 max-pool) or
                                       # "stride4" (5x5 conv stride 4: a sixteenth of the products, no pool)
    temporal_channels: int = 128       # Conv1d channels of the temporal blocks
    temporal_kernel: int = 5           # Conv1d kernel over frames
    temporal_pools: int = 2            # temporal blocks, each halving time (2 -> x4)
    mean: list = field(default_factory=lambda: list(IMAGENET_MEAN))  # per-channel pixel mean (0..1 scale)
    std: list = field(default_factory=lambda: list(IMAGENET_STD))    # per-channel pixel std


def small_cnn(in_channels: int, channels: list[int], grid: int, out_dim: int, stem: str = "pool") -> nn.Sequential:
    """Per-frame CNN: (N, C, H, W) -> (N, out_dim).

    A stem dividing the size by 4 (``"pool"``: a stride-2 5x5 conv and a max-pool; ``"stride4"``: one
    stride-4 5x5 conv, whose windows still overlap, at a sixteenth of the pool stem's products and
    without its max-pool, the two most expensive layers of a training step on a CPU), then Conv3x3-BN-ReLU
    stages with a max-pool between them (64x64 -> 4x4 for four stages, about 4 MMAC a frame), then the
    map is pooled to a ``grid`` x ``grid`` layout and projected. Keeping a coarse grid instead of a global
    average keeps *where* things are, which motion (move left / right) needs.
    """
    if stem not in ("pool", "stride4"):
        raise ValueError(f"cnn_stem must be 'pool' or 'stride4', got {stem!r}")
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, channels[0], 5, stride=2 if stem == "pool" else 4, padding=2, bias=False),
        nn.BatchNorm2d(channels[0]), nn.ReLU(inplace=True),
    ]
    if stem == "pool":
        layers.append(nn.MaxPool2d(2))
    for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:])):
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        if i < len(channels) - 2:
            layers.append(nn.MaxPool2d(2))
    layers += [_GridPool(grid), nn.Flatten(), nn.Linear(channels[-1] * grid * grid, out_dim),
               nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def frame_cnn(cfg: VideoFrontendConfig, in_channels: int) -> tuple[nn.Module, int]:
    """The per-frame CNN ``cfg.backbone`` reading ``in_channels`` planes: (N, in_channels, H, W) -> (N, D); returns it and D.

    Its convolution weights are channels-last, like the frames the frontends hand it (a CPU training step
    of the small CNN about 1.1x faster again than with channels-last frames alone)."""
    cnn, dim = _frame_cnn(cfg, in_channels)
    return cnn.to(memory_format=torch.channels_last), dim


def _frame_cnn(cfg: VideoFrontendConfig, in_channels: int) -> tuple[nn.Module, int]:
    if cfg.backbone == "small":
        return small_cnn(in_channels, list(cfg.cnn_channels), cfg.cnn_grid, cfg.cnn_dim, cfg.cnn_stem), cfg.cnn_dim
    if cfg.backbone == "resnet18":
        from torchvision.models import resnet18

        cnn = resnet18(weights=None)
        if in_channels != 3:
            cnn.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        if cfg.backbone_weights:
            _load_backbone_weights(cnn, cfg.backbone_weights)
        dim = cnn.fc.in_features
        cnn.fc = nn.Identity()
        return cnn, dim
    raise ValueError(f"video backbone must be 'small' or 'resnet18', got {cfg.backbone!r}")


def _load_backbone_weights(module: nn.Module, path: str) -> None:
    """Load a local state_dict (classifier keys ignored); errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: backbone weights file not found")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        raise RuntimeError(f"{p}: cannot load backbone weights ({type(e).__name__}: {e})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    try:
        missing, unexpected = module.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        raise RuntimeError(f"{p}: backbone weights do not fit the architecture ({e})") from None
    missing = [k for k in missing if not k.startswith("fc.")]
    if missing or unexpected:
        raise RuntimeError(f"{p}: backbone weights do not match (missing {missing[:5]}, unexpected {unexpected[:5]})")


@register_frontend("video", modality="video")
class VideoFrontend(_TemporalStackFrontend):
    """Frames (B, T, C, H, W) -> normalise -> 2D CNN per valid frame -> temporal blocks -> (B, T', D).

    Args:
        cfg: VideoFrontendConfig.
    """

    def __init__(self, cfg: VideoFrontendConfig):
        super().__init__()
        self.cfg = cfg
        self.cnn, cnn_dim = frame_cnn(cfg, cfg.in_channels)
        if len(cfg.mean) != cfg.in_channels or len(cfg.std) != cfg.in_channels:
            raise ValueError("mean and std need one value per input channel")
        self.register_buffer("mean", torch.tensor(cfg.mean, dtype=torch.float32), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.std, dtype=torch.float32), persistent=False)
        self.temporal = TemporalConvStack(cnn_dim, cfg.temporal_channels, cfg.temporal_kernel, cfg.temporal_pools)
        self.output_size = self.temporal.output_size

    @classmethod
    def from_args(cls, args: dict) -> "VideoFrontend":
        return cls(config_from_args(VideoFrontendConfig, "video", args))

    def frame_features(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) -> (B, T, D_cnn), zero at padded frames; the CNN sees valid frames only
        (cheaper, and BatchNorm statistics stay free of padding)."""
        B, T = x.shape[:2]
        mask = length_mask(lengths.to(x.device), T)  # (B, T)
        if exporting():  # a graph cannot pick frames by a mask: run every frame (eval mode), zero the padding
            feats = self.cnn(_normalize_pixels(x.flatten(0, 1), self.mean, self.std))  # (B * T, D)
            return feats.view(B, T, -1) * mask.unsqueeze(-1).to(feats.dtype)
        frames = _normalize_pixels(x[mask], self.mean, self.std)  # (N, C, H, W)
        feats = self.cnn(_channels_last(frames))  # (N, D)
        out = feats.new_zeros(B, T, feats.size(-1))
        out[mask] = feats
        return out

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, C, H, W) uint8/float, lengths (B,) frames -> (B, T', D), lengths (B,)."""
        if x.dim() != 5:
            raise ValueError(f"video frontend expects (B, T, C, H, W) frames, got shape {tuple(x.shape)}")
        lengths = lengths.to(x.device)
        feats = self.frame_features(x, lengths)  # (B, T, D_cnn)
        return self.temporal(feats, lengths)  # (B, T', D)


# -- appearance + motion (frame differences) -------------------------------------------------------
@dataclass
class VideoMotionFrontendConfig(VideoFrontendConfig):
    streams: str = "both"              # "both": frames and their differences; "motion": differences only
    fusion: str = "early"              # "both": "early" (one CNN reads 2C planes) or "late" (a CNN per stream, features joined)
    motion_gain: float = 4.0           # scale of the differences (most pixels do not change: a larger share of the input range)


@register_frontend("video_motion", modality="video")
class VideoMotionFrontend(_TemporalStackFrontend):
    """Frames (B, T, C, H, W) -> normalise -> [frame, motion] per valid frame -> 2D CNN(s) -> temporal blocks -> (B, T', D).

    The motion stream is the difference of consecutive normalised frames, ``gain * (x_t - x_{t-1})``
    (zero at each clip's first frame), as in the RGB-difference stream of two-stream action
    recognisers: the actions are defined by motion, and a difference is zero wherever nothing moves,
    whatever the background or the actor look like. With ``streams="both"`` the frames go in as well
    (the sign of a difference at a moving edge says which side the actor is on, so which way it moves),
    stacked with the differences into one CNN (``fusion="early"``, the cost of ``video`` but for the
    first convolution) or through a CNN each, features concatenated per frame (``"late"``, twice the cost).
    A difference reads only its own frame and the one before, so padding never changes valid outputs.

    Args:
        cfg: VideoMotionFrontendConfig.
    """

    def __init__(self, cfg: VideoMotionFrontendConfig):
        super().__init__()
        if cfg.streams not in ("both", "motion"):
            raise ValueError(f"streams must be 'both' or 'motion', got {cfg.streams!r}")
        if cfg.fusion not in ("early", "late"):
            raise ValueError(f"fusion must be 'early' or 'late', got {cfg.fusion!r}")
        if len(cfg.mean) != cfg.in_channels or len(cfg.std) != cfg.in_channels:
            raise ValueError("mean and std need one value per input channel")
        self.cfg = cfg
        C = cfg.in_channels
        self.late = cfg.streams == "both" and cfg.fusion == "late"
        if self.late:
            self.cnn, dim = frame_cnn(cfg, C)  # appearance
            self.motion_cnn, motion_dim = frame_cnn(cfg, C)
            dim += motion_dim
        else:
            self.cnn, dim = frame_cnn(cfg, 2 * C if cfg.streams == "both" else C)
        self.register_buffer("mean", torch.tensor(cfg.mean, dtype=torch.float32), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.std, dtype=torch.float32), persistent=False)
        self.temporal = TemporalConvStack(dim, cfg.temporal_channels, cfg.temporal_kernel, cfg.temporal_pools)
        self.output_size = self.temporal.output_size

    @classmethod
    def from_args(cls, args: dict) -> "VideoMotionFrontend":
        return cls(config_from_args(VideoMotionFrontendConfig, "video_motion", args))

    def _cnn(self, planes: torch.Tensor) -> torch.Tensor:
        """(N, C or 2C, H, W) -> (N, D): the CNN(s) over frames stacked with their differences."""
        if not self.late:
            return self.cnn(planes)
        C = self.cfg.in_channels
        return torch.cat([self.cnn(planes[:, :C]), self.motion_cnn(planes[:, C:])], dim=1)

    def frame_features(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) -> (B, T, D_cnn), zero at padded frames; the CNNs see valid frames only."""
        B, T = x.shape[:2]
        mask = length_mask(lengths.to(x.device), T)  # (B, T)
        if exporting():  # a graph cannot pick frames by a mask: run every frame (eval mode), zero the padding
            frames = _normalize_pixels(x, self.mean, self.std)  # (B, T, C, H, W)
            diff = self.cfg.motion_gain * (frames[:, 1:] - frames[:, :-1])  # (B, T - 1, C, H, W)
            diff = torch.cat([torch.zeros_like(frames[:, :1]), diff], dim=1)  # nothing moved before the first frame
            planes = torch.cat([frames, diff], dim=2) if self.cfg.streams == "both" else diff
            feats = self._cnn(planes.flatten(0, 1))
            return feats.view(B, T, -1) * mask.unsqueeze(-1).to(feats.dtype)
        feats = self._cnn(self._valid_planes(x, mask))  # (N, D)
        out = feats.new_zeros(B, T, feats.size(-1))
        out[mask] = feats
        return out

    def _valid_planes(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, C, H, W) pixels, (B, T) mask -> (N, C or 2C, H, W) CNN input of the N valid frames.

        Valid frames are picked before converting to float, so padding is never normalised or
        differenced (on a CPU that was a fifth of the training step's forward time).
        """
        index = mask.flatten().nonzero().squeeze(1)  # (N,)
        first = (index % x.shape[1] == 0).view(-1, 1, 1, 1)  # clip starts: nothing moved before them
        frames = _normalize_pixels(x.flatten(0, 1)[index], self.mean, self.std)  # (N, C, H, W)
        # A clip's valid frames are consecutive in ``index``: each one's predecessor is the row above it.
        diff = (self.cfg.motion_gain * (frames - frames.roll(1, 0))).masked_fill_(first, 0.0)
        return _channels_last(torch.cat([frames, diff], dim=1) if self.cfg.streams == "both" else diff)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, C, H, W) uint8/float, lengths (B,) frames -> (B, T', D), lengths (B,)."""
        if x.dim() != 5:
            raise ValueError(f"video_motion frontend expects (B, T, C, H, W) frames, got shape {tuple(x.shape)}")
        lengths = lengths.to(x.device)
        return self.temporal(self.frame_features(x, lengths), lengths)


# -- 3D CNN ---------------------------------------------------------------------------------------
@dataclass
class Video3DFrontendConfig:
    backbone: str = "small"            # "small" (custom 3D CNN), "r3d_18" or "r2plus1d_18" (torchvision)
    in_channels: int = 3               # colour channels
    height: int = 64                   # frame size readers resize clips to
    width: int = 64
    fps: float = 10.0                  # frame rate readers sample clips at; sets frame_shift
    crop_margin: float = 0.0           # readers resize this much larger, then crop (random in training, centre otherwise)
    channels: list = field(default_factory=lambda: [16, 32, 64, 96])  # "small": channels per stage
    time_subsample: int = 4            # 1, 2 or 4: temporal stride of the whole frontend
    mean: list = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list = field(default_factory=lambda: list(IMAGENET_STD))


def small_cnn3d(in_channels: int, channels: list[int], t_strides: list[int]) -> nn.ModuleList:
    """Stages of Conv3d(3x3x3, stride (t, 2, 2)) -> BN -> ReLU; the first stages carry the time strides."""
    stages = nn.ModuleList()
    c_in = in_channels
    for i, c in enumerate(channels):
        stages.append(nn.Sequential(
            nn.Conv3d(c_in, c, 3, stride=(t_strides[i], 2, 2), padding=1, bias=False),
            nn.BatchNorm3d(c), nn.ReLU(inplace=True),
        ))
        c_in = c
    return stages


@register_frontend("video3d", modality="video")
class Video3DFrontend(_TemporalFrontend):
    """Frames (B, T, C, H, W) -> normalise -> 3D CNN -> spatial average -> (B, T', D).

    Every Conv3d with a temporal kernel gets its input masked past each clip's end (a forward
    pre-hook), so padding never leaks into valid frames, even inside torchvision's residual blocks.

    Args:
        cfg: Video3DFrontendConfig.
    """

    def __init__(self, cfg: Video3DFrontendConfig):
        super().__init__()
        if cfg.time_subsample not in (1, 2, 4):
            raise ValueError(f"time_subsample must be 1, 2 or 4, got {cfg.time_subsample}")
        self.cfg = cfg
        n_strided = self.halvings
        if cfg.backbone == "small":
            t_strides = [2 if i < n_strided else 1 for i in range(len(cfg.channels))]
            self.stages = small_cnn3d(cfg.in_channels, list(cfg.channels), t_strides)
            self.output_size = cfg.channels[-1]
        elif cfg.backbone in ("r3d_18", "r2plus1d_18"):
            from torchvision.models import video as tvv

            net = getattr(tvv, cfg.backbone)(weights=None)
            if cfg.in_channels != 3:
                raise ValueError(f"{cfg.backbone} takes 3 colour channels")
            # torchvision halves time in layer2..4; keep only the first `n_strided` of those halvings.
            for i, layer in enumerate([net.layer2, net.layer3, net.layer4]):
                for m in layer.modules():
                    if isinstance(m, nn.Conv3d) and m.stride[0] == 2 and i >= n_strided:
                        m.stride = (1,) + tuple(m.stride[1:])
            self.stages = nn.ModuleList([net.stem, net.layer1, net.layer2, net.layer3, net.layer4])
            self.output_size = net.fc.in_features
        else:
            raise ValueError(f"video3d backbone must be 'small', 'r3d_18' or 'r2plus1d_18', got {cfg.backbone!r}")
        self.register_buffer("mean", torch.tensor(cfg.mean, dtype=torch.float32), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.std, dtype=torch.float32), persistent=False)
        self._convs = [m for m in self.stages.modules() if isinstance(m, nn.Conv3d)]
        for m in self._convs:
            if m.kernel_size[0] > 1:
                m.register_forward_pre_hook(self._mask_hook)
        self._masks: dict[int, torch.Tensor] = {}

    @classmethod
    def from_args(cls, args: dict) -> "Video3DFrontend":
        return cls(config_from_args(Video3DFrontendConfig, "video3d", args))

    @property
    def time_stride(self) -> int:
        return self.cfg.time_subsample

    @property
    def halvings(self) -> int:
        """Temporal stride-2 convolutions: 0, 1 or 2."""
        return {1: 0, 2: 1, 4: 2}[self.cfg.time_subsample]

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frames (B,) -> output frames (B,): every temporal stride-2 conv has kernel 3/pad 1 or kernel 1/pad 0,
        both giving floor((n - 1) / 2) + 1."""
        for _ in range(self.halvings):
            lengths = torch.where(lengths > 0, conv_out_length(lengths, kernel=3, stride=2, padding=1), lengths)
        return lengths

    def _mask_hook(self, module: nn.Module, inputs: tuple[torch.Tensor]) -> tuple[torch.Tensor] | None:
        x = inputs[0]  # (B, C, T, H, W)
        mask = self._masks.get(x.size(2))
        if mask is None:
            return None
        return (x * mask[:, None, :, None, None].to(x.dtype),)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, C, H, W) uint8/float, lengths (B,) -> (B, T', D), lengths (B,)."""
        if x.dim() != 5:
            raise ValueError(f"video3d frontend expects (B, T, C, H, W) frames, got shape {tuple(x.shape)}")
        lengths = lengths.to(x.device)
        x = _normalize_pixels(x, self.mean, self.std).transpose(1, 2)  # (B, C, T, H, W)
        # Valid-frame masks at every temporal resolution the network passes through, keyed by padded T.
        T, n = x.size(2), lengths
        self._masks = {T: length_mask(n, T)}
        for _ in range(self.halvings):
            T = (T - 1) // 2 + 1
            n = torch.where(n > 0, conv_out_length(n, kernel=3, stride=2, padding=1), n)
            self._masks[T] = length_mask(n, T)
        try:
            for stage in self.stages:
                x = stage(x)  # (B, C', T', H', W')
        finally:
            self._masks = {}
        out_lengths = self.output_lengths(lengths)
        x = x.mean(dim=(3, 4)).transpose(1, 2)  # (B, T', C')
        return x * length_mask(out_lengths, x.size(1)).unsqueeze(-1).to(x.dtype), out_lengths


# -- precomputed features -------------------------------------------------------------------------
@dataclass
class FeaturesFrontendConfig:
    input_dim: int = 2048              # per-frame feature size D (e.g. 2048 for I3D Breakfast features)
    fps: float = 15.0                  # feature frames per second; sets frame_shift
    normalize: str = "utterance"       # "utterance" (per clip and dimension) or "none"
    temporal_channels: int = 256       # Conv1d channels of the temporal blocks
    temporal_kernel: int = 5
    temporal_pools: int = 0            # temporal blocks, each halving time (0: features pass through)


@register_frontend("features", modality="features")
class FeaturesFrontend(_TemporalStackFrontend):
    """Per-frame features (B, T, D) -> [normalise] -> [temporal blocks] -> (B, T', D')."""

    def __init__(self, cfg: FeaturesFrontendConfig):
        super().__init__()
        if cfg.normalize not in ("utterance", "none"):
            raise ValueError(f"normalize must be 'utterance' or 'none', got {cfg.normalize!r}")
        self.cfg = cfg
        self.temporal = TemporalConvStack(cfg.input_dim, cfg.temporal_channels, cfg.temporal_kernel,
                                          cfg.temporal_pools)
        self.output_size = self.temporal.output_size

    @classmethod
    def from_args(cls, args: dict) -> "FeaturesFrontend":
        return cls(config_from_args(FeaturesFrontendConfig, "features", args))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, D) float, lengths (B,) -> (B, T', D'), lengths (B,)."""
        if x.dim() != 3 or x.size(-1) != self.cfg.input_dim:
            raise ValueError(f"features frontend expects (B, T, {self.cfg.input_dim}), got {tuple(x.shape)}")
        lengths = lengths.to(x.device)
        x = x.float()
        mask = length_mask(lengths, x.size(1)).unsqueeze(-1).to(x.dtype)  # (B, T, 1)
        if self.cfg.normalize == "utterance":
            count = mask.sum(1, keepdim=True).clamp(min=1)
            mean = (x * mask).sum(1, keepdim=True) / count
            var = (((x - mean) * mask) ** 2).sum(1, keepdim=True) / count
            x = (x - mean) / torch.sqrt(var + 1e-5)
        x = x * mask
        return self.temporal(x, lengths)

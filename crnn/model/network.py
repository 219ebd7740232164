"""CRNN = frontend + recurrent encoder + linear CTC head, and building one from a preset."""
from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn as nn

from crnn.model.presets import PRESETS, ModelConfig
from crnn.cells.base import exporting
from crnn.model.encoder import RecurrentEncoder
from crnn.frontends import build_frontend, reader_args


# what forward_features takes, per modality: the rank of x and where its padded length is
INPUT_FORMS = {"audio": (2, 1, "(B, S) samples"), "video": (5, 1, "(B, T, C, H, W) frames"),
               "features": (3, 1, "(B, T, D) features"), "image": (4, 3, "(B, C, H, W) line images")}


def check_input(modality: str, x: torch.Tensor, lengths: torch.Tensor) -> None:
    """Raise ValueError unless ``x`` and ``lengths`` have the form the ``modality``'s frontend reads."""
    if modality not in INPUT_FORMS:
        return  # a plugin's modality: its frontend checks its own input
    rank, time_dim, form = INPUT_FORMS[modality]
    if not isinstance(x, torch.Tensor) or x.dim() != rank:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"a {modality} model reads {form}, got {shape}")
    if x.is_complex() or x.dtype == torch.bool or (not x.is_floating_point() and modality in ("audio", "features")):
        raise ValueError(f"a {modality} model reads real {'float' if modality in ('audio', 'features') else 'uint8 or float'} "
                         f"values, got {x.dtype}")
    if not isinstance(lengths, torch.Tensor) or lengths.dim() != 1 or lengths.numel() != x.size(0):
        shape = tuple(lengths.shape) if isinstance(lengths, torch.Tensor) else type(lengths).__name__
        raise ValueError(f"lengths must be ({x.size(0)},), one per item of the batch, got {shape}")
    if lengths.is_floating_point() or lengths.dtype == torch.bool:
        raise ValueError(f"lengths must be integers, got {lengths.dtype}")
    # values are checked where they are free to read (on the CPU); on a GPU that would stall every step
    if lengths.numel() and lengths.device.type == "cpu" and (int(lengths.min()) < 0 or int(lengths.max()) > x.size(time_dim)):
        raise ValueError(f"lengths must lie in [0, {x.size(time_dim)}] (the padded length), got "
                         f"{int(lengths.min())}..{int(lengths.max())}")


class CRNN(nn.Module):
    """Convolutional frontend -> stacked (bi)directional recurrent layers -> Linear -> log_softmax.

    The model owns neither the loss nor the decoder: ``forward`` returns CTC log-probabilities.

    Args:
        cfg: ModelConfig (``vocab_size`` includes the blank, id 0).

    Attributes:
        num_features: size D of ``forward_features`` outputs.
        frame_shift: seconds between output frames (None when the input has no fixed rate).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.vocab_size < 2:
            raise ValueError("vocab_size must count the blank and at least one symbol")
        self.cfg = cfg
        self.frontend = build_frontend(cfg.frontend, cfg.frontend_args)
        self.encoder = RecurrentEncoder(
            self.frontend.output_size, cfg.hidden_size, cfg.num_layers, cell=cfg.cell,
            bidirectional=cfg.bidirectional, dropout=cfg.dropout, layer_norm=cfg.layer_norm,
        )
        self.num_features = self.encoder.output_size
        self.head_dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(self.num_features, cfg.vocab_size)
        self.tokenizer = None  # attached by load_model / the trainer; not part of the state dict

    @property
    def modality(self) -> str:
        """What the model reads: ``"audio"``, ``"video"`` or ``"features"`` (its frontend's modality)."""
        return self.frontend.modality

    @property
    def reader_args(self) -> dict:
        """What a file reader needs to feed this model (``sample_rate``; ``fps``, ``height``, ``width``,
        ``crop_margin``), from the frontend itself (``crnn.frontends.reader_args``)."""
        return reader_args(self.frontend)

    @property
    def sample_rate(self) -> int | None:
        """Samples per second an audio model reads (None for other modalities)."""
        rate = self.reader_args.get("sample_rate") if self.modality == "audio" else None
        return int(rate) if rate is not None else None

    @property
    def frame_shift(self) -> float | None:
        return getattr(self.frontend, "frame_shift", None)

    @property
    def pixels_per_frame(self) -> int | None:
        """Text lines: pixel columns (at the model's line height) per output frame; None for other modalities."""
        return getattr(self.frontend, "width_stride", None) if self.modality == "image" else None

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Input lengths (B,) -> output frames (B,), from the frontend's own arithmetic."""
        return self.frontend.output_lengths(lengths)

    def forward_features(
        self, x: torch.Tensor, lengths: torch.Tensor, state: list[Any] | None = None, return_state: bool = False
    ):
        """Backbone features.

        Args:
            x: (B, S) float waveform for audio, (B, T, C, H, W) frames for video (uint8 or float in [0, 1]),
                (B, T, D) float features, (B, C, H, W) text-line images (uint8 or float in [0, 1]).
            lengths: (B,) integer valid samples / frames / pixel columns per item, each at most the padded length.
            state: per-layer recurrent state from a previous chunk (streaming). (Default: None)
            return_state: also return the new per-layer state. (Default: False)

        Returns:
            features (B, T', num_features), lengths (B,) [, state]

        Raises:
            ValueError: an input of another rank or dtype, or lengths that do not describe it.
        """
        if not exporting():
            check_input(self.modality, x, lengths)
        feats, lengths = self.frontend(x, lengths)  # (B, T', D_frontend)
        feats, lengths, new_state = self.encoder(feats, lengths, state)  # (B, T', H * dirs)
        return (feats, lengths, new_state) if return_state else (feats, lengths)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(B, T', num_features) -> CTC log-probabilities (B, T', V), always fp32."""
        logits = self.head(self.head_dropout(features))
        return torch.log_softmax(logits.float(), dim=-1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x, lengths -> log_probs (B, T', V) in fp32, output lengths (B,)."""
        feats, lengths = self.forward_features(x, lengths)
        return self.forward_head(feats), lengths

    def reset_classifier(self, vocab_size: int) -> None:
        """Replace the head for a new vocabulary (fine-tuning as a backbone)."""
        self.cfg.vocab_size = vocab_size
        self.head = nn.Linear(self.num_features, vocab_size).to(self.head.weight.device)


def list_models() -> list[str]:
    """Names of the model presets."""
    return sorted(PRESETS)


def create_model(name: str = "tiny", vocab_size: int = 0, **overrides: Any) -> CRNN:
    """Build a fresh model from a preset, with any ModelConfig field or frontend argument overridden.

    Example: ``create_model("small", vocab_size=29, cell="lstm", n_mels=64)``.
    """
    if name not in PRESETS:
        raise KeyError(f"unknown model preset {name!r}; presets: {', '.join(list_models())}")
    preset = copy.deepcopy(PRESETS[name])
    cfg_fields = set(ModelConfig.__dataclass_fields__)
    frontend_args = preset.pop("frontend_args", {})
    if overrides.get("frontend", preset.get("frontend")) != preset.get("frontend"):
        frontend_args = {}  # the preset's frontend settings belong to its own frontend
    frontend_args.update(overrides.pop("frontend_args", {}) or {})
    for key, value in overrides.items():
        if key in cfg_fields:
            preset[key] = value
        else:
            frontend_args[key] = value
    return CRNN(ModelConfig(frontend_args=frontend_args, vocab_size=vocab_size, **preset))

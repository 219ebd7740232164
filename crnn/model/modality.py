"""Modality: what a model reads (audio, video, features or image), decided in one place.

A frontend declares its modality when it registers (``register_frontend(name, modality)``); everything
else (readers, datasets, the exporter, the decoder's time units) asks :func:`modality_of`.
"""
from __future__ import annotations

from typing import Any

MODALITIES = ("audio", "video", "features", "image")


def modality_of(model: Any) -> str:
    """``"audio"``, ``"video"``, ``"features"`` or ``"image"``: what ``model`` (a CRNN, an int8 copy or an
    exported ``OnnxModel``) or a frontend module reads."""
    declared = getattr(model, "modality", None)
    if isinstance(declared, str):
        return declared
    frontend = getattr(model, "frontend", model)
    return getattr(frontend, "modality", "audio")


def is_log_mel(frontend: Any) -> bool:
    """Whether ``frontend`` is the log-mel audio frontend (what streaming and the streaming graph need)."""
    return getattr(frontend, "modality", None) == "audio" and hasattr(frontend, "log_mel")


def forward_only(model: Any) -> bool:
    """Whether every recurrent layer of ``model`` reads left to right only (streamable)."""
    return not model.cfg.bidirectional

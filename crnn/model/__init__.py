"""The model layer: the CRNN (frontend + encoder + head), its presets and config, checkpoints, modality.

It imports no reader, dataset or corpus layout: building a model needs none of them. Names are loaded
on first use, so ``crnn.model.modality`` stays a leaf the frontends can import.
"""
import importlib

_HOMES = {
    "CRNN": "network", "create_model": "network", "list_models": "network",
    "ModelConfig": "presets", "PRESETS": "presets",
    "load_model": "checkpoint", "save_checkpoint": "checkpoint", "read_checkpoint": "checkpoint",
    "CheckpointError": "checkpoint", "model_from_checkpoint": "checkpoint",
    "MODALITIES": "modality", "modality_of": "modality",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'crnn.model' has no attribute {name!r}")

"""Training: the loop, checkpoints, distributed plumbing, cell comparison.

``TrainConfig`` and ``train`` are loaded on first use, so a leaf such as ``crnn.training.distributed``
imports without the trainer.
"""
import importlib

_HOMES = {"TrainConfig": "config", "train": "trainer"}
__all__ = ["TrainConfig", "train"]


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'crnn.training' has no attribute {name!r}")

"""Frontends turn raw input into a feature sequence: ``(x, lengths) -> (features (B, T', D), lengths)``.

Each frontend is registered by name and built from a plain dict of arguments (stored in the model
config), which it turns into its own typed config dataclass.
"""
from __future__ import annotations

from typing import Callable, TypeVar

import torch.nn as nn

_FRONTENDS: dict[str, type[nn.Module]] = {}
T = TypeVar("T", bound=type)


def register_frontend(name: str) -> Callable[[T], T]:
    """Class decorator: make a frontend class available as ``name``."""

    def wrap(cls: T) -> T:
        _FRONTENDS[name] = cls
        cls.frontend_name = name
        return cls

    return wrap


def build_frontend(name: str, args: dict) -> nn.Module:
    """Instantiate the frontend ``name`` from its argument dict."""
    _import_builtins()
    try:
        cls = _FRONTENDS[name]
    except KeyError:
        raise KeyError(f"unknown frontend {name!r}; registered: {', '.join(list_frontends())}") from None
    return cls.from_args(args)


def list_frontends() -> list[str]:
    _import_builtins()
    return sorted(_FRONTENDS)


def _import_builtins() -> None:
    from crnn.frontends import audio  # noqa: F401

    try:
        from crnn.frontends import video  # noqa: F401
    except ImportError:  # pragma: no cover - optional until the video frontend lands
        pass

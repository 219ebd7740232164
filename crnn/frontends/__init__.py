"""Frontends turn raw input into a feature sequence: ``(x, lengths) -> (features (B, T', D), lengths)``.

Each frontend is registered by name with the modality it reads (``audio``, ``video`` or ``features``)
and built from a plain dict of arguments (stored in the model config), which it turns into its own
typed config dataclass. The modality picks the file reader (``crnn.data.media.make_reader``), the
dataset and the decoding path, so a plugin frontend trains, decodes and evaluates through the CLI.
"""
from __future__ import annotations

from dataclasses import fields
from typing import Callable, TypeVar

import torch.nn as nn

from crnn.model.modality import MODALITIES
from crnn.registry import Registry

T = TypeVar("T", bound=type)


def _import_builtins() -> None:
    from crnn.frontends import audio, image, video  # noqa: F401


FRONTENDS: Registry[type[nn.Module]] = Registry("frontend", builtins=_import_builtins)


def register_frontend(name: str, modality: str = "audio") -> Callable[[T], T]:
    """Class decorator: make a frontend class available as ``name``, reading ``modality`` inputs.

    The class needs ``from_args(dict)``, ``output_size``, ``output_lengths(lengths)`` and
    ``forward(x, lengths) -> (features (B, T', D), lengths)``; audio frontends read ``sample_rate``
    from their arguments (default 16000).
    """
    if modality not in MODALITIES:
        raise ValueError(f"frontend {name!r}: modality must be one of {', '.join(MODALITIES)}, got {modality!r}")

    def wrap(cls: T) -> T:
        FRONTENDS.register(name, cls)
        cls.frontend_name = name
        cls.modality = modality
        return cls

    return wrap


class FrontendArgumentError(TypeError, ValueError):
    """An argument a frontend's config does not have (a TypeError, as a bad keyword is, and a ValueError)."""


def config_from_args(config_cls: type, name: str, args: dict):
    """The frontend ``name``'s typed config from its argument dict; an unknown argument is refused by name."""
    known = {f.name for f in fields(config_cls)}
    unknown = set(args) - known
    if unknown:
        raise FrontendArgumentError(f"unknown {name} frontend arguments: {sorted(unknown)}; each unknown argument "
                                    f"is refused, not ignored (known: {sorted(known)})")
    return config_cls(**args)


def frontend_class(name: str) -> type[nn.Module]:
    return FRONTENDS.get(name)


def frontend_modality(name: str) -> str:
    """The modality the frontend ``name`` reads."""
    return frontend_class(name).modality


def build_frontend(name: str, args: dict) -> nn.Module:
    """Instantiate the frontend ``name`` from its argument dict."""
    return frontend_class(name).from_args(args)


def list_frontends() -> list[str]:
    return FRONTENDS.names()


# What a file reader needs from a frontend of each modality to feed it (resampling, frame rate, size).
READER_ARGS = {"audio": ("sample_rate",), "video": ("fps", "height", "width", "crop_margin"), "features": ("fps",), "image": ("height", "channels")}
REQUIRED_READER_ARGS = {"audio": ("sample_rate",)}


def reader_args(frontend: nn.Module) -> dict:
    """The settings a reader needs to feed ``frontend``, read from the frontend itself: its attribute,
    else its ``cfg`` field (so a subclass or plugin inherits its defaults; the preset's argument dict
    is not consulted). Settings a frontend does not have are left out; a required one that is missing
    raises ValueError naming the frontend and the setting.
    """
    modality = getattr(frontend, "modality", "audio")
    cfg = getattr(frontend, "cfg", None)
    out = {}
    for key in READER_ARGS.get(modality, ()):
        value = getattr(frontend, key, None)
        if value is None and cfg is not None:
            value = getattr(cfg, key, None)
        if value is not None:
            out[key] = value
    missing = [k for k in REQUIRED_READER_ARGS.get(modality, ()) if k not in out]
    if missing:
        name = getattr(frontend, "frontend_name", type(frontend).__name__)
        raise ValueError(f"frontend {name!r} ({modality}) has no {', '.join(missing)}: give the class a "
                         f"{missing[0]!r} attribute (or config field), or pass --frontend-arg {missing[0]}=VALUE")
    return out

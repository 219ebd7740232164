"""Shipped models: trained weights inside the package, usable by name with no training and no download.

Each model is a slim checkpoint (``<name>.pt``: config, vocabulary and fp16 weights, no optimizer state)
with its model card (``<name>.md``: data, licence, the recipe command that made it, its measured table).
``models.json`` lists them; :data:`MODELS` is their registry::

    crnn models                                   # the list, with modality, size, data, licence, figures
    crnn decode --model dtmf-keys call.wav        # any command that reads a model takes a name
    crnn.load_model("dtmf-keys")                  # in Python
    crnn train --init-from dtmf-keys ...          # fine-tune on one's own data

Shipped language models (``<name>.arpa.gz`` with its card ``<name>.md``, listed in ``language_models.json``,
registry :data:`LANGUAGE_MODELS`) are used by name where a decoder takes an LM file::

    crnn decode --model textlines-en --beam 8 --lm chars-en line.png
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from crnn.registry import Registry

HERE = Path(__file__).resolve().parent
INDEX = HERE / "models.json"
LM_INDEX = HERE / "language_models.json"


@dataclass(frozen=True)
class ShippedFile:
    """A file shipped in this folder (``<name><SUFFIX>``) with its card (``<name>.md``)."""

    SUFFIX: ClassVar[str] = ""
    name: str

    @property
    def path(self) -> Path:
        return HERE / f"{self.name}{self.SUFFIX}"

    @property
    def card(self) -> Path:
        return HERE / f"{self.name}.md"

    @property
    def size_bytes(self) -> int:
        return self.path.stat().st_size if self.path.is_file() else 0


@dataclass(frozen=True)
class ShippedModel(ShippedFile):
    SUFFIX: ClassVar[str] = ".pt"
    modality: str            # audio | video | features | image
    description: str         # one line: what it reads and writes
    data: str                # what it was trained on
    licence: str             # of the weights (a dataset's share-alike licence carries over)
    recipe: str              # the command(s) that made it
    figures: dict = field(default_factory=dict)  # test set -> measured figure, as printed by crnn models


@dataclass(frozen=True)
class ShippedLanguageModel(ShippedFile):
    SUFFIX: ClassVar[str] = ".arpa.gz"
    unit: str                # char | word: what the n-grams count
    description: str         # one line: what text it models, for which models
    data: str                # what text it was estimated on
    licence: str
    recipe: str              # the command(s) that made it
    figures: dict = field(default_factory=dict)  # test set -> measured figure with it


def _register_listed(index: Path, kind: type[ShippedFile], registry: Registry) -> None:
    """Register each row of ``index`` whose file is in this build (one listed but not shipped is left out)."""
    if not index.is_file():
        return
    for row in json.loads(index.read_text(encoding="utf-8")):
        item = kind(**row)
        if item.path.is_file():
            registry.register(item.name, item)


MODELS: Registry[ShippedModel] = Registry(
    "shipped model", builtins=lambda: _register_listed(INDEX, ShippedModel, MODELS))
LANGUAGE_MODELS: Registry[ShippedLanguageModel] = Registry(
    "shipped language model", builtins=lambda: _register_listed(LM_INDEX, ShippedLanguageModel, LANGUAGE_MODELS))


def list_shipped() -> list[ShippedModel]:
    """The shipped models, in the order ``models.json`` lists them."""
    return [m for _, m in MODELS.items()]


def list_language_models() -> list[ShippedLanguageModel]:
    """The shipped language models, in the order ``language_models.json`` lists them."""
    return [m for _, m in LANGUAGE_MODELS.items()]


def _looks_like_path(text: str) -> bool:
    """A folder separator or a file suffix: the user meant a file, not a shipped name."""
    return "/" in text or "\\" in text or bool(Path(text).suffix)


def resolve_language_model(source: str | Path) -> Path:
    """An LM file path as given, or the file of the shipped language model that ``source`` names.

    A path that exists wins; anything that looks like a path is returned as it is, for the reader to report
    as missing. A bare name that is not a shipped language model raises ValueError naming it and the
    shipped names (or saying that it is a recognition model)."""
    path = Path(source)
    text = str(source)
    if path.exists() or _looks_like_path(text):
        return path
    if text in LANGUAGE_MODELS:
        return LANGUAGE_MODELS.get(text).path
    if text in MODELS:
        raise ValueError(f"{text}: a shipped recognition model, not a language model "
                         f"(shipped language models: {', '.join(LANGUAGE_MODELS.names()) or 'none'})")
    raise ValueError(f"{text}: no such language model file; {LANGUAGE_MODELS.unknown(text)}")


def resolve_checkpoint(source: str | Path) -> Path:
    """A checkpoint path as given, or the file of the shipped model that ``source`` names.

    A path that exists wins over a model of the same name; anything else is returned as it is, for the
    reader to report as missing (:func:`missing_hint` adds the shipped names to that message).
    """
    path = Path(source)
    if path.exists() or str(source) not in MODELS:
        return path
    return MODELS.get(str(source)).path


def missing_hint(source: str | Path) -> str:
    """What to add to a 'no such checkpoint' message: the shipped names when ``source`` looks like one."""
    text = str(source)
    if text in LANGUAGE_MODELS:
        return f" ({text} is a shipped language model: give it to --lm)"
    if _looks_like_path(text):
        return ""
    return f" (not a file; {MODELS.unknown(text)})"


def write_shipped(checkpoint: str | Path, name: str, out_dir: str | Path = HERE, precision: str = "fp16") -> Path:
    """Write ``checkpoint`` as a shipped model ``<out_dir>/<name>.pt``: config, tokenizer and trained
    parameters in ``precision`` ("fp16", loaded back as fp32, or "fp32" where the halving costs a
    measurable error), fixed buffers (DFT basis, filterbank, statistics) as they are, the training state
    dropped; written atomically."""
    import torch

    from crnn.model.checkpoint import model_from_checkpoint, read_checkpoint, write_checkpoint

    ckpt = read_checkpoint(checkpoint)
    params = {name for name, _ in model_from_checkpoint(ckpt, str(checkpoint)).named_parameters()}
    if precision not in ("fp16", "fp32"):
        raise ValueError(f"precision must be fp16 or fp32, not {precision!r}")
    store = torch.float16 if precision == "fp16" else torch.float32
    state = {k: (v.to(store) if k in params else v) for k, v in ckpt["state_dict"].items()}
    slim = {key: ckpt[key] for key in ckpt if key not in ("train_state", "state_dict")}
    slim["state_dict"] = state
    slim["train_state"] = {"shipped_from": str(checkpoint), "epoch": ckpt.get("train_state", {}).get("epoch")}
    return write_checkpoint(Path(out_dir) / f"{name}.pt", slim)

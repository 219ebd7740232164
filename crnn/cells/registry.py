"""Registry of recurrent layers, chosen by name (``get_cell("gru")``) or passed as a class.

Every registered class builds ONE recurrent layer and follows the layer contract:

    layer = cls(input_size: int, hidden_size: int, bidirectional: bool = True)
    layer.output_size                      # hidden_size * (2 if bidirectional else 1)
    y, lengths, state = layer(x, lengths, state=None)
        x: (B, T, input_size), lengths: (B,) int64 on any device
        y: (B, T, output_size), zero at padded frames
        state: cell-specific carried state for streaming (None starts from zeros)

Padding never changes the valid outputs; the reverse direction runs backwards *within* each length.
"""
from __future__ import annotations

from typing import Callable, TypeVar

import torch.nn as nn

from crnn.registry import Registry

CELLS: Registry[type[nn.Module]] = Registry("cell")

T = TypeVar("T", bound=type)


def register_cell(name: str) -> Callable[[T], T]:
    """Class decorator: make a recurrent layer class available as ``name``.

    Re-registering a name replaces the previous class (so a user can override a built-in).
    """

    def wrap(cls: T) -> T:
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise TypeError(f"register_cell({name!r}) expects an nn.Module subclass, got {cls!r}")
        CELLS.register(name, cls)
        cls.cell_name = name
        return cls

    return wrap


def get_cell(cell: str | type[nn.Module]) -> type[nn.Module]:
    """Return the layer class for a registered name, or ``cell`` itself when it is a class."""
    return cell if isinstance(cell, type) else CELLS.get(cell)


def list_cells() -> list[str]:
    """Names of all registered recurrent cells, sorted."""
    return CELLS.names()

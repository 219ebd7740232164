"""The one registry behind every named choice: cells, frontends, readers, corpus layouts, built-in tasks
and shipped models.

A :class:`Registry` maps names (and aliases) to objects in registration order, lists them, loads the
built-in entries on first use, and answers an unknown name with the close matches and the full list::

    CELLS = Registry("cell", builtins=lambda: importlib.import_module("crnn.cells.torch_rnn"))

    @CELLS.register("gru", aliases=("cudnn_gru",))
    class GRULayer(nn.Module): ...

    CELLS.get("gru")   # GRULayer;   CELLS.get("gruu") -> UnknownNameError: unknown cell 'gruu'; did you mean 'gru'?
"""
from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError, ValueError):
    """A name no registry entry has; the message lists the close matches and every registered name.

    A KeyError (a lookup) and a ValueError (a bad argument) alike, so callers may catch either."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
    """Named objects of one kind.

    Args:
        kind: what an entry is, for messages ("cell", "frontend", ...).
        builtins: called once, before the first lookup or listing, to import the modules that register
            the built-in entries (so defining the registry imports none of them). (Default: None)
    """

    def __init__(self, kind: str, builtins: Callable[[], None] | None = None):
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}
        self._builtins = builtins

    def register(self, name: str, entry: T | None = None, *, aliases: tuple[str, ...] = ()):
        """Add ``entry`` under ``name`` (and ``aliases``); used bare, a decorator. A name registered again
        replaces the earlier entry, so a user can override a built-in."""
        if entry is None:
            return lambda obj: self.register(name, obj, aliases=aliases)
        self._entries[name] = entry
        for alias in aliases:
            self._aliases[alias] = name
        return entry

    def unregister(self, name: str) -> T:
        """Remove ``name`` and its aliases (a test's or a plugin's temporary entry); returns the entry."""
        entry = self._entries.pop(self.canonical(name))
        self._aliases = {a: n for a, n in self._aliases.items() if n != name}
        return entry

    def _load_builtins(self) -> None:
        if self._builtins is not None:
            load, self._builtins = self._builtins, None
            load()

    def canonical(self, name: str) -> str:
        """The registered name that ``name`` (a name or an alias) stands for; UnknownNameError if none."""
        self._load_builtins()
        if name in self._entries:
            return name
        if name in self._aliases:
            return self._aliases[name]
        raise self.unknown(name)

    def get(self, name: str) -> T:
        return self._entries[self.canonical(name)]

    def __contains__(self, name: object) -> bool:
        self._load_builtins()
        return name in self._entries or name in self._aliases

    def names(self) -> list[str]:
        """Registered names, sorted (aliases left out)."""
        self._load_builtins()
        return sorted(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        """(name, entry) in registration order."""
        self._load_builtins()
        return iter(list(self._entries.items()))

    def unknown(self, name: str) -> UnknownNameError:
        known = list(self._entries) + list(self._aliases)
        close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        return UnknownNameError(f"unknown {self.kind} {name!r}{hint} (registered {self.kind}s: "
                                f"{', '.join(sorted(self._entries)) or 'none'})")

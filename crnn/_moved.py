"""Module paths of earlier layouts, kept importable: ``import crnn.export`` loads ``crnn.deploy`` under
both names (the same module object, so an attribute patched through either name is seen by both)."""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

_ALIASES: dict[str, str] = {}


def alias_modules(mapping: dict[str, str]) -> None:
    """Make each old full module name import the module at the new full name."""
    _ALIASES.update(mapping)
    if not any(isinstance(f, _MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedModuleFinder())


class _MovedModuleFinder(importlib.abc.MetaPathFinder):
    @staticmethod
    def find_spec(fullname, path=None, target=None):
        new = _ALIASES.get(fullname)
        if new is None:
            return None
        module = importlib.import_module(new)
        return importlib.util.spec_from_loader(fullname, _AliasLoader(module))


class _AliasLoader(importlib.abc.Loader):
    """Hands the import system the already-loaded module instead of a new one."""

    def __init__(self, module):
        self.module, self.spec = module, module.__spec__

    def create_module(self, spec):
        return self.module

    def exec_module(self, module):
        module.__spec__ = self.spec  # the import system set the alias's spec: keep the module's own

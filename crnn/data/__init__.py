"""Data: readers per modality, corpus layouts, built-in tasks, manifests, batching.

Layout: ``audio/``, ``video/`` (one package per modality: reader, dataset, augmentation), ``corpora/``
(corpus layouts, each registering itself with the manifest reader), ``builtin/`` (generated tasks);
here: ``media`` (suffix -> modality, the reader registry), ``manifest``, ``build`` (a run's data),
``collate``, ``sampler``, ``files``, ``errors``.

Importing any ``crnn.data`` module imports the modality packages and the corpus layouts first, so
their readers and layouts are registered before anything asks for them.
"""
import sys as _sys

from crnn.data import audio, corpora, image, video  # noqa: F401  (registration)

# Module paths of the earlier flat layout, kept importable.
_MOVED = {
    "audio_blocks": "audio.blocks", "audio_dataset": "audio.dataset", "augment": "audio.augment",
    "video_dataset": "video.dataset", "video_augment": "video.augment",
    "librispeech": "corpora.librispeech", "phoenix": "corpora.phoenix", "breakfast": "corpora.breakfast",
    "dtmf": "builtin.dtmf", "actions": "builtin.actions", "action_scenes": "builtin.action_scenes",
}


def __getattr__(name: str):
    if name in _MOVED:
        import importlib

        return importlib.import_module(f"crnn.data.{_MOVED[name]}")
    raise AttributeError(f"module 'crnn.data' has no attribute {name!r}")


class _MovedModuleFinder:
    """``import crnn.data.augment`` (an old path) loads ``crnn.data.audio.augment`` under both names."""

    @staticmethod
    def find_spec(fullname, path=None, target=None):
        prefix, _, leaf = fullname.rpartition(".")
        if prefix != __name__ or leaf not in _MOVED:
            return None
        import importlib
        import importlib.util

        module = importlib.import_module(f"{__name__}.{_MOVED[leaf]}")
        return importlib.util.spec_from_loader(fullname, _AliasLoader(module))


class _AliasLoader:
    """Hands the import system the already-loaded module instead of a new one."""

    def __init__(self, module):
        self.module, self.spec = module, module.__spec__

    def create_module(self, spec):
        return self.module

    def exec_module(self, module):
        module.__spec__ = self.spec  # the import system set the alias's spec: keep the module's own


_sys.meta_path.append(_MovedModuleFinder())

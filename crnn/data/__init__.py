"""Data: readers per modality, corpus layouts, built-in tasks, manifests, batching.

Layout: ``audio/``, ``video/`` (one package per modality: reader, dataset, augmentation), ``corpora/``
(corpus layouts, each registering itself with the manifest reader), ``builtin/`` (generated tasks);
here: ``media`` (suffix -> modality, the reader registry), ``manifest``, ``build`` (a run's data),
``collate``, ``sampler``, ``files``, ``errors``.

Importing any ``crnn.data`` module imports the modality packages and the corpus layouts first, so
their readers and layouts are registered before anything asks for them.
"""
from crnn._moved import alias_modules
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


alias_modules({f"{__name__}.{old}": f"{__name__}.{new}" for old, new in _MOVED.items()})

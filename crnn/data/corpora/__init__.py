"""Corpus layouts, one module each; every layout turns its files into manifest rows
``{path, text, id, [offset], [duration], ...}``.

Layouts the manifest reader detects (``--manifest-format``), each registering itself with
``crnn.data.manifest.register_layout`` when imported here, in detection order: ``kaldi``,
``audiofolder``, ``librispeech``, ``commonvoice``, ``wenet``, ``fsdd`` (Free Spoken Digit Dataset). Row builders for video corpora:
:func:`phoenix_rows` (RWTH-PHOENIX-Weather 2014), :func:`breakfast_rows` (Breakfast-style features).
"""
from crnn.data.corpora import kaldi, audiofolder, librispeech, commonvoice, wenet, fsdd, ocr_gt  # noqa: F401  (registration order)
from crnn.data.corpora.breakfast import breakfast_rows
from crnn.data.corpora.phoenix import phoenix_rows

__all__ = ["breakfast_rows", "phoenix_rows"]

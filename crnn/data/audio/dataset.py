"""Speech dataset over manifest rows: file -> mono waveform at the model's rate -> token ids.

Transcript policies live in ``crnn.tokenizer`` (``--text-norm``); ``speech_tokenizer`` names the
``english`` one: Unicode NFKC, lower case, keep only ``a-z``, the apostrophe and the space.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch.utils.data import Dataset

from crnn.data.audio.reader import AudioReadError, audio_duration, read_audio
from crnn.data.collate import BadSample, encode_transcript
from crnn.tokenizer import Tokenizer

def speech_tokenizer(transcripts: Sequence[str]) -> Tokenizer:
    """Character vocabulary of English speech transcripts (the ``english`` text policy)."""
    from crnn.tokenizer import build_tokenizer

    return build_tokenizer(transcripts, "char", "english")


def stretch_of(row: dict[str, Any]) -> tuple[float | None, float | None]:
    """``(offset, duration)`` to read for a row: a stretch when the row has an ``offset`` (NeMo's
    convention, Kaldi segments), else ``(None, None)``: the whole file (``duration`` alone is taken as
    the file's length, metadata only)."""
    if row.get("offset") is None:
        return None, None
    duration = row.get("duration")
    return float(row["offset"]), None if duration is None else float(duration)


class AudioDataset(Dataset):
    """Manifest rows -> items ``{signal (S,) float32, tokens (L,) long, text, path}``.

    Args:
        entries: rows with ``path`` and ``text`` (``read_manifest`` output); ``duration`` is used
            for ``lengths()`` when present.
        tokenizer: maps the transcript to token ids; ``text`` in items is its normalised form, so
            error rates compare like with like.
        sample_rate: the model's sample rate; every file is resampled to it.
        augment: waveform augmentation applied to each read signal (training only). (Default: None)

    A file that cannot be read (including one with non-finite samples), a transcript with a symbol
    outside the vocabulary, or a noise file the augmentation cannot read yields a
    ``BadSample(path, reason)`` that the collate function skips and counts.
    """

    def __init__(
        self,
        entries: Sequence[dict[str, Any]],
        tokenizer: Tokenizer,
        sample_rate: int,
        augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        self.entries = list(entries)
        self.tokenizer = tokenizer
        self.sample_rate = sample_rate
        self.augment = augment
        self._lengths: list[int] | None = None
        if hasattr(augment, "bind_speech_source"):  # competing speech mixes in other items of this dataset
            augment.bind_speech_source(self.random_signal)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> dict[str, Any] | BadSample:
        row = self.entries[index]
        path = row["path"]
        tokens = encode_transcript(self.tokenizer, row)
        if isinstance(tokens, BadSample):
            return tokens
        try:
            signal = read_audio(path, self.sample_rate, *stretch_of(row))  # (S,)
        except AudioReadError as e:
            return BadSample(path, e.reason)
        if self.augment is not None:
            try:
                signal = self.augment(signal)
            except AudioReadError as e:  # a bad noise file: named, and this draw skipped
                return BadSample(path, f"augmentation: {e}")
        text = self.tokenizer.normalize(row["text"]) if self.tokenizer.units != "label" else row["text"]
        return {"signal": signal, "tokens": torch.tensor(tokens, dtype=torch.long), "text": text, "path": path}

    def random_signal(self, generator: torch.Generator | None = None, tries: int = 3) -> torch.Tensor | None:
        """A random item's waveform (S,) at ``sample_rate``, unaugmented; None if ``tries`` picks fail to read."""
        for _ in range(tries if self.entries else 0):
            row = self.entries[int(torch.randint(len(self.entries), (), generator=generator))]
            try:
                return read_audio(row["path"], self.sample_rate)
            except AudioReadError:
                continue
        return None

    def durations(self) -> list[float]:
        """Seconds per item: the manifest's ``duration`` or the file header (0.0 when unreadable)."""
        out = []
        for row in self.entries:
            if row.get("duration") is not None:
                out.append(float(row["duration"]))
                continue
            try:
                out.append(max(0.0, audio_duration(row["path"]) - float(row.get("offset") or 0.0)))
            except AudioReadError:
                out.append(0.0)  # the item itself becomes a BadSample when read
        return out

    def lengths(self) -> list[int]:
        """Approximate samples per item at ``sample_rate`` (for ``BucketBatchSampler``); cached."""
        if self._lengths is None:
            self._lengths = [int(round(d * self.sample_rate)) for d in self.durations()]
        return self._lengths

"""Text-line dataset over manifest rows: image file -> float32 (C, H, W) at the model's height -> char ids.

Rows (``crnn.data.manifest.read_manifest`` output) hold ``path`` and ``text``; ``width`` and ``height``
(the file's size in pixels), when present, give the width the line has at the model's height without
opening the file (length bucketing, the CTC feasibility pre-scan).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch.utils.data import Dataset

from crnn.data.collate import BadSample, encode_transcript
from crnn.data.image.reader import ImageReadError, read_line_image
from crnn.tokenizer import Tokenizer


def scaled_width(row: dict[str, Any], height: int) -> int | None:
    """The row's width in pixels once resized to ``height`` (aspect kept), from its ``width``/``height``
    fields; None when the row does not say."""
    w, h = row.get("width"), row.get("height")
    if not w or not h:
        return None
    return max(1, round(float(w) * height / float(h)))


class LineImageDataset(Dataset):
    """Manifest rows -> items ``{signal float32 (C, H, W), tokens (L,), text, path}``.

    Args:
        entries: rows with ``path`` and ``text``.
        tokenizer: maps the transcript to ids (case and punctuation as the tokenizer's policy keeps them).
        reader_args: the model's reader settings (``height``, ``channels``: ``CRNN.reader_args``).
        augment: ``(image (C, H, W), generator) -> image`` applied in training. (Default: None)
        seed: base seed of the augmentation. (Default: 0)

    A file that cannot be read, or a transcript with a symbol outside the vocabulary, yields
    ``BadSample(path, reason)``, which the batch skips and counts.
    """

    def __init__(self, entries: Sequence[dict[str, Any]], tokenizer: Tokenizer, reader_args: dict,
                 augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None, seed: int = 0):
        self.entries = list(entries)
        self.tokenizer = tokenizer
        self.height = int(reader_args.get("height", 32))
        self.channels = int(reader_args.get("channels", 1))
        self.augment, self.seed = augment, seed
        self.epoch = 0
        self._lengths: list[int] | None = None

    def __len__(self) -> int:
        return len(self.entries)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, index: int) -> dict[str, Any] | BadSample:
        row = self.entries[index]
        path = str(row["path"])
        tokens = encode_transcript(self.tokenizer, row)
        if isinstance(tokens, BadSample):
            return tokens
        try:
            image = read_line_image(path, height=self.height, channels=self.channels)  # (C, H, W)
        except ImageReadError as e:
            return BadSample(path, e.reason)
        if self.augment is not None:
            image = self.augment(image, torch.Generator().manual_seed(hash((self.seed, self.epoch, index)) % 2**62))
        text = self.tokenizer.normalize(row["text"])
        return {"signal": image, "tokens": torch.tensor(tokens, dtype=torch.long), "text": text, "path": path}

    def lengths(self) -> list[int]:
        """Width in pixels at the model's height per item (for ``BucketBatchSampler``): from the row's
        ``width``/``height``, else the file's header (0 when unreadable); cached."""
        if self._lengths is None:
            from PIL import Image

            out = []
            for row in self.entries:
                w = scaled_width(row, self.height)
                if w is None:
                    try:
                        with Image.open(row["path"]) as im:
                            w = scaled_width({"width": im.width, "height": im.height}, self.height)
                    except Exception:  # the item itself becomes a BadSample when read
                        w = 0
                out.append(int(w or 0))
            self._lengths = out
        return self._lengths

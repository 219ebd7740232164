"""Batching: pad signals and labels, keep lengths, skip and count bad samples."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class BadSample:
    """Returned by a dataset instead of an item it could not read: the batch skips it and counts it."""

    path: str
    reason: str


def encode_transcript(tokenizer, row: dict) -> list[int] | BadSample:
    """A manifest row's token ids, or the ``BadSample`` naming its file when a symbol is not in the vocabulary."""
    from crnn.tokenizer import UnknownSymbolError

    try:
        return tokenizer.encode(row["text"])
    except UnknownSymbolError as e:
        return BadSample(str(row["path"]), f"transcript {row['text']!r}: {e}")


@dataclass
class Batch:
    """A padded batch.

    Attributes:
        x: (B, S) audio, (B, T, C, H, W) video frames, (B, T, D) features or (B, C, H, W) text-line
            images (padded on the right), zero-padded.
        x_lens: (B,) valid samples/frames/pixel columns.
        y: (B, L) label ids padded with 0 (blank never appears in labels).
        y_lens: (B,) label lengths.
        texts: reference transcripts.
        paths: source of each item.
        skipped: bad samples dropped from this batch.
        frame_labels: per item, ground-truth label ids of its input frames (T_i,) where the data has them
            (video/feature corpora with frame-level annotation), else None.
    """

    x: torch.Tensor
    x_lens: torch.Tensor
    y: torch.Tensor
    y_lens: torch.Tensor
    texts: list[str]
    paths: list[str]
    skipped: list[BadSample] = field(default_factory=list)
    frame_labels: list[torch.Tensor] | None = None

    def __len__(self) -> int:
        return len(self.texts)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Batch":
        return Batch(
            self.x.to(device, non_blocking=non_blocking), self.x_lens.to(device, non_blocking=non_blocking),
            self.y.to(device, non_blocking=non_blocking), self.y_lens.to(device, non_blocking=non_blocking),
            self.texts, self.paths, self.skipped, self.frame_labels,
        )

    def pin_memory(self) -> "Batch":
        return Batch(self.x.pin_memory(), self.x_lens.pin_memory(), self.y.pin_memory(), self.y_lens.pin_memory(),
                     self.texts, self.paths, self.skipped, self.frame_labels)


def time_dim(signal: torch.Tensor) -> int:
    """The axis a signal grows along: the last for a text-line image (C, H, W), else the first
    (audio (S,), frames (T, C, H, W), features (T, D))."""
    return -1 if signal.dim() == 3 else 0


def pad_stack(tensors: list[torch.Tensor], dim: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad tensors along ``dim`` (0 or -1) to the longest: list of (N_i, ...) -> (B, N_max, ...), or list of
    (..., N_i) -> (B, ..., N_max); lengths (B,)."""
    lengths = torch.tensor([t.shape[dim] for t in tensors], dtype=torch.long)
    if dim == 0:
        out = tensors[0].new_zeros((len(tensors), int(lengths.max()), *tensors[0].shape[1:]))
        for i, t in enumerate(tensors):
            out[i, : t.shape[0]] = t
        return out, lengths
    if dim != -1:
        raise ValueError(f"pad_stack pads along dim 0 or -1, got {dim}")
    out = tensors[0].new_zeros((len(tensors), *tensors[0].shape[:-1], int(lengths.max())))
    for i, t in enumerate(tensors):
        out[i, ..., : t.shape[-1]] = t
    return out, lengths


def collate(items: list) -> Batch | None:
    """Items (dicts with signal, tokens, text, path) or BadSample -> Batch; None if all were bad."""
    good = [it for it in items if not isinstance(it, BadSample)]
    skipped = [it for it in items if isinstance(it, BadSample)]
    if not good:
        return Batch(torch.zeros(0), torch.zeros(0, dtype=torch.long), torch.zeros(0, 0, dtype=torch.long),
                     torch.zeros(0, dtype=torch.long), [], [], skipped)
    x, x_lens = pad_stack([it["signal"] for it in good], time_dim(good[0]["signal"]))
    y, y_lens = pad_stack([torch.as_tensor(it["tokens"], dtype=torch.long) for it in good])
    frame_labels = [it["frame_labels"] for it in good] if all("frame_labels" in it for it in good) else None
    return Batch(x, x_lens, y, y_lens, [it["text"] for it in good], [it["path"] for it in good], skipped,
                 frame_labels)

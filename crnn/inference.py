"""Batch inference over files: read (in worker processes), run the model, decode, keep going on bad files."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from crnn.data.collate import BadSample, collate
from crnn.decoding.hypothesis import Hypothesis
from crnn.model import CRNN

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".m4a", ".aac", ".opus", ".webm", ".aiff", ".aif"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".webm", ".mov", ".npy"}


@dataclass
class FileResult:
    """What decoding one file gave: n-best hypotheses (best first), or the error that stopped it."""

    path: str
    hypotheses: list[Hypothesis] | None = None
    error: str | None = None
    duration: float | None = None  # seconds of input (audio)


class FileDataset(Dataset):
    """Paths -> item dicts through ``load(path) -> tensor``; a failure becomes a BadSample naming the file."""

    def __init__(self, paths: list[str], load: Callable[[str], torch.Tensor]):
        self.paths, self.load = paths, load

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        path = self.paths[i]
        try:
            signal = self.load(path)
        except Exception as e:  # every reader error becomes a per-file message, never a crash
            reason = str(e)
            return BadSample(path, reason if path in reason else f"{path}: {reason}")
        return {"signal": signal, "tokens": torch.zeros(0, dtype=torch.long), "text": "", "path": path}


def expand_inputs(inputs: list[str], suffixes: set[str]) -> list[str]:
    """Files stay as given (errors are reported later); folders expand to their media files, sorted."""
    out: list[str] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir() and not _is_frame_folder(p):
            out += sorted(str(f) for f in p.rglob("*") if f.is_file() and f.suffix.lower() in suffixes)
        else:
            out.append(item)
    return out


def _is_frame_folder(p: Path) -> bool:
    try:
        return any(f.suffix.lower() in (".png", ".jpg", ".jpeg") for f in list(p.iterdir())[:5])
    except OSError:  # unreadable: the reader reports why
        return True


def input_loader(model: CRNN) -> Callable[[str], torch.Tensor]:
    """The file reader matching the model's frontend."""
    if model.cfg.frontend == "audio":
        from crnn.data.audio import read_audio

        sr = int(model.cfg.frontend_args.get("sample_rate", 16000))
        return _AudioLoader(sr)
    from crnn.data.video_dataset import clip_loader

    return clip_loader(model.cfg)


class _AudioLoader:
    """Picklable reader for DataLoader workers."""

    def __init__(self, sample_rate: int):
        self.sample_rate = sample_rate

    def __call__(self, path: str) -> torch.Tensor:
        from crnn.data.audio import read_audio

        return read_audio(path, self.sample_rate)


class GreedyDecoder:
    """Fallback decoder: best path, text filled in."""

    def __init__(self, tokenizer, frame_shift: float | None):
        self.tokenizer, self.frame_shift = tokenizer, frame_shift

    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[list[Hypothesis]]:
        from crnn.decoding.greedy import ctc_greedy

        hyps = ctc_greedy(log_probs, lengths)
        for h in hyps:
            h.text = self.tokenizer.decode(h.tokens)
        return [[h] for h in hyps]


def transcribe_files(
    model: CRNN, paths: list[str], decoder: Callable | None = None, batch_size: int = 16,
    device: torch.device | str = "cpu", workers: int | None = None,
) -> Iterator[FileResult]:
    """Decode files in input order, yielding one FileResult per path (errors included)."""
    device = torch.device(device)
    decoder = decoder or GreedyDecoder(model.tokenizer, model.frame_shift)
    if workers is None:
        workers = 0 if len(paths) <= batch_size else min(4, os.cpu_count() or 1)
    loader = DataLoader(FileDataset(paths, input_loader(model)), batch_size=batch_size, collate_fn=collate,
                        num_workers=workers, pin_memory=device.type == "cuda")
    sr = model.cfg.frontend_args.get("sample_rate") if model.cfg.frontend == "audio" else None
    model.eval().to(device)
    order = {p: i for i, p in enumerate(paths)}
    pending: dict[int, FileResult] = {}
    next_i = 0
    with torch.inference_mode():
        for batch in loader:
            for bad in batch.skipped:
                pending[order[bad.path]] = FileResult(bad.path, error=bad.reason)
            if len(batch):
                x, x_lens = batch.x.to(device, non_blocking=True), batch.x_lens.to(device)
                log_probs, lens = model(x, x_lens)
                finite = (~torch.isnan(log_probs).flatten(1).any(1)).tolist()  # (B,): NaN = damaged weights
                for path, n, hyps, ok in zip(batch.paths, batch.x_lens.tolist(), decoder(log_probs, lens), finite):
                    pending[order[path]] = (FileResult(path, hyps, duration=n / sr if sr else None) if ok else
                                            FileResult(path, error=f"{path}: the model's outputs are not finite "
                                                       "(NaN: damaged weights?)"))
            while next_i in pending:  # yield in input order
                yield pending.pop(next_i)
                next_i += 1
    while next_i in pending:
        yield pending.pop(next_i)
        next_i += 1

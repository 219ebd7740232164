"""Inputs to batches: each input read (in worker processes) and cut into the pieces to decode, and the
pieces grouped into batches of similar length.

A recording longer than the segmentation threshold is cut into segments (voice activity or fixed
windows, ``crnn.inference.segment``) read one at a time, so memory follows the segment, not the file.
"""
from __future__ import annotations

import os
from typing import Iterator, Sequence, Union

import numpy as np
from torch.utils.data import IterableDataset, get_worker_info

from crnn.data.collate import time_dim
from crnn.inference.segment import EnergyMeter, SegmentOptions, find_segments, fixed_windows
from crnn.model.network import CRNN

# A file path, or in-memory audio as (samples (S,) array or tensor, sample_rate).
Input = Union[str, os.PathLike, tuple]


def input_name(item: Input, index: int) -> str:
    """How an input is named in results and errors: its path, or ``<array N>``."""
    return f"<array {index}>" if isinstance(item, tuple) else str(item)


class InputPieces(IterableDataset):
    """Inputs -> the pieces to decode, as item dicts (each DataLoader worker takes every n-th input).

    Items: ``{"index", "name", "signal" (S,) | None, "k", "n", "segment" (None: the whole input),
    "duration"}``; ``n == 0`` marks an input with nothing to decode (silence), ``{"index", "name",
    "error"}`` one that failed.
    """

    def __init__(self, inputs: Sequence[Input], model: CRNN, segment: SegmentOptions):
        self.inputs = list(inputs)
        self.audio = model.modality == "audio"
        self.sample_rate = model.sample_rate
        self.segment = segment
        self.pixels_per_frame = getattr(model, "pixels_per_frame", None)
        if not self.audio:
            from crnn.data.media import make_reader

            self.load_clip = make_reader(model.modality, model.reader_args)

    def __iter__(self):
        info = get_worker_info()
        wid, n_workers = (info.id, info.num_workers) if info else (0, 1)
        for i, item in enumerate(self.inputs):
            if i % n_workers != wid:
                continue
            name = input_name(item, i)
            try:
                yield from self._pieces(i, name, item)
            except Exception as e:  # every reader error becomes a per-input message, never a crash
                reason = str(e)
                yield {"index": i, "name": name, "error": reason if name in reason else f"{name}: {reason}"}

    def _pieces(self, i: int, name: str, item: Input) -> Iterator[dict]:
        from crnn.data.audio import read_audio
        from crnn.data.audio.blocks import ArraySource, open_audio, to_model_rate

        whole = {"index": i, "name": name, "k": 0, "n": 1, "segment": None}
        if not self.audio:
            if isinstance(item, tuple):
                raise ValueError("in-memory inputs need an audio model")
            signal = self.load_clip(str(item))
            piece = dict(whole, signal=signal, duration=None)
            if self.pixels_per_frame:  # a text line: output frames -> pixel columns of the file as it is
                from crnn.data.image.reader import image_size

                piece["px_per_frame"] = self.pixels_per_frame * image_size(str(item))[1] / signal.shape[-2]
            yield piece
            return
        sr, opts = self.sample_rate, self.segment
        if isinstance(item, tuple):
            if len(item) != 2:
                raise ValueError("in-memory audio is a (samples, sample_rate) pair")
            source = ArraySource(item[0], item[1], name=name)
        elif opts.mode == "none":
            wav = read_audio(item, sr)
            yield dict(whole, signal=wav, duration=wav.numel() / sr)
            return
        else:
            source = open_audio(item, sr)
        limit = opts.auto_above if opts.mode == "auto" else opts.length
        if opts.mode == "none" or source.duration <= limit:
            wav = to_model_rate(source.read(), source.sample_rate, sr) if isinstance(item, tuple) else read_audio(item, sr)
            yield dict(whole, signal=wav, duration=wav.numel() / sr)
            return
        if opts.mode == "fixed":
            segments = fixed_windows(source.duration, opts.length, opts.overlap)
        else:
            meter = EnergyMeter(source.sample_rate)
            energies = np.concatenate([meter.feed(block) for block in source.blocks()])
            segments = find_segments(energies, min_pause=opts.min_pause, max_segment=opts.length,
                                     duration=source.duration)
        if not segments:
            yield {"index": i, "name": name, "signal": None, "k": 0, "n": 0, "segment": None,
                   "duration": source.duration}
        for k, seg in enumerate(segments):
            wav = to_model_rate(source.read(seg.start, seg.end), source.sample_rate, sr)
            yield {"index": i, "name": name, "signal": wav, "k": k, "n": len(segments), "segment": seg,
                   "duration": source.duration}


def length_sorted_batches(items: Iterator[dict], batch_size: int, pool_batches: int = 4) -> Iterator[list[dict]]:
    """Batches of ``batch_size`` items, formed from a pool of ``pool_batches`` batches sorted by length:
    segments of similar length share a batch, so little compute and memory go to padding."""
    pool: list[dict] = []

    def drain():
        pool.sort(key=lambda it: 0 if it.get("signal") is None else it["signal"].shape[time_dim(it["signal"])])
        for i in range(0, len(pool), batch_size):
            yield pool[i:i + batch_size]
        pool.clear()

    for it in items:
        pool.append(it)
        if len(pool) >= batch_size * pool_batches:
            yield from drain()
    yield from drain()

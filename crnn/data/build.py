"""Assembling a run's data: rows, modality, preset, tokenizer, pre-scan, datasets.

The trainer asks this module for everything data-shaped, so ``train()`` holds only setup, the loop,
validation and checkpoints; ``crnn eval`` and ``crnn compare`` build their datasets here too.
"""
from __future__ import annotations

import os
import stat
import sys
from dataclasses import dataclass, field
from typing import Any

from torch.utils.data import Dataset

from crnn.data.media import modality_of_rows
from crnn.data.tasks import TASKS, TaskRequest
from crnn.tokenizer import Tokenizer, UnknownSymbolError

# Preset used when the user names none, per modality of manifest data (built-in tasks name their own).
# Clips get the motion frontend: it reads frames and their differences, and leaves CTC's blank plateau
# where frames alone stay stuck on it (datasets/actions/RESULTS.md).
DEFAULT_PRESET = {"audio": "small", "video": "video_motion_tiny", "features": "features_tiny", "image": "image_tiny"}


class DataError(ValueError):
    """The data of a run cannot be used (mostly bad, empty, or of the wrong modality)."""


@dataclass
class DataBundle:
    train: Dataset
    val: Dataset | None
    tokenizer: Tokenizer
    train_lengths: list[float] | None = None  # per item size for bucketing (None: plain batches)
    val_lengths: list[float] | None = None
    bucket: bool = False  # group items of similar length in batches even without --max-frames
    prescan_skipped: list[str] = field(default_factory=list)  # "path: reason" of rows the pre-scan left out
    prescan_total: int = 0  # training rows before the pre-scan

    @property
    def prescan_bad_share(self) -> float:
        """Share of the training rows the pre-scan found unusable (0 for generated data)."""
        return len(self.prescan_skipped) / self.prescan_total if self.prescan_total else 0.0


def read_rows(source: str | list[str], manifest_format: str | None = None) -> list[dict]:
    """Manifest rows of a file or corpus folder (``crnn.data.manifest.read_manifest``), or of several
    ``"path[:weight]"`` specs (``crnn.data.mixing``): each row then carries ``_source`` (its spec's
    position) and ``_weight``."""
    from crnn.data.manifest import read_manifest
    from crnn.data.mixing import manifest_specs, parse_manifest_spec

    specs = manifest_specs(source)
    if len(specs) == 1 and isinstance(source, str):
        return read_manifest(source, manifest_format)
    rows = []
    for k, spec in enumerate(specs):
        path, weight = parse_manifest_spec(spec)
        rows += [{**row, "_source": k, "_weight": weight} for row in read_manifest(path, manifest_format)]
    return rows


def data_modality(task: str, rows: list[dict] | None, requested: str = "auto") -> str:
    """What the run reads: the user's ``--modality``, else the manifest's file types, else the task's."""
    if requested != "auto":
        return requested
    if rows is not None:
        return modality_of_rows(rows)
    return TASKS.get(task).modality


def resolve_preset(preset: str | None, task: str, modality: str, manifest_data: bool) -> str:
    """The model preset: the user's, else the built-in task's, else the modality's default."""
    if preset:
        return preset
    return DEFAULT_PRESET[modality] if manifest_data else TASKS.get(task).preset


def make_tokenizer(texts: list[str], modality: str, text_norm: str = "auto", units: str = "char",
                   bpe_size: int = 256) -> Tokenizer:
    """The tokenizer policy, in one place (``crnn.tokenizer.build_tokenizer`` does the work).

    Audio transcripts are characters (or SentencePiece units with ``units="bpe"|"unigram"``) under
    the ``text_norm`` policy; with ``"auto"``, plain English transcripts get the english policy and
    anything else (DTMF keys, symbols) is taken as written. Text-line transcripts are characters taken
    as written (``"auto"`` is ``"none"``: case and punctuation are what the image shows). Video and
    feature transcripts are space-separated labels (actions, sign glosses).
    """
    from crnn.tokenizer import build_tokenizer

    if modality == "image":
        return build_tokenizer(texts, "char", "none" if text_norm == "auto" else text_norm, units, bpe_size)
    if modality != "audio":
        return build_tokenizer(texts, "label")
    return build_tokenizer(texts, "char", text_norm, units, bpe_size)


def build_builtin(task: str, train_size: int, val_size: int, seed: int, sample_rate: int | None,
                  reader_args: dict | None = None, **options: Any) -> DataBundle:
    """A built-in task's data (``crnn.data.tasks``): fresh training items each epoch, a fixed validation
    set. ``options`` are the task's own (textlines: ``fonts``, ``text_corpus``; actions: ``clip_augment``,
    ``augment_pixels``)."""
    request = TaskRequest(train_size, val_size, seed, sample_rate, dict(reader_args or {}), options)
    return TASKS.get(task).build(request)


def make_dataset(rows: list[dict], tokenizer: Tokenizer, modality: str, reader_args: dict, train: bool,
                 augment: dict | None = None, clip_augment: Any = None, augment_pixels: bool = True) -> Dataset:
    """Manifest rows -> a dataset of item dicts for the given modality (``clip_augment``: a
    ``crnn.data.video.augment.ClipAugment`` for video training data; ``reader_args``: the model's,
    ``CRNN.reader_args``)."""
    if modality == "audio":
        from crnn.data.audio.dataset import AudioDataset
        from crnn.data.audio.augment import AugmentConfig, WaveAugment

        sr = int(reader_args["sample_rate"])
        aug = WaveAugment(AugmentConfig(**augment), sr) if (train and augment) else None
        return AudioDataset(rows, tokenizer, sr, augment=aug)
    if modality == "image":
        from crnn.data.image.augment import LineAugment
        from crnn.data.image.dataset import LineImageDataset

        return LineImageDataset(rows, tokenizer, reader_args, augment=LineAugment() if train else None)
    from crnn.data.video.dataset import make_video_dataset

    return make_video_dataset(rows, tokenizer, reader_args, train, clip_augment=clip_augment if train else None,
                              augment_pixels=augment_pixels)


def weighted_mix(ds: Dataset, rows: list[dict], verbose: bool = True) -> Dataset:
    """Rows from several weighted manifests (``_source``, ``_weight``) -> a ``WeightedMix`` over ``ds``."""
    from crnn.data.mixing import WeightedMix

    sources = sorted({row["_source"] for row in rows})
    groups = [[i for i, row in enumerate(rows) if row["_source"] == s] for s in sources]
    weights = [rows[g[0]]["_weight"] for g in groups]
    mixed = WeightedMix(ds, groups, weights, dataset_lengths(ds))
    if verbose:
        parts = ", ".join(f"{len(g)} x {w:g}" for g, w in zip(groups, weights))
        print(f"training mix: {parts} -> {len(mixed)} items per epoch", file=sys.stderr)
    return mixed


def dataset_lengths(ds: Dataset) -> list[float] | None:
    """Per-item sizes for length bucketing, where the dataset knows them."""
    fn = getattr(ds, "lengths", None)
    if fn is None:
        return None
    return [float(n) for n in (fn() if callable(fn) else fn)]


def file_problem(path: str) -> str | None:
    """Why ``path`` cannot be read as an input file (a stat, not a decode), or None when it looks readable."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "no such file" if not os.path.islink(path) else "broken symbolic link"
    except PermissionError:
        return "permission denied"
    except OSError as e:  # symlink loops (ELOOP), names too long, ...
        return e.strerror or str(e)
    if stat.S_ISDIR(st.st_mode):
        return None  # frame folders and corpus folders are read as a whole
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file (a FIFO, socket or device)"
    if st.st_size == 0:
        return "empty file"
    if not os.access(path, os.R_OK):
        return "permission denied"
    return None


def prescan(rows: list[dict], tokenizer: Tokenizer, model: Any,
            keep_infeasible: bool = False) -> tuple[list[dict], list[str]]:
    """Drop rows that cannot train: missing/unreadable files (a stat each), unknown symbols, empty
    transcripts, negative durations, and labels that cannot fit the model's output frames under CTC
    (kept with ``keep_infeasible``: evaluation scores them).

    Uses each row's ``duration`` (audio), ``num_frames`` (video/features) or ``width``/``height`` (text-line
    images) where present; rows without
    them are checked batch by batch during training instead.

    Returns:
        (kept rows, one ``"<where>: <reason>"`` line per dropped row)
    """
    import torch

    from crnn.ctc import ctc_min_frames

    keep, skipped = [], []
    seen: dict[tuple, str] = {}
    sr = model.sample_rate
    for i, row in enumerate(rows):
        where = row.get("_where") or f"{row['path']} (item {i + 1})"
        key = (row["path"], row.get("offset"), row.get("duration"), row["text"])
        if key in seen:
            skipped.append(f"{where}: duplicate of {seen[key]}")
            continue
        seen[key] = where
        problem = file_problem(row["path"])
        if problem:
            skipped.append(f"{where}: {row['path']}: {problem}")
            continue
        try:
            tokens = tokenizer.encode(row["text"])
        except UnknownSymbolError as e:
            skipped.append(f"{where}: {e}")
            continue
        if not tokens:
            skipped.append(f"{where}: empty transcript")
            continue
        duration = row.get("duration")
        if duration is not None and float(duration) < 0:
            skipped.append(f"{where}: negative duration {float(duration)} s")
            continue
        size = None
        if sr and duration:
            size = int(float(duration) * sr)
        elif row.get("num_frames"):
            size = int(row["num_frames"])
        elif model.modality == "image":
            from crnn.data.image.dataset import scaled_width

            size = scaled_width(row, int(model.reader_args.get("height", 32)))
        if size is not None and not keep_infeasible:
            have = int(model.output_lengths(torch.tensor([size]))[0])
            need = ctc_min_frames(tokens)
            if need > have:
                skipped.append(f"{where}: label needs {need} frames under CTC, input gives {have}")
                continue
        keep.append(row)
    return keep, skipped


def rare_symbols(tokenizer: Tokenizer, texts: list[str], min_count: int = 3) -> dict[str, int]:
    """Output classes seen fewer than ``min_count`` times in the training transcripts (symbol -> count):
    a model cannot learn them, and they are often typos or stray characters."""
    from collections import Counter

    counts: Counter = Counter()
    for text in texts:
        try:
            counts.update(tokenizer.encode(text))
        except UnknownSymbolError:
            continue
    rare = {}
    reserved = tokenizer.reserved_ids
    for i in range(1, len(tokenizer)):
        if counts[i] < min_count and i not in reserved:
            rare[tokenizer.decode([i]) or f"<id {i}>"] = counts[i]
    return rare


def check_bad_fraction(bad: int, total: int, max_fraction: float, what: str, examples: list[str],
                       earlier_share: float = 0.0, earlier: str = "") -> None:
    """Stop a run whose data is mostly bad: more than ``max_fraction`` of it unusable.

    ``bad`` of ``total`` items failed in this phase (the pre-scan, or loading in an epoch), after an earlier
    phase had already left out ``earlier_share`` of the data (``earlier`` says which): the run's share is
    ``1 - (1 - earlier_share) * (1 - bad / total)``, so bad data split across phases counts as a whole.
    """
    lines = "".join(f"\n  {e}" for e in examples[:5])
    if total == 0 or bad == total:
        raise DataError(f"{what}: no usable item ({bad} of {total} unusable){lines}")
    share = 1 - (1 - earlier_share) * (1 - bad / total)
    if share > max_fraction:
        limit = f"--max-bad-fraction {100 * max_fraction:.0f}%"
        if not earlier_share:
            raise DataError(f"{what}: {bad} of {total} items unusable ({100 * share:.0f}% > {limit}); "
                            f"first ones:{lines}")
        raise DataError(f"{what}: {bad} of {total} items unusable while loading, after {earlier} left out "
                        f"{100 * earlier_share:.0f}% of the rows: {100 * share:.0f}% of the training data in all "
                        f"> {limit}; first ones:{lines}")


def report_skipped(skipped: list[str], what: str, limit: int = 20) -> None:
    if not skipped:
        return
    print(f"{what}: skipping {len(skipped)} item(s):", file=sys.stderr)
    for line in skipped[:limit]:
        print(f"  {line}", file=sys.stderr)
    if len(skipped) > limit:
        print(f"  ... and {len(skipped) - limit} more", file=sys.stderr)


def manifest_data(rows: list[dict], val_rows: list[dict] | None, tokenizer: Tokenizer, model: Any,
                  names: tuple[str, str | None], augment: dict | None, max_bad_fraction: float,
                  verbose: bool = True, clip_augment: Any = None, augment_pixels: bool = True) -> DataBundle:
    """Pre-scan manifest rows (stop when mostly bad), then build the training and validation datasets."""
    train_name, val_name = names
    n = len(rows)
    rows, skipped = prescan(rows, tokenizer, model)
    if verbose:
        report_skipped(skipped, train_name)
    check_bad_fraction(len(skipped), n, max_bad_fraction, train_name, skipped)
    train_ds = make_dataset(rows, tokenizer, model.modality, model.reader_args, train=True, augment=augment,
                            clip_augment=clip_augment, augment_pixels=augment_pixels)
    if any(row.get("_weight", 1.0) != 1.0 for row in rows):
        train_ds = weighted_mix(train_ds, rows, verbose)
    val_ds = None
    if val_rows is not None:
        n_val = len(val_rows)
        val_rows, vskipped = prescan(val_rows, tokenizer, model)
        if verbose:
            report_skipped(vskipped, str(val_name))
        if not val_rows:
            lines = "".join(f"\n  {e}" for e in vskipped[:5])
            raise DataError(f"{val_name}: no usable validation item ({len(vskipped)} of {n_val} unusable){lines}")
        val_ds = make_dataset(val_rows, tokenizer, model.modality, model.reader_args, train=False)
    return DataBundle(train_ds, val_ds, tokenizer, dataset_lengths(train_ds),
                      dataset_lengths(val_ds) if val_ds is not None else None,
                      prescan_skipped=skipped, prescan_total=n)

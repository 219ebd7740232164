"""Setting up a run: its folder name, seeds, the model (new, started from a checkpoint, or resumed), the
optimizer state of a resumed run, the schedule, precision and the data loaders."""
from __future__ import annotations

import math
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from crnn.model.checkpoint import model_from_checkpoint, read_checkpoint
from crnn.data.build import DataBundle, build_builtin, make_tokenizer, rare_symbols, resolve_preset
from crnn.data.collate import collate
from crnn.data.mixing import manifest_specs, parse_manifest_spec
from crnn.model.network import CRNN, create_model
from crnn.training import distributed as dist_utils
from crnn.training.config import TrainConfig



def default_out(cfg: TrainConfig) -> str:
    """A run folder named after the data: ``runs/<task>`` for built-in data, ``runs/<manifest name>``."""
    if cfg.train_manifest:
        p = Path(parse_manifest_spec(manifest_specs(cfg.train_manifest)[0])[0])
        name = p.name if p.is_dir() else (p.stem if p.stem not in ("train", "data", "manifest") else
                                          f"{p.parent.name}-{p.stem}")
        return f"runs/{name or 'run'}"
    return f"runs/{cfg.task}"


def train_data_name(cfg: TrainConfig) -> str:
    """The training data as reports name it: the manifest, or the weighted specs joined."""
    return " + ".join(manifest_specs(cfg.train_manifest))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resume_checkpoint_path(cfg: TrainConfig, out: Path) -> Path | None:
    if not cfg.resume:
        return None
    if cfg.resume == "auto":
        return out / "last.pt" if (out / "last.pt").is_file() else None
    return Path(cfg.resume)


def new_model(cfg: TrainConfig, modality: str, rows: list[dict] | None) -> CRNN:
    """A fresh model of the chosen preset, with the data's vocabulary attached as ``model.tokenizer``."""
    preset = resolve_preset(cfg.model, cfg.task, modality, rows is not None)
    if rows is not None:
        texts = [r["text"] for r in rows]
        tokenizer = make_tokenizer(texts, modality, cfg.text_norm, cfg.units, cfg.bpe_size)
        rare = rare_symbols(tokenizer, texts)
        if rare and dist_utils.is_main():
            shown = ", ".join(f"{s!r} ({n}x)" for s, n in list(rare.items())[:20])
            print(f"warning: {train_data_name(cfg)}: {len(rare)} output class(es) seen fewer than 3 times in the "
                  f"training transcripts: {shown}", file=sys.stderr)
    elif cfg.units != "char" or cfg.text_norm != "auto":
        raise ValueError("--units and --text-norm need --train-manifest (built-in tasks have fixed vocabularies)")
    else:
        probe = create_model(preset, vocab_size=2, **cfg.model_args)
        tokenizer = build_builtin(cfg.task, 1, 1, cfg.seed, probe.sample_rate, reader_args=probe.reader_args,
                                  fonts=cfg.fonts, text_corpus=cfg.text_corpus).tokenizer
    model = create_model(preset, vocab_size=len(tokenizer), **cfg.model_args)
    model.tokenizer = tokenizer
    return model


def initial_model(cfg: TrainConfig, source: Path, main: bool) -> CRNN:
    """The model of checkpoint ``source`` (weights, tokenizer, normalisation) for a new run (``--init-from``)."""
    checkpoint = read_checkpoint(source)
    model = model_from_checkpoint(checkpoint, source=str(source))
    check_resume_flags(cfg, model, source)
    if main:
        epoch = checkpoint.get("train_state", {}).get("epoch", "?")
        print(f"starting from the model in {source} (epoch {epoch}); optimizer and schedule start afresh",
              file=sys.stderr)
    return model


def check_resume_flags(cfg: TrainConfig, model: CRNN, source: Path) -> None:
    """Flags that would change the model must agree with the checkpoint it continues (resume, init-from)."""
    stored = {**model.cfg.frontend_args, **{k: v for k, v in model.cfg.to_dict().items() if k != "frontend_args"}}
    conflicts = [f"{k}={v!r} (checkpoint: {stored.get(k)!r})" for k, v in cfg.model_args.items()
                 if k in stored and stored[k] != v]
    if conflicts:
        raise ValueError(f"{source}: these flags change the model it holds: {', '.join(conflicts)}; "
                         f"drop them, or start a new model without it")


def restore_optimizer(state: dict, optimizer, scheduler, scaler, source: Path, main: bool) -> None:
    if "optimizer" not in state:
        if main:
            print(f"warning: {source} holds no optimizer state (a best.pt?): the optimizer and learning-rate "
                  f"schedule start afresh", file=sys.stderr)
        return
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if state.get("scaler"):
        scaler.load_state_dict(state["scaler"])


def best_so_far(state: dict, out: Path) -> dict[str, Any]:
    """The best validated result: the resumed state's, or best.pt's own if a crash left it newer."""
    best = dict(state.get("best") or {"cer": math.inf, "wer": math.inf, "epoch": 0})
    if not math.isfinite(best.get("cer", math.inf)):
        best = {"cer": math.inf, "wer": math.inf, "epoch": 0}
    if state and (out / "best.pt").is_file():
        try:
            on_disk = read_checkpoint(out / "best.pt").get("train_state", {}).get("best") or {}
        except Exception:  # an unreadable best.pt is replaced by the next validated improvement
            on_disk = {}
        if math.isfinite(on_disk.get("cer", math.inf)) and on_disk["cer"] < best["cer"]:
            best = dict(on_disk)
    return best


class WarmupCosine:
    """The learning-rate factor: linear warm-up to 1, then cosine decay to ``min_ratio``.

    Progress through the decay is the share of ``total`` steps taken or, when the trainer reports
    ``time_progress`` (a run scheduled over its time budget), the share of the budget spent, whichever
    is further: a run the clock stops ends annealed instead of at its peak rate. A callable object, so
    ``LambdaLR.state_dict`` saves ``time_progress`` with the schedule and a resumed run continues it.
    """

    def __init__(self, warmup: int, total: int, min_ratio: float):
        self.warmup, self.total, self.min_ratio = warmup, total, min_ratio
        self.time_progress = 0.0

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        progress = min(1.0, max((step - self.warmup) / max(1, self.total - self.warmup), self.time_progress))
        return self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def lr_lambda(warmup: int, total: int, min_ratio: float) -> WarmupCosine:
    """Linear warm-up to 1, then cosine decay to ``min_ratio`` at ``total`` steps."""
    return WarmupCosine(warmup, total, min_ratio)


def amp_dtype_for(precision: str, device: torch.device) -> torch.dtype | None:
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise ValueError(f"precision must be auto, fp32, bf16 or fp16, got {precision!r}")
    if device.type != "cuda" or precision == "fp32":
        return None
    return torch.float16 if precision == "fp16" else torch.bfloat16


def make_loader(bundle: DataBundle, train: bool, cfg: TrainConfig, device: torch.device, rank: int,
                world: int) -> DataLoader:
    ds = bundle.train if train else bundle.val
    lengths = bundle.train_lengths if train else bundle.val_lengths
    workers = cfg.workers if cfg.workers is not None else (4 if device.type == "cuda" else 1)
    common: dict[str, Any] = dict(collate_fn=collate, num_workers=workers, pin_memory=device.type == "cuda")
    if workers > 0:
        common["prefetch_factor"] = 4
    if lengths is not None and (cfg.max_frames or bundle.bucket):
        from crnn.data.sampler import BucketBatchSampler

        sampler = BucketBatchSampler(lengths, max_frames=cfg.max_frames, max_items=cfg.batch_size, shuffle=train,
                                     seed=cfg.seed, sortagrad=train and cfg.sortagrad, num_replicas=world, rank=rank)
        return DataLoader(ds, batch_sampler=sampler, **common)
    sampler = DistributedSampler(ds, num_replicas=world, rank=rank, shuffle=train, seed=cfg.seed, drop_last=False)
    return DataLoader(ds, batch_size=cfg.batch_size, sampler=sampler, **common)


def fit_global_stats(model: CRNN, bundle: DataBundle, device: torch.device, n: int = 64) -> None:
    batch = collate([bundle.train[i] for i in range(min(n, len(bundle.train)))])
    model.frontend.fit_global_stats(batch.x.to(device), batch.x_lens.to(device))


def set_epoch(bundle: DataBundle, loader: DataLoader, epoch: int) -> None:
    """Tell the dataset (fresh built-in items) and the sampler (shuffle order) which epoch this is."""
    if hasattr(bundle.train, "set_epoch"):
        bundle.train.set_epoch(epoch)
    for s in (getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)):
        if hasattr(s, "set_epoch"):
            s.set_epoch(epoch)

"""The training loop: data, model, AdamW with warm-up + cosine decay, AMP, DDP, validation, checkpoints."""
from __future__ import annotations

import csv
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from crnn.ctc import ctc_loss, ctc_min_frames_batch
from crnn.data.build import (DEFAULT_PRESET, MODALITY_OF_FRONTEND, DataBundle, make_dataset, modality_of_rows,
                             prescan, read_rows, report_skipped, text_tokenizer)
from crnn.data.collate import Batch, collate
from crnn.data.video_augment import clip_augment_for
from crnn.decoding.greedy import ctc_greedy
from crnn.metrics import error_counts
from crnn.checkpoint import model_from_checkpoint, read_checkpoint, save_checkpoint
from crnn.model import CRNN, create_model
from crnn.runtime import cpu_threads, pick_device
from crnn.training import distributed as dist_utils
from crnn.training.config import TrainConfig
from crnn.training.step import make_optimizer, train_step


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def lr_lambda(warmup: int, total: int, min_ratio: float):
    """Linear warm-up to 1, then cosine decay to ``min_ratio`` at ``total`` steps."""

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return f


@dataclass
class EpochStats:
    loss: float
    cer: float
    wer: float
    items: int


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------
def resolve_preset(cfg: TrainConfig, modality: str) -> str:
    if cfg.model:
        return cfg.model
    if cfg.train_manifest is None:
        return {"dtmf": "tiny", "actions": "video_tiny", "actions_basic": "video_tiny"}[cfg.task]
    return DEFAULT_PRESET[modality]


def build_builtin(cfg: TrainConfig, sample_rate: int | None, clip_augment=None, augment_pixels: bool = True
                  ) -> DataBundle:
    """The built-in tasks, generated on the fly."""
    if cfg.task == "dtmf":
        from crnn.data.dtmf import DTMFDataset

        train = DTMFDataset(cfg.train_size, seed=cfg.seed * 7 + 1, sample_rate=sample_rate, fresh_each_epoch=True)
        val = DTMFDataset(cfg.val_size, seed=10_007, sample_rate=sample_rate, fresh_each_epoch=False)
        return DataBundle(train, val, train.tokenizer)
    if cfg.task in ("actions", "actions_basic"):
        from crnn.data.actions import ActionsConfig, ActionsDataset, actions_tokenizer

        look = ActionsConfig(look="basic" if cfg.task == "actions_basic" else "varied")
        train = ActionsDataset(cfg.train_size, seed=cfg.seed * 7 + 1, train=True, config=look,
                               clip_augment=clip_augment, augment_pixels=augment_pixels)
        val = ActionsDataset(cfg.val_size, seed=10_007, train=False, config=look)
        return DataBundle(train, val, actions_tokenizer())
    raise ValueError(f"unknown built-in task {cfg.task!r} (choose 'dtmf', 'actions' or 'actions_basic', "
                     f"or give --train-manifest)")


def make_loader(bundle: DataBundle, train: bool, cfg: TrainConfig, device: torch.device, rank: int, world: int,
                seed: int) -> DataLoader:
    ds = bundle.train if train else bundle.val
    lengths = bundle.train_lengths if train else bundle.val_lengths
    workers = cfg.workers if cfg.workers is not None else (4 if device.type == "cuda" else 1)
    common: dict[str, Any] = dict(collate_fn=collate, num_workers=workers, pin_memory=device.type == "cuda")
    if workers > 0:
        common["prefetch_factor"] = 4
    if lengths is not None and cfg.max_frames:
        from crnn.data.sampler import BucketBatchSampler

        sampler = BucketBatchSampler(lengths, max_frames=cfg.max_frames, max_items=cfg.batch_size, shuffle=train,
                                     seed=seed, sortagrad=train and cfg.sortagrad, num_replicas=world, rank=rank)
        return DataLoader(ds, batch_sampler=sampler, **common)
    sampler = DistributedSampler(ds, num_replicas=world, rank=rank, shuffle=train, seed=seed, drop_last=False)
    return DataLoader(ds, batch_size=cfg.batch_size, sampler=sampler, **common)


def drop_infeasible(batch: Batch, model: CRNN) -> tuple[Batch, list[str]]:
    """Remove items whose label cannot fit their frames (checked on CPU, before the transfer)."""
    frames = model.output_lengths(batch.x_lens)
    need = ctc_min_frames_batch(batch.y, batch.y_lens)
    bad = need > frames
    if not bool(bad.any()):
        return batch, []
    msgs = [f"{batch.paths[i]}: label needs {int(need[i])} frames under CTC, input gives {int(frames[i])}"
            for i in bad.nonzero().flatten().tolist()]
    keep = (~bad).nonzero().flatten()
    sub = Batch(batch.x[keep], batch.x_lens[keep], batch.y[keep], batch.y_lens[keep],
                [batch.texts[i] for i in keep.tolist()], [batch.paths[i] for i in keep.tolist()], batch.skipped,
                None if batch.frame_labels is None else [batch.frame_labels[i] for i in keep.tolist()])
    return sub, msgs


# ---------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def evaluate(model: CRNN, loader: DataLoader, device: torch.device, amp_dtype: torch.dtype | None) -> EpochStats:
    """Greedy-decode a loader; CTC loss, CER and WER summed over ranks."""
    core = model.module if hasattr(model, "module") else model
    core.eval()
    tok = core.tokenizer
    loss_sum = items = 0.0
    totals = {"chars": 0, "words": 0, "char_errors": 0, "word_errors": 0}
    for batch in loader:
        if len(batch) == 0:
            continue
        batch, _ = drop_infeasible(batch, core)
        if len(batch) == 0:
            continue
        b = batch.to(device)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            log_probs, lens = core(b.x, b.x_lens)
        losses = ctc_loss(log_probs, lens, b.y, b.y_lens, reduction="none") / b.y_lens.clamp(min=1)
        loss_sum += float(losses.sum())
        items += len(batch)
        for hyp, ref in zip(ctc_greedy(log_probs, lens), batch.texts):
            for k, v in error_counts(ref, tok.decode(hyp.tokens)).items():
                totals[k] += v
    loss_sum, items, ce, cn, we, wn = dist_utils.all_reduce_sum(
        [loss_sum, items, totals["char_errors"], totals["chars"], totals["word_errors"], totals["words"]], device)
    return EpochStats(loss_sum / max(items, 1), ce / max(cn, 1), we / max(wn, 1), int(items))


# ---------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------
def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train a model as ``cfg`` says.

    Returns a summary: best CER/WER and epoch, checkpoint paths, seconds, per-epoch history, and the
    trained model (this process's copy) under ``"model"``.
    """
    device = pick_device(cfg.device)
    rank, local_rank, world = dist_utils.init_distributed(device)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    main = rank == 0
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads(cfg.workers if cfg.workers is not None else 1, world, cfg.threads))
    out = Path(cfg.out)
    if main:
        out.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)

    resume_path = Path(cfg.resume) if cfg.resume and cfg.resume != "auto" else None
    if cfg.resume == "auto" and (out / "last.pt").is_file():
        resume_path = out / "last.pt"
    resume = read_checkpoint(resume_path) if resume_path else None

    # -- data rows, modality, tokenizer ------------------------------------------------------------
    rows = val_rows = None
    if cfg.train_manifest:
        rows = read_rows(cfg.train_manifest)
        val_rows = read_rows(cfg.val_manifest) if cfg.val_manifest else None
        modality = cfg.modality if cfg.modality != "auto" else modality_of_rows(rows)
    else:
        modality = "audio" if cfg.task == "dtmf" else "video"

    # -- model -------------------------------------------------------------------------------------
    if resume is not None:
        model = model_from_checkpoint(resume, source=str(resume_path))
        tokenizer = model.tokenizer
    else:
        if rows is not None:
            tokenizer = (text_tokenizer([r["text"] for r in rows]) if modality == "audio"
                         else _label_tokenizer([r["text"] for r in rows]))
        else:
            tokenizer = None
        preset = resolve_preset(cfg, modality)
        if tokenizer is None:
            probe = create_model(preset, vocab_size=2, **cfg.model_args)
            bundle = build_builtin(cfg, probe.cfg.frontend_args.get("sample_rate"))
            tokenizer = bundle.tokenizer
        model = create_model(preset, vocab_size=len(tokenizer), **cfg.model_args)
        model.tokenizer = tokenizer
    if MODALITY_OF_FRONTEND.get(model.cfg.frontend, modality) != modality:
        raise ValueError(f"model frontend {model.cfg.frontend!r} does not read {modality} data")

    # -- datasets ----------------------------------------------------------------------------------
    if cfg.clip_augment and modality != "video":
        raise ValueError(f"clip augmentation applies to video frames, and this run reads {modality} data")
    clip_aug, clip_aug_on_device = clip_augment_for(cfg.clip_augment, device)
    if rows is not None:
        rows, skipped = prescan(rows, tokenizer, model, modality)
        if main:
            report_skipped(skipped, f"{cfg.train_manifest}")
        if not rows:
            raise ValueError(f"{cfg.train_manifest}: no usable training items")
        train_ds = make_dataset(rows, tokenizer, modality, model.cfg, train=True, augment=cfg.augment,
                                clip_augment=clip_aug, augment_pixels=not clip_aug_on_device)
        val_ds = None
        if val_rows is not None:
            val_rows, vskipped = prescan(val_rows, tokenizer, model, modality)
            if main:
                report_skipped(vskipped, f"{cfg.val_manifest}")
            val_ds = make_dataset(val_rows, tokenizer, modality, model.cfg, train=False)
        bundle = DataBundle(train_ds, val_ds, tokenizer, _lengths(train_ds), _lengths(val_ds) if val_ds else None)
    else:
        bundle = build_builtin(cfg, model.cfg.frontend_args.get("sample_rate"), clip_aug, not clip_aug_on_device)

    model.to(device)
    if model.cfg.frontend == "audio" and model.cfg.frontend_args.get("normalize") == "global" and resume is None:
        _fit_global_stats(model, bundle, device)
    ddp_model: torch.nn.Module = model
    if world > 1:
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)

    train_loader = make_loader(bundle, True, cfg, device, rank, world, cfg.seed)
    val_loader = make_loader(bundle, False, cfg, device, rank, world, cfg.seed) if bundle.val is not None else None

    # -- optimisation ------------------------------------------------------------------------------
    steps_per_epoch = max(1, len(train_loader))
    total_steps = cfg.epochs * steps_per_epoch
    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay)
    params = list(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg.warmup_steps, total_steps, cfg.min_lr_ratio))
    amp_dtype = _amp_dtype(cfg.precision, device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)

    start_epoch, step, best = 0, 0, {"cer": math.inf, "wer": math.inf, "epoch": -1}
    if resume is not None:
        st = resume.get("train_state", {})
        if "optimizer" in st:
            optimizer.load_state_dict(st["optimizer"])
            scheduler.load_state_dict(st["scheduler"])
            if st.get("scaler"):
                scaler.load_state_dict(st["scaler"])
        start_epoch, step = int(st.get("epoch", -1)) + 1, int(st.get("step", 0))
        best = st.get("best", best)
        if main:
            print(f"resuming from {resume_path} at epoch {start_epoch + 1}", file=sys.stderr)

    # -- logging -----------------------------------------------------------------------------------
    log_path = out / "log.csv"
    tb = None
    if main and cfg.tensorboard:
        try:
            from torch.utils.tensorboard import SummaryWriter

            tb = SummaryWriter(str(out / "tb"))
        except ImportError:
            print("tensorboard is not installed: logging to CSV only", file=sys.stderr)
    if main and not log_path.exists():
        with open(log_path, "w", newline="") as f:
            csv.writer(f).writerow(["epoch", "step", "train_loss", "val_loss", "val_cer", "val_wer", "lr",
                                    "seconds", "skipped_items", "nonfinite_steps"])
    if main:
        n_params = sum(p.numel() for p in model.parameters())
        print(f"model {model.cfg.cell} x{model.cfg.num_layers} ({n_params / 1e6:.2f} M params) on {device}, "
              f"{steps_per_epoch} steps/epoch, {world} process(es)", file=sys.stderr)

    clip_gen = torch.Generator().manual_seed(cfg.seed * 7919 + start_epoch)  # draws of on-device clip augmentation
    t_start = time.time()
    elapsed_before = float(resume.get("train_state", {}).get("seconds", 0.0)) if resume else 0.0
    history = []
    stop = False
    for epoch in range(start_epoch, cfg.epochs):
        for ds in (bundle.train,):
            if hasattr(ds, "set_epoch"):
                ds.set_epoch(epoch)
        for s in (getattr(train_loader, "sampler", None), getattr(train_loader, "batch_sampler", None)):
            if hasattr(s, "set_epoch"):
                s.set_epoch(epoch)
        ddp_model.train()
        loss_sum = torch.zeros((), device=device)
        loss_items = torch.zeros((), device=device)  # device counters: read once per epoch, not per step
        nonfinite_steps = torch.zeros((), device=device)
        skipped_files: list[str] = []
        infeasible = 0
        bar = _progress(train_loader, main and cfg.progress, f"epoch {epoch + 1}/{cfg.epochs}")
        for i, batch in enumerate(bar):
            skipped_files += [f"{b.path}: {b.reason}" for b in batch.skipped]
            batch, bad = drop_infeasible(batch, model) if len(batch) else (batch, [])
            if bad and main:
                infeasible += len(bad)
                for msg in bad:
                    print(f"skipping: {msg}", file=sys.stderr)
            if len(batch) == 0:
                continue  # NB: under DDP every rank still runs the same number of steps only if batches align
            b = batch.to(device, non_blocking=True)
            if clip_aug_on_device:  # the same pixel transforms the CPU path applies in its workers
                b.x = clip_aug.batch(b.x, b.x_lens, clip_gen)
            loss, finite = train_step(ddp_model, b, optimizer, scaler, amp_dtype, cfg.grad_clip, params)
            loss_sum += torch.where(finite, loss, 0.0)
            loss_items += finite
            nonfinite_steps += ~finite
            scheduler.step()
            step += 1
            if main and cfg.progress and (i % cfg.log_every == 0):
                bar.set_postfix(loss=f"{float(loss_sum) / max(float(loss_items), 1):.3f}",
                                lr=f"{scheduler.get_last_lr()[0]:.1e}")
            if cfg.max_minutes and i % cfg.log_every == 0:
                stop = _time_up(t_start, elapsed_before, cfg.max_minutes, device)
                if stop:
                    break
        train_loss = float(loss_sum) / max(float(loss_items), 1)
        nonfinite = int(nonfinite_steps)
        stats = evaluate(ddp_model, val_loader, device, amp_dtype) if val_loader is not None else None
        seconds = elapsed_before + time.time() - t_start
        history.append({"epoch": epoch + 1, "train_loss": train_loss, "val_cer": stats.cer if stats else None,
                        "val_wer": stats.wer if stats else None, "seconds": seconds})
        if main:
            improved = stats is not None and stats.cer < best["cer"]
            if improved or stats is None:
                best = {"cer": stats.cer if stats else math.nan, "wer": stats.wer if stats else math.nan,
                        "epoch": epoch}
            state = {"epoch": epoch, "step": step, "best": best, "seconds": seconds, "config": cfg.to_dict(),
                     "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                     "scaler": scaler.state_dict()}
            save_checkpoint(out / "last.pt", model, state)
            if improved or stats is None:
                save_checkpoint(out / "best.pt", model, {k: v for k, v in state.items()
                                                         if k not in ("optimizer", "scheduler", "scaler")})
            msg = f"epoch {epoch + 1}: train loss {train_loss:.3f}"
            if stats:
                msg += f", val loss {stats.loss:.3f}, CER {100 * stats.cer:.2f}%, WER {100 * stats.wer:.2f}%"
            msg += f" ({seconds:.0f} s)"
            if skipped_files or infeasible or nonfinite:
                msg += f"; skipped {len(skipped_files)} unreadable, {infeasible} infeasible, {nonfinite} non-finite"
            print(msg, file=sys.stderr)
            for line in skipped_files[:10]:
                print(f"  skipped {line}", file=sys.stderr)
            with open(log_path, "a", newline="") as f:
                csv.writer(f).writerow([epoch + 1, step, f"{train_loss:.5f}", f"{stats.loss:.5f}" if stats else "",
                                        f"{stats.cer:.5f}" if stats else "", f"{stats.wer:.5f}" if stats else "",
                                        f"{scheduler.get_last_lr()[0]:.3e}", f"{seconds:.1f}",
                                        len(skipped_files) + infeasible, nonfinite])
            if tb is not None:
                tb.add_scalar("train/loss", train_loss, step)
                if stats:
                    tb.add_scalar("val/loss", stats.loss, step)
                    tb.add_scalar("val/cer", stats.cer, step)
                    tb.add_scalar("val/wer", stats.wer, step)
                tb.flush()
        if stop or (cfg.max_minutes and _time_up(t_start, elapsed_before, cfg.max_minutes, device)):
            if main:
                print(f"time budget of {cfg.max_minutes} min reached", file=sys.stderr)
            break
    if tb is not None:
        tb.close()
    dist_utils.barrier()
    summary = {"best_cer": best["cer"], "best_wer": best["wer"], "best_epoch": best["epoch"] + 1,
               "best": str(out / "best.pt"), "last": str(out / "last.pt"),
               "seconds": elapsed_before + time.time() - t_start, "history": history, "model": model}
    dist_utils.cleanup()
    return summary


def _label_tokenizer(texts: list[str]):
    from crnn.tokenizer import Tokenizer

    return Tokenizer.build(texts, kind="label")


def _lengths(ds) -> list[float] | None:
    fn = getattr(ds, "lengths", None)
    if fn is None:
        return None
    return list(fn() if callable(fn) else fn)


def _amp_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if device.type != "cuda" or precision == "fp32":
        return None
    if precision in ("auto", "bf16"):
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    raise ValueError(f"precision must be auto, fp32, bf16 or fp16, got {precision!r}")


def _time_up(t_start: float, before: float, max_minutes: float, device: torch.device) -> bool:
    """Same answer on every rank (rank 0's clock decides)."""
    up = float(before + time.time() - t_start > 60 * max_minutes)
    return dist_utils.all_reduce_sum([up], device)[0] > 0


def _fit_global_stats(model: CRNN, bundle: DataBundle, device: torch.device, n: int = 64) -> None:
    items = [bundle.train[i] for i in range(min(n, len(bundle.train)))]
    batch = collate(items)
    model.frontend.fit_global_stats(batch.x.to(device), batch.x_lens.to(device))


def _progress(loader, enabled: bool, desc: str):
    if not enabled:
        return _Quiet(loader)
    from tqdm.auto import tqdm

    return tqdm(loader, desc=desc, dynamic_ncols=True, leave=False, file=sys.stderr)


class _Quiet:
    def __init__(self, it):
        self.it = it

    def __iter__(self):
        return iter(self.it)

    def set_postfix(self, **_: Any) -> None:
        pass

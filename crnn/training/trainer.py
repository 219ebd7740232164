"""The training loop: setup, epochs of guarded steps, validation, checkpoints that are never lost.

Reads top to bottom: ``train()`` sets up the device, the run folder, the model and the data (assembled
in ``crnn.data.build``), then runs epochs; each epoch is followed by validation (``evaluate``), the
checkpoints (``best.pt`` first, then ``last.pt``, which names it) and the log rows. Run setup lives in
``crnn.training.setup``, an epoch's counters and progress bar in ``crnn.training.epoch``.
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from crnn.model.checkpoint import model_from_checkpoint, read_checkpoint, save_checkpoint, write_checkpoint
from crnn.data.build import (DataError, build_builtin, data_modality,
                             manifest_data, read_rows)
from crnn.data.video.augment import clip_augment_for
from crnn.model.network import CRNN
from crnn.runtime import cpu_threads, pick_device
from crnn.training import distributed as dist_utils
from crnn.training.averaging import WeightEMA, average_checkpoints
from crnn.training.config import TrainConfig
from crnn.evaluation.evaluate import EvalResult, evaluate
from crnn.training.memory import release_freed_memory
from crnn.training.run_dir import RunLock, claim_run_dir
from crnn.training.run_log import RunLogger
from crnn.training.step import make_optimizer, train_step
from crnn.training.epoch import EpochCounters, progress
from crnn.training.setup import (amp_dtype_for, best_so_far, check_resume_flags, default_out, fit_global_stats,
                                 initial_model, lr_lambda, make_loader, new_model, resume_checkpoint_path,
                                 restore_optimizer, seed_everything, set_epoch, train_data_name)


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train a model as ``cfg`` says.

    Returns a summary: best CER/WER and epoch (1-based), checkpoint paths (``best`` is None when no
    epoch was validated), seconds, per-epoch history, and the trained model under ``"model"``.
    """
    if cfg.resume and cfg.init_from:  # before either is acted on: one would silently win
        raise ValueError("--init-from starts a new run and --resume continues one: give one of them")
    # -- where and how ----------------------------------------------------------------------------
    device = pick_device(cfg.device)
    rank, local_rank, world = dist_utils.init_distributed(device)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    main = rank == 0
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads(cfg.workers if cfg.workers is not None else 1, world, cfg.threads))
    seed_everything(cfg.seed)
    out = Path(cfg.out or default_out(cfg))
    resume_path = resume_checkpoint_path(cfg, out)
    lock: RunLock | None = None
    if main:
        # --resume (even "auto" before a first checkpoint exists) continues whatever the folder holds
        lock = claim_run_dir(out, resume=bool(cfg.resume), overwrite=cfg.overwrite)
    try:
        result = _train(cfg, device, world, rank, out, resume_path)
        result["rank"] = rank
        return result
    finally:
        if lock is not None:
            lock.release()
        dist_utils.cleanup()


def _train(cfg: TrainConfig, device: torch.device, world: int, rank: int, out: Path,
           resume_path: Path | None) -> dict[str, Any]:
    main = rank == 0
    resume = read_checkpoint(resume_path) if resume_path else None
    state = resume.get("train_state", {}) if resume else {}

    # -- data rows and what they imply --------------------------------------------------------------
    rows = read_rows(cfg.train_manifest, cfg.manifest_format) if cfg.train_manifest else None
    val_rows = read_rows(cfg.val_manifest, cfg.manifest_format) if cfg.val_manifest else None
    modality = data_modality(cfg.task, rows, cfg.modality)

    # -- model ------------------------------------------------------------------------------------
    if resume is not None:
        model = model_from_checkpoint(resume, source=str(resume_path))
        check_resume_flags(cfg, model, resume_path)
    elif cfg.init_from:
        model = initial_model(cfg, Path(cfg.init_from), main)
    else:
        model = new_model(cfg, modality, rows)
    if model.modality != modality:
        raise DataError(f"model frontend {model.cfg.frontend!r} reads {model.modality} data, but the data is {modality}")

    # -- datasets -----------------------------------------------------------------------------------
    if cfg.clip_augment and modality != "video":
        raise ValueError(f"clip augmentation applies to video frames, and this run reads {modality} data")
    # pixel transforms run in the loader workers on a CPU, on the batch on the device on a GPU
    clip_aug, clip_aug_on_device = clip_augment_for(cfg.clip_augment, device)
    if rows is not None:
        bundle = manifest_data(rows, val_rows, model.tokenizer, model, (train_data_name(cfg), cfg.val_manifest),
                               cfg.augment, cfg.max_bad_fraction, verbose=main, clip_augment=clip_aug,
                               augment_pixels=not clip_aug_on_device)
    else:
        bundle = build_builtin(cfg.task, cfg.train_size, cfg.val_size, cfg.seed, model.sample_rate,
                               reader_args=model.reader_args, clip_augment=clip_aug,
                               augment_pixels=not clip_aug_on_device, fonts=cfg.fonts, text_corpus=cfg.text_corpus,
                               clip_pool=cfg.clip_pool, cache_dir=cfg.cache_dir)
    if cfg.init_from and bundle.tokenizer is not None and bundle.tokenizer.symbols != model.tokenizer.symbols:
        raise DataError(f"{cfg.init_from}: the model's units ({len(model.tokenizer.symbols)}) are not this "
                        f"task's ({len(bundle.tokenizer.symbols)}): start from a model of the same units")
    model.to(device)
    # Global statistics are part of a model started --init-from: its weights were trained on them.
    if resume is None and not cfg.init_from and model.modality == "audio" and getattr(getattr(model.frontend, "cfg", None), "normalize", None) == "global":
        fit_global_stats(model, bundle, device)
    ddp_model: torch.nn.Module = model
    if world > 1:
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    train_loader = make_loader(bundle, True, cfg, device, rank, world)
    val_loader = make_loader(bundle, False, cfg, device, rank, world) if bundle.val is not None else None

    # -- optimisation -------------------------------------------------------------------------------
    steps_per_epoch = max(1, len(train_loader))
    optimizer = make_optimizer(model, cfg.lr, cfg.weight_decay)
    schedule = lr_lambda(cfg.warmup_steps, cfg.epochs * steps_per_epoch, cfg.min_lr_ratio)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    amp_dtype = amp_dtype_for(cfg.precision, device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    start_epoch, step = int(state.get("epoch", 0)), int(state.get("step", 0))
    best = best_so_far(state, out)
    history: list[dict[str, Any]] = list(state.get("history", []))
    if resume is not None:
        restore_optimizer(state, optimizer, scheduler, scaler, resume_path, main)
        if main:
            print(f"resuming from {resume_path} after epoch {start_epoch}", file=sys.stderr)
    if start_epoch >= cfg.epochs:
        return finished_already(cfg, out, best, state, history, model, main)

    logger = RunLogger(out, cfg.tensorboard) if main else None
    if logger is not None:
        logger.write(history)  # a crash after a checkpoint but before its log row loses nothing
        n_params = sum(p.numel() for p in model.parameters())
        print(f"model {model.cfg.cell} x{model.cfg.num_layers} ({n_params / 1e6:.2f} M params) on {device}, "
              f"{steps_per_epoch} steps/epoch, {world} process(es)", file=sys.stderr)

    # -- the loop -----------------------------------------------------------------------------------
    ema = WeightEMA(model, cfg.ema_decay) if cfg.ema_decay else None
    if ema is not None and "ema" in state:
        ema.load_state_dict(state["ema"])
    best_ema = dict(state.get("best_ema", {"cer": math.inf, "wer": math.inf, "epoch": 0}))
    t_start, elapsed_before = time.time(), float(state.get("seconds", 0.0))
    params = list(model.parameters())
    clip_gen = torch.Generator().manual_seed(cfg.seed * 7919 + start_epoch)  # draws of on-device clip augmentation
    for epoch in range(start_epoch, cfg.epochs):  # epochs are 0-based here, 1-based in every report
        set_epoch(bundle, train_loader, epoch)
        if getattr(train_loader, "num_workers", 0):
            release_freed_memory()  # the workers forked next share only live memory (see crnn.training.memory)
        ddp_model.train()
        ep = EpochCounters(device)
        bar = progress(train_loader, main and cfg.progress, f"epoch {epoch + 1}/{cfg.epochs}")
        stop = False
        for i, batch in enumerate(bar):
            batch = ep.admit(batch, model, main)
            if len(batch) == 0:
                continue
            b = batch.to(device, non_blocking=True)
            if clip_aug_on_device:  # the same pixel transforms the CPU path applies in its workers
                b.x = clip_aug.batch(b.x, b.x_lens, clip_gen)
            loss, finite = train_step(ddp_model, b, optimizer, scaler, amp_dtype, cfg.grad_clip, params)
            ep.add_step(loss, finite)
            scheduler.step()
            if ema is not None:
                ema.update(model)
            step += 1
            if i % cfg.log_every == 0:
                if main and cfg.progress:
                    bar.set_postfix(loss=f"{ep.mean_loss():.3f}", lr=f"{scheduler.get_last_lr()[0]:.1e}")
                if cfg.max_minutes:
                    spent = budget_spent(t_start, elapsed_before, cfg.max_minutes, device)
                    if cfg.time_schedule:
                        schedule.time_progress = min(1.0, spent)
                    if spent > 1:
                        stop = True
                        break
        ep.check_usable(epoch, cfg, device, bundle.prescan_bad_share, bundle.prescan_skipped)
        stats = validate(ddp_model, val_loader, device, amp_dtype, cfg.val_manifest or f"{cfg.task} validation")
        seconds = elapsed_before + time.time() - t_start
        improved = stats is not None and math.isfinite(stats.cer) and stats.cer < best["cer"]
        if improved:
            best = {"cer": stats.cer, "wer": stats.wer, "epoch": epoch + 1}
        row = ep.row(epoch, step, stats, scheduler.get_last_lr()[0], seconds)
        ema_improved = False
        if ema is not None:  # the averaged weights are validated and kept as a model of their own
            with ema.applied(model):
                ema_stats = validate(ddp_model, val_loader, device, amp_dtype, "EMA weights")
            if ema_stats is not None:
                row.update(ema_val_cer=ema_stats.cer, ema_val_wer=ema_stats.wer)
                ema_improved = math.isfinite(ema_stats.cer) and ema_stats.cer < best_ema["cer"]
                if ema_improved:
                    best_ema = {"cer": ema_stats.cer, "wer": ema_stats.wer, "epoch": epoch + 1}
        history.append(row)
        if main:
            train_state = {"epoch": epoch + 1, "step": step, "best": best, "seconds": seconds,
                           "config": cfg.to_dict(), "history": history}
            if ema is not None:
                train_state["best_ema"] = best_ema
            if improved:  # best.pt before last.pt: last.pt never names a best.pt that is not on disk
                save_checkpoint(out / "best.pt", model, train_state)
            if ema_improved:
                with ema.applied(model):
                    save_checkpoint(out / "ema.pt", model, {**train_state, "best": best_ema, "weights": "ema"})
            if cfg.average_last:
                keep_epoch_weights(out, model, train_state, epoch + 1, cfg.average_last)
            save_checkpoint(out / "last.pt", model, {**train_state, "optimizer": optimizer.state_dict(),
                                                     "scheduler": scheduler.state_dict(),
                                                     "scaler": scaler.state_dict(),
                                                     **({"ema": ema.state_dict()} if ema is not None else {})})
            logger.write(history)
            ep.report(epoch, stats)
        if stop or (cfg.max_minutes and time_up(t_start, elapsed_before, cfg.max_minutes, device)):
            if main:
                print(f"time budget of {cfg.max_minutes} min reached", file=sys.stderr)
            break
    if cfg.average_last and main:
        average_epochs(out, model, ddp_model, val_loader, device, amp_dtype, cfg.average_last)
    if logger is not None:
        logger.close()
    dist_utils.barrier()
    return summary(out, best, elapsed_before + time.time() - t_start, history, model)


def validate(model, loader: DataLoader | None, device: torch.device, amp_dtype, what: str) -> EvalResult | None:
    """Greedy validation, or None without validation data (such an epoch never replaces best.pt)."""
    if loader is None:
        return None
    return evaluate(model, loader, device=device, amp_dtype=amp_dtype, what=what)


def keep_epoch_weights(out: Path, model: CRNN, train_state: dict, epoch: int, keep: int) -> None:
    """``epochs/epoch-K.pt`` for the last ``keep`` epochs (older ones removed): what ``averaged.pt`` averages."""
    folder = out / "epochs"
    save_checkpoint(folder / f"epoch-{epoch}.pt", model, train_state)
    for old in epoch_files(folder)[:-keep]:
        old.unlink(missing_ok=True)


def epoch_files(folder: Path) -> list[Path]:
    files = [p for p in folder.glob("epoch-*.pt") if p.stem[6:].isdigit()]
    return sorted(files, key=lambda p: int(p.stem[6:]))


def average_epochs(out: Path, model: CRNN, ddp_model, val_loader, device, amp_dtype, n: int) -> None:
    """Average the last ``n`` epochs' weights, validate the result and write it as ``averaged.pt``."""
    files = epoch_files(out / "epochs")[-n:]
    if len(files) < 2:
        print(f"--average-last {n}: only {len(files)} epoch(s) trained, nothing to average", file=sys.stderr)
        return
    averaged = average_checkpoints(files)
    own = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(averaged["state_dict"])
    try:
        stats = validate(ddp_model, val_loader, device, amp_dtype, f"average of {len(files)} epochs")
    finally:
        model.load_state_dict(own)
    if stats is not None:
        averaged["train_state"]["best"] = {"cer": stats.cer, "wer": stats.wer, "epoch": averaged["train_state"].get("epoch")}
    write_checkpoint(out / "averaged.pt", averaged)
    score = f": validation CER {100 * stats.cer:.2f} %, WER {100 * stats.wer:.2f} %" if stats is not None else ""
    print(f"averaged epochs {files[0].stem[6:]}-{files[-1].stem[6:]} -> {out / 'averaged.pt'}{score}", file=sys.stderr)


def budget_spent(t_start: float, before: float, max_minutes: float, device: torch.device) -> float:
    """Share of the time budget spent, the same on every rank (their mean), so every rank takes the same
    stop decision and the same learning rate."""
    share = (before + time.time() - t_start) / (60 * max_minutes)
    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    return dist_utils.all_reduce_sum([share], device)[0] / world


def time_up(t_start: float, before: float, max_minutes: float, device: torch.device) -> bool:
    """Same answer on every rank: the budget is spent by the ranks' mean clock."""
    return budget_spent(t_start, before, max_minutes, device) > 1


# -------------------------------------------------------------------------------------------------
# results
# -------------------------------------------------------------------------------------------------
def summary(out: Path, best: dict, seconds: float, history: list[dict], model: CRNN) -> dict[str, Any]:
    has_best = math.isfinite(best.get("cer", math.inf)) and (out / "best.pt").is_file()
    return {"best_cer": best["cer"], "best_wer": best["wer"], "best_epoch": best.get("epoch", 0),
            "best": str(out / "best.pt") if has_best else None, "last": str(out / "last.pt"),
            "seconds": seconds, "history": history, "model": model}


def finished_already(cfg: TrainConfig, out: Path, best: dict, state: dict, history: list, model: CRNN,
                     main: bool) -> dict[str, Any]:
    if main:
        print(f"{out / 'last.pt'} has already trained {state.get('epoch', 0)} epoch(s), --epochs is {cfg.epochs}: "
              f"nothing to do (raise --epochs to train further)", file=sys.stderr)
    return summary(out, best, float(state.get("seconds", 0.0)), history, model)

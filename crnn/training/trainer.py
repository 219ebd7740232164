"""The training loop: setup, epochs of guarded steps, validation, checkpoints that are never lost.

Reads top to bottom: ``train()`` sets up the device, the run folder, the model and the data (assembled
in ``crnn.data.build``), then runs epochs; each epoch is followed by validation (``evaluate``), the
checkpoints (``best.pt`` first, then ``last.pt``, which names it) and the log rows.
"""
from __future__ import annotations

import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from crnn.checkpoint import model_from_checkpoint, read_checkpoint, save_checkpoint, write_checkpoint
from crnn.data.build import (DataBundle, DataError, build_builtin, check_bad_fraction, data_modality,
                             make_tokenizer, manifest_data, rare_symbols, read_rows, resolve_preset)
from crnn.data.collate import Batch, collate
from crnn.data.video.augment import clip_augment_for
from crnn.data.mixing import manifest_specs, parse_manifest_spec
from crnn.model import CRNN, create_model
from crnn.runtime import cpu_threads, pick_device
from crnn.training import distributed as dist_utils
from crnn.training.averaging import WeightEMA, average_checkpoints
from crnn.training.config import TrainConfig
from crnn.training.evaluate import EvalResult, drop_infeasible, evaluate
from crnn.training.run_dir import RunLock, claim_run_dir
from crnn.training.run_log import RunLogger
from crnn.training.step import make_optimizer, train_step


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
        bundle = build_builtin(cfg.task, cfg.train_size, cfg.val_size, cfg.seed,
                               model.sample_rate, clip_aug, not clip_aug_on_device)
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
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(cfg.warmup_steps, cfg.epochs * steps_per_epoch, cfg.min_lr_ratio))
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
                if cfg.max_minutes and time_up(t_start, elapsed_before, cfg.max_minutes, device):
                    stop = True
                    break
        ep.check_usable(epoch, cfg, device)
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


# -------------------------------------------------------------------------------------------------
# setup
# -------------------------------------------------------------------------------------------------
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
        tokenizer = build_builtin(cfg.task, 1, 1, cfg.seed, probe.sample_rate).tokenizer
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


def lr_lambda(warmup: int, total: int, min_ratio: float):
    """Linear warm-up to 1, then cosine decay to ``min_ratio`` at ``total`` steps."""

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return f


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
    if lengths is not None and cfg.max_frames:
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


# -------------------------------------------------------------------------------------------------
# one epoch's bookkeeping
# -------------------------------------------------------------------------------------------------
@dataclass
class EpochCounters:
    """What an epoch saw: loss on the device (read once per epoch, not per step), skipped items by reason."""

    device: torch.device
    skipped: list[str] = field(default_factory=list)  # "path: reason" of unreadable / non-finite items
    infeasible: int = 0
    used: int = 0  # items that reached a training step

    def __post_init__(self) -> None:
        self.loss_sum = torch.zeros((), device=self.device)
        self.loss_steps = torch.zeros((), device=self.device)
        self.nonfinite_steps = torch.zeros((), device=self.device)

    def admit(self, batch: Batch, model: CRNN, main: bool) -> Batch:
        """Drop and count what must not be fed: unreadable, non-finite and infeasible items."""
        self.skipped += [b.reason if b.path in b.reason else f"{b.path}: {b.reason}" for b in batch.skipped]
        if len(batch) == 0:
            return batch
        batch = drop_nonfinite(batch, self.skipped)
        if len(batch) == 0:
            return batch
        batch, bad = drop_infeasible(batch, model)
        self.infeasible += len(bad)
        if main:
            for msg in bad:
                print(f"skipping: {msg}", file=sys.stderr)
        self.used += len(batch)
        return batch

    def add_step(self, loss: torch.Tensor, finite: torch.Tensor) -> None:
        self.loss_sum += torch.where(finite, loss, 0.0)
        self.loss_steps += finite
        self.nonfinite_steps += ~finite

    def mean_loss(self) -> float:
        return float(self.loss_sum) / max(float(self.loss_steps), 1.0)

    def check_usable(self, epoch: int, cfg: TrainConfig, device: torch.device) -> None:
        """Stop when an epoch fed nothing, or when most of the first epoch's items were bad."""
        bad, used = dist_utils.all_reduce_sum([len(self.skipped), self.used + self.infeasible], device)
        if used == 0 or epoch == 0:
            check_bad_fraction(int(bad), int(bad + used), cfg.max_bad_fraction, f"epoch {epoch + 1}", self.skipped)

    def row(self, epoch: int, step: int, stats: EvalResult | None, lr: float, seconds: float) -> dict[str, Any]:
        return {"epoch": epoch + 1, "step": step, "train_loss": self.mean_loss(),
                "val_loss": stats.loss if stats else None, "val_cer": stats.cer if stats else None,
                "val_wer": stats.wer if stats else None, "lr": lr, "seconds": round(seconds, 1),
                "skipped_items": len(self.skipped) + self.infeasible + (len(stats.skipped) if stats else 0),
                "nonfinite_steps": int(self.nonfinite_steps)}

    def report(self, epoch: int, stats: EvalResult | None) -> None:
        msg = f"epoch {epoch + 1}: train loss {self.mean_loss():.3f}"
        if stats:
            msg += f", val loss {stats.loss:.3f}, CER {100 * stats.cer:.2f}%, WER {100 * stats.wer:.2f}%"
        nonfinite = int(self.nonfinite_steps)
        if self.skipped or self.infeasible or nonfinite:
            msg += (f"; skipped {len(self.skipped)} unreadable, {self.infeasible} infeasible, "
                    f"{nonfinite} non-finite step(s)")
        print(msg, file=sys.stderr)
        for line in self.skipped[:10]:
            print(f"  skipped {line}", file=sys.stderr)
        if stats and stats.skipped:
            print(f"  validation skipped {len(stats.skipped)} item(s):", file=sys.stderr)
            for line in stats.skipped[:10]:
                print(f"    {line}", file=sys.stderr)
        if stats and stats.too_short and epoch == 0:  # the same items every epoch: said once
            print(f"  validation: {len(stats.too_short)} item(s) too fast for the model's frame rate (scored; "
                  f"the model cannot output them in full), e.g. {stats.too_short[0]}", file=sys.stderr)


def drop_nonfinite(batch: Batch, skipped: list[str]) -> Batch:
    """Remove items whose input holds NaN/inf (checked on CPU, before the transfer): never fed to the model."""
    if not batch.x.is_floating_point():
        return batch
    finite = torch.isfinite(batch.x.reshape(len(batch), -1)).all(dim=1)
    if bool(finite.all()):
        return batch
    skipped += [f"{batch.paths[i]}: non-finite samples" for i in (~finite).nonzero().flatten().tolist()]
    keep = finite.nonzero().flatten()
    return Batch(batch.x[keep], batch.x_lens[keep], batch.y[keep], batch.y_lens[keep],
                 [batch.texts[i] for i in keep.tolist()], [batch.paths[i] for i in keep.tolist()], batch.skipped,
                 None if batch.frame_labels is None else [batch.frame_labels[i] for i in keep.tolist()])


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


def time_up(t_start: float, before: float, max_minutes: float, device: torch.device) -> bool:
    """Same answer on every rank (any rank's clock running out stops all)."""
    up = float(before + time.time() - t_start > 60 * max_minutes)
    return dist_utils.all_reduce_sum([up], device)[0] > 0


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


def progress(loader, enabled: bool, desc: str):
    """A progress bar on a terminal; where stderr is a file or pipe (a log), none: a bar redraws itself
    there as one line per update, and the per-epoch summary lines already tell the progress."""
    if not enabled or not sys.stderr.isatty():
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

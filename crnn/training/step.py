"""One optimisation step: forward under autocast, CTC in fp32, backward, clipping, a guarded update.

The trainer and ``bench/train_step.py`` both call :func:`train_step`, so the benchmark times exactly
what training runs.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from crnn.ctc import ctc_loss
from crnn.data.collate import Batch


def make_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW without weight decay on biases and norm gains (parameters with fewer than 2 dims).

    Fused AdamW accepts a device-side "skip this update" flag, so a non-finite step costs no host sync.
    """
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr, fused=True)


def train_step(model: nn.Module, batch: Batch, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
               amp_dtype: torch.dtype | None, grad_clip: float, params: list[nn.Parameter] | None = None,
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Run one step on a batch already on the model's device.

    Args:
        model: the (possibly DDP-wrapped) CRNN; ``model(x, lengths) -> (log_probs (B, T', V), lengths)``.
        batch: ``x`` (B, S) / (B, T, C, H, W) / (B, T, D), ``y`` (B, L) labels and their lengths.
        amp_dtype: bf16 / fp16 autocast, or None for fp32. CTC always runs in fp32.
        params: parameters to clip (default: all of ``model``'s).

    Returns:
        (loss, finite): the mean per-token CTC loss and whether the update was applied, both 0-dim
        device tensors; nothing here waits for the device. A non-finite loss or gradient skips the
        update and restores every buffer the forward pass touched (BatchNorm running statistics), so
        one bad batch never ends or poisons a run.
    """
    device_type = batch.x.device.type
    core = model.module if hasattr(model, "module") else model
    buffers = [b for b in core.buffers() if b.numel()]  # BatchNorm running statistics, step counters
    saved = [b.clone() for b in buffers]  # a device copy, no sync: restored below if the step is skipped
    with torch.autocast(device_type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
        log_probs, lens = model(batch.x, batch.x_lens)
    losses = ctc_loss(log_probs, lens, batch.y, batch.y_lens, reduction="none") / batch.y_lens.clamp(min=1)
    loss = losses.mean()
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    norm = torch.nn.utils.clip_grad_norm_(params if params is not None else list(model.parameters()), grad_clip)
    finite = torch.isfinite(norm) & torch.isfinite(loss.detach())
    if scaler.is_enabled():  # fp16: the scaler finds inf/nan gradients itself and lowers its scale
        scaler.step(optimizer)
    else:
        optimizer.found_inf = (~finite).float()  # fused AdamW skips the whole update when this is 1
        optimizer.step()
        del optimizer.found_inf
    scaler.update()
    with torch.no_grad():  # a skipped step leaves the buffers as untouched as the parameters
        for b, old in zip(buffers, saved):
            b.copy_(torch.where(finite, b, old))
    return loss.detach(), finite

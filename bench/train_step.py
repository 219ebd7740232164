"""Whole training step against the recurrent stack alone, measured in the same run.

    python bench/train_step.py                      # CUDA: ds2 preset, B=32, 400 output frames, bf16
    python bench/train_step.py --device cpu --threads 2
    python bench/train_step.py --preset small --cell lstm --batch 16 --frames 300

The step is ``crnn.training.step.train_step``, the function the trainer runs: log-mel features on the
device, the conv frontend, the encoder, the head, CTC in fp32, backward, gradient clipping and the
guarded fused AdamW update. The reference is a plain ``torch.nn.GRU`` / ``LSTM`` / ``RNN`` stack
(cuDNN on GPU) of the model's shape, forward+backward on the frontend's output shape under the same
autocast. The breakdown rows time each part's forward+backward alone (they overlap, so they do not
sum to the step). Target on a GPU: step <= 1.25x the recurrent stack.

Real batches are ragged (bucketed lengths within ~15 % of the longest), so the step and the encoder are
also timed on such a batch, with cuDNN fed packed sequences (the default) and padded ones
(``CRNN_CUDA_RNN_INPUT=padded``); the faster at equal results should be the default. ``--profile`` adds
the top kernels of one step (cuDNN's kernel names show whether it took its persistent small-hidden
path) and counts the host syncs in it.
"""
from __future__ import annotations

import argparse
import os

import torch
import torch.nn as nn

import crnn
from common import machine, median_seconds
from crnn.ctc import ctc_loss
from crnn.data.collate import Batch
from crnn.training.step import make_optimizer, train_step

NATIVE = {"gru": nn.GRU, "lstm": nn.LSTM, "rnn": nn.RNN}


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--preset", default=None, help="model preset (default: ds2 on CUDA, small on CPU)")
    p.add_argument("--cell", default="gru", help="recurrent cell of the model (default: gru)")
    p.add_argument("--batch", type=int, default=None, help="B (default: 32 on CUDA, 8 on CPU)")
    p.add_argument("--frames", type=int, default=None, help="output frames T' (default: 400 on CUDA, 200 on CPU)")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default=None,
                   help="autocast dtype (default: bf16 on CUDA, fp32 on CPU)")
    p.add_argument("--repeats", type=int, default=None, help="timed steps (default: 20 on CUDA, 3 on CPU)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--profile", action="store_true", help="print one step's top kernels and its host syncs")
    return p


def ragged(batch: Batch, seed: int = 0) -> Batch:
    """The same batch with lengths drawn between 85 % and 100 % of the longest (a bucketed batch)."""
    g = torch.Generator().manual_seed(seed)
    S = batch.x.shape[1]
    x_lens = (S * (0.85 + 0.15 * torch.rand(batch.x.shape[0], generator=g))).long().clamp_max(S)
    x_lens[0] = S
    x = batch.x * (torch.arange(S)[None] < x_lens[:, None]).to(batch.x.device)
    return Batch(x, x_lens.to(batch.x.device), batch.y, batch.y_lens, batch.texts, batch.paths)


def with_input_mode(mode: str, fn):
    """``fn`` run with cuDNN fed ``mode`` ("packed" or "padded") sequences."""
    def run():
        old = os.environ.get("CRNN_CUDA_RNN_INPUT")
        os.environ["CRNN_CUDA_RNN_INPUT"] = mode
        try:
            return fn()
        finally:
            if old is None:
                del os.environ["CRNN_CUDA_RNN_INPUT"]
            else:
                os.environ["CRNN_CUDA_RNN_INPUT"] = old
    return run


def profile_step(step, device: torch.device) -> None:
    """One step under the profiler: top kernels by device time, and the syncs the host waited on."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    step()
    with profile(activities=activities) as prof:
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
    sort = "cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print("\n```\n" + prof.key_averages().table(sort_by=sort, row_limit=25) + "\n```")
    names = [e.name for e in prof.events()]
    syncs = {n: names.count(n) for n in ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaMemcpyAsync",
                                         "cudaEventSynchronize", "aten::item", "aten::_local_scalar_dense")}
    print("host-side calls in one step: " + ", ".join(f"{k} {v}" for k, v in syncs.items()))


def make_batch(model: crnn.CRNN, batch: int, frames: int, vocab: int, device: torch.device) -> Batch:
    """Random waveforms whose frontend output is exactly ``frames`` long, and random labels of frames/4."""
    sr = model.sample_rate
    samples = int(frames * model.frame_shift * sr)
    while int(model.output_lengths(torch.tensor([samples]))[0]) < frames:
        samples += int(model.frame_shift * sr) // 4 or 1
    x = 0.1 * torch.randn(batch, samples, device=device)
    x_lens = torch.full((batch,), samples, device=device)
    labels = frames // 4
    y = torch.randint(1, vocab, (batch, labels), device=device)
    y_lens = torch.full((batch,), labels, device=device)
    return Batch(x, x_lens, y, y_lens, [""] * batch, [""] * batch)


def main(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if args.threads:
        torch.set_num_threads(args.threads)
    preset = args.preset or ("ds2" if cuda else "small")
    B = args.batch or (32 if cuda else 8)
    T = args.frames or (400 if cuda else 200)
    precision = args.precision or ("bf16" if cuda else "fp32")
    amp_dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    repeats = args.repeats or (20 if cuda else 3)
    vocab = 29

    model = crnn.create_model(preset, vocab_size=vocab, cell=args.cell).to(device).train()
    batch = make_batch(model, B, T, vocab, device)
    optimizer = make_optimizer(model, lr=1e-4, weight_decay=1e-2)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    params = list(model.parameters())

    def autocast():
        return torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None)

    step_s = median_seconds(lambda: train_step(model, batch, optimizer, scaler, amp_dtype, 5.0, params),
                            device, args.warmup, repeats)

    # Reference: the library's own recurrent stack of this shape, on the frontend's output.
    D, H, L = model.frontend.output_size, model.cfg.hidden_size, model.cfg.num_layers
    native_cls = NATIVE.get(args.cell, nn.GRU)
    native = native_cls(D, H, num_layers=L, bidirectional=model.cfg.bidirectional, batch_first=True).to(device)
    feats_in = torch.randn(B, T, D, device=device, requires_grad=True)

    def native_fb() -> None:
        with autocast():
            out = native(feats_in)[0]
        out.float().sum().backward()

    native_s = median_seconds(native_fb, device, args.warmup, repeats)

    # Breakdown: each part forward+backward alone.
    lengths = torch.full((B,), T, device=device)

    def frontend_fb() -> None:
        with autocast():
            f, _ = model.frontend(batch.x, batch.x_lens)
        f.float().sum().backward()

    def encoder_fb() -> None:
        with autocast():
            f, _, _ = model.encoder(feats_in, lengths)
        f.float().sum().backward()

    enc_out = torch.randn(B, T, model.num_features, device=device, requires_grad=True)

    def head_ctc_fb() -> None:
        with autocast():
            lp = model.forward_head(enc_out)
        ctc_loss(lp, lengths, batch.y, batch.y_lens).backward()

    def optimizer_only() -> None:
        optimizer.step()

    # Ragged batches: the whole step, and the encoder alone, with cuDNN fed packed or padded sequences.
    rb = ragged(batch)
    r_lengths = model.output_lengths(rb.x_lens)

    def encoder_ragged_fb() -> None:
        with autocast():
            f, _, _ = model.encoder(feats_in, r_lengths)
        f.float().sum().backward()

    ragged_rows = []
    for mode in ("packed", "padded"):
        ragged_rows.append((f"whole step, ragged batch, {mode} input", median_seconds(with_input_mode(
            mode, lambda: train_step(model, rb, optimizer, scaler, amp_dtype, 5.0, params)), device, args.warmup, repeats)))
        ragged_rows.append((f"encoder, ragged batch, {mode} input", median_seconds(with_input_mode(
            mode, encoder_ragged_fb), device, args.warmup, repeats)))

    parts = [(f"frontend ({model.cfg.frontend}: log-mel + conv)", frontend_fb),
             (f"encoder (crnn {args.cell} x{L})", encoder_fb), ("head + CTC", head_ctc_fb),
             ("optimizer (fused AdamW)", optimizer_only)]
    part_s = [(name, median_seconds(fn, device, args.warmup, repeats)) for name, fn in parts]

    n_params = sum(p.numel() for p in model.parameters())
    print(f"device: {machine(device)}; torch {torch.__version__}; {precision}")
    print(f"preset {preset} ({n_params / 1e6:.1f} M params, cell {args.cell} {L}x{H}, "
          f"{'bi' if model.cfg.bidirectional else 'uni'}directional); B={B}, {batch.x.shape[1]} samples -> "
          f"T'={T} frames of D={D}; median of {repeats}\n")
    print(f"| what | ms | x {native_cls.__name__} stack |")
    print("|---|---:|---:|")
    print(f"| torch.nn.{native_cls.__name__} stack alone (forward+backward) | {native_s * 1e3:.1f} | 1.00 |")
    print(f"| **whole training step** | {step_s * 1e3:.1f} | {step_s / native_s:.2f} |")
    for pname, s in part_s + ragged_rows:
        print(f"| {pname} | {s * 1e3:.1f} | {s / native_s:.2f} |")
    verdict = "met" if step_s <= 1.25 * native_s else "not met"
    print(f"\nstep / recurrent stack = {step_s / native_s:.2f} (target <= 1.25 on a GPU: {verdict})")
    if args.profile:
        profile_step(lambda: train_step(model, rb, optimizer, scaler, amp_dtype, 5.0, params), device)


if __name__ == "__main__":
    main(get_args_parser().parse_args())

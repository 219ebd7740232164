"""Video model speed: training steps of a ResNet-18-per-frame model, and decoding mp4 files while the GPU is watched.

    python bench/video_step.py                                  # CUDA: video_small, B=16, 64 frames of 112x112
    python bench/video_step.py --device cpu --batch 2 --frames 16 --clips 8 --threads 2

Training rows: ``crnn.training.step.train_step`` (the trainer's step: frontend, encoder, head, CTC in fp32,
backward, clipping, fused AdamW) on uint8 clips already on the device, for fp32 / bf16 autocast, with the
weights in the default or the channels-last memory layout (the frontends hand the CNN channels-last
frames either way). Reference: the first row (fp32, default layout).

Decoding row: ``--clips`` mp4 files (H.264, written here) through ``crnn.inference.transcribe_files``, the
``crnn decode`` loop (workers decode the files while the model runs). On CUDA a thread samples the GPU's
busy percentage (NVML, every 20 ms) over the decoding; the target is >= 70 % busy.
"""
from __future__ import annotations

import argparse
import contextlib
import tempfile
import threading
import time
from pathlib import Path

import torch

import crnn
from common import machine, median_seconds
from crnn.data.collate import Batch
from crnn.data.video import write_video
from crnn.inference import transcribe_files
from crnn.tokenizer import Tokenizer
from crnn.training.step import make_optimizer, train_step

LABELS = Tokenizer([f"sign{i}" for i in range(40)], kind="label")


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--preset", default="video_small")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--frames", type=int, default=64, help="frames per clip")
    p.add_argument("--size", type=int, default=112, help="frame height and width")
    p.add_argument("--repeats", type=int, default=None, help="timed steps (default: 10 on CUDA, 2 on CPU)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--clips", type=int, default=None, help="mp4 files decoded (default: 256 on CUDA, 8 on CPU)")
    p.add_argument("--decode-batch", type=int, default=32, help="clips per forward pass when decoding")
    p.add_argument("--workers", type=int, default=None, help="file-reading processes (default: 8 on CUDA, 1 on CPU)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    return p


def make_batch(B: int, T: int, size: int, device: torch.device) -> Batch:
    """Random uint8 clips (B, T, 3, size, size) at full length, and label strings of T/8 signs."""
    x = torch.randint(0, 256, (B, T, 3, size, size), dtype=torch.uint8, device=device)
    labels = max(1, T // 8)
    y = torch.randint(1, len(LABELS), (B, labels), device=device)
    return Batch(x, torch.full((B,), T, device=device), y, torch.full((B,), labels, device=device),
                 [""] * B, [""] * B)


def time_training(args, model: crnn.CRNN, device: torch.device, repeats: int) -> list[tuple[str, float]]:
    batch = make_batch(args.batch, args.frames, args.size, device)
    rows = []
    for precision, amp in (("fp32", None), ("bf16", torch.bfloat16)):
        for layout in ("default", "channels_last"):
            model.to(memory_format=torch.channels_last if layout == "channels_last" else torch.contiguous_format)
            optimizer = make_optimizer(model, lr=1e-4, weight_decay=1e-2)
            scaler = torch.amp.GradScaler(device.type, enabled=False)
            s = median_seconds(lambda: train_step(model, batch, optimizer, scaler, amp, 5.0), device,
                               args.warmup, repeats)
            rows.append((f"{precision}, {layout}", s))
    model.to(memory_format=torch.contiguous_format)
    return rows


class BusySampler:
    """Samples the GPU's utilisation (percent of time a kernel ran) in a background thread."""

    def __init__(self, device: torch.device, every: float = 0.02):
        self.device, self.every, self.samples = device, every, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(torch.cuda.utilization(self.device))
            time.sleep(self.every)

    def __enter__(self) -> "BusySampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mean(self) -> float:
        return sum(self.samples) / len(self.samples) if self.samples else float("nan")


def time_decoding(args, model: crnn.CRNN, device: torch.device, clips: int, workers: int) -> tuple[float, float]:
    """Clips per second through the decode loop, and the GPU's mean busy percent meanwhile (nan on CPU)."""
    g = torch.Generator().manual_seed(0)
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for i in range(clips):
            # Moving blocks over a gradient: frames an H.264 encoder cannot reduce to nothing.
            t = torch.arange(args.frames)[:, None, None, None]
            base = torch.randint(0, 256, (1, 3, args.size, args.size), generator=g, dtype=torch.uint8)
            frames = (base.int() + 3 * t).remainder(256).to(torch.uint8).expand(args.frames, -1, -1, -1)
            paths.append(str(write_video(Path(d) / f"clip{i:04d}.mp4", frames.contiguous(), fps=25.0)))
        list(transcribe_files(model, paths[: args.decode_batch], batch_size=args.decode_batch, device=device,
                              workers=0))  # warm-up: cuDNN algorithm choice, allocator
        busy = BusySampler(device) if device.type == "cuda" else None
        t0 = time.perf_counter()
        with busy or contextlib.nullcontext():
            results = list(transcribe_files(model, paths, batch_size=args.decode_batch, device=device,
                                            workers=workers))
        seconds = time.perf_counter() - t0
    failed = [r for r in results if r.error]
    if failed:
        raise SystemExit(f"error: {failed[0].path}: {failed[0].error}")
    return clips / seconds, busy.mean if busy else float("nan")


def main(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = args.repeats or (10 if cuda else 2)
    clips = args.clips or (256 if cuda else 8)
    workers = args.workers if args.workers is not None else (8 if cuda else 1)
    model = crnn.create_model(args.preset, vocab_size=len(LABELS), height=args.size, width=args.size)
    model.tokenizer = LABELS
    model = model.to(device).train()

    rows = time_training(args, model, device, repeats)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"device: {machine(device)}; torch {torch.__version__}")
    print(f"preset {args.preset} ({n_params / 1e6:.1f} M params); B={args.batch}, {args.frames} frames of "
          f"{args.size}x{args.size}; median of {repeats}\n")
    print("| training step | ms | clips/s | x fp32 default |")
    print("|---|---:|---:|---:|")
    for name, s in rows:
        print(f"| {name} | {s * 1e3:.1f} | {args.batch / s:.1f} | {rows[0][1] / s:.2f} |")

    rate, busy = time_decoding(args, model.eval(), device, clips, workers)
    print(f"\n| decoding {clips} mp4 clips ({args.frames} frames each), batch {args.decode_batch}, "
          f"{workers} workers | clips/s | GPU busy % |")
    print("|---|---:|---:|")
    busy_text = f"{busy:.0f}" if busy == busy else "n/a (CPU)"
    print(f"| transcribe_files (the decode CLI's loop) | {rate:.1f} | {busy_text} |")
    if cuda:
        print(f"\nGPU busy while decoding: {busy:.0f} % (target >= 70 %: {'met' if busy >= 70 else 'not met'})")


if __name__ == "__main__":
    main(get_args_parser().parse_args())

"""Forward+backward time of every recurrent cell against ``torch.nn.GRU``, measured in the same run.

    python bench/cells.py                              # all cells; GPU shape on CUDA, smaller on CPU
    python bench/cells.py --device cpu --batch 8 --time 200 --hidden 128
    python bench/cells.py --long                       # T=4000: parallel-scan cells vs GRU
    python bench/cells.py --cells gru_ref mingru --layers 2 --bidirectional

Prints a Markdown table: median milliseconds per forward+backward step of a stack of layers
(``crnn.encoder.RecurrentEncoder``) on random input with every sequence at full length, and the
ratio to a plain ``torch.nn.GRU`` of the same shape (cuDNN on GPU). "first call" is the first
forward+backward alone: on CUDA it holds ``torch.compile``'s time for the compiled cells (``*_ref``), which
a second run of this script shows cached (Inductor's on-disk cache). For those cells "max |diff|" compares
the compiled outputs and input gradients with the same equations run eagerly (``CRNN_COMPILE_CELLS=0``).
"""
from __future__ import annotations

import argparse
import os
from typing import Callable

import torch
import torch.nn as nn

import crnn
from common import machine, median_seconds
from crnn.encoder import RecurrentEncoder

GPU_SHAPE = dict(batch=32, time=400, hidden=512)
CPU_SHAPE = dict(batch=8, time=200, hidden=128)
LONG_TIME = 4000
LONG_CELLS = ["mingru", "minlstm", "gru"]


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--cells", nargs="+", default=None, help="cells to time (default: all registered)")
    p.add_argument("--batch", type=int, default=None, help="B (default: 32 on CUDA, 8 on CPU)")
    p.add_argument("--time", type=int, default=None, help="T frames (default: 400 on CUDA, 200 on CPU)")
    p.add_argument("--hidden", type=int, default=None, help="H per direction (default: 512 on CUDA, 128 on CPU)")
    p.add_argument("--input", type=int, default=None, help="input features D (default: H)")
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--bidirectional", action="store_true")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    p.add_argument("--long", action="store_true", help=f"T={LONG_TIME}, cells {', '.join(LONG_CELLS)}")
    p.add_argument("--repeats", type=int, default=None, help="timed runs (default: 10 on CUDA, 3 on CPU)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs first (compilation, allocator)")
    return p


def time_step(fn: Callable[[], torch.Tensor], device: torch.device, warmup: int, repeats: int) -> float:
    """Median seconds of ``fn`` (forward) plus the backward of its output's sum."""
    return median_seconds(lambda: fn().float().sum().backward(), device, warmup, repeats)


def main(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    shape = dict(GPU_SHAPE if device.type == "cuda" else CPU_SHAPE)
    if args.long:
        shape["time"] = LONG_TIME
    B = args.batch or shape["batch"]
    T = args.time or shape["time"]
    H = args.hidden or shape["hidden"]
    D = args.input or H
    dtype = getattr(torch, args.dtype)
    repeats = args.repeats or (10 if device.type == "cuda" else 3)
    cells = args.cells or (LONG_CELLS if args.long else crnn.list_cells())
    dirs = 2 if args.bidirectional else 1

    x = torch.randn(B, T, D, device=device, dtype=dtype, requires_grad=True)
    lengths = torch.full((B,), T, device=device)

    baseline = nn.GRU(D, H, num_layers=args.layers, bidirectional=args.bidirectional, batch_first=True)
    baseline = baseline.to(device, dtype)
    base_s = time_step(lambda: baseline(x)[0], device, args.warmup, repeats)

    print(f"device: {machine(device)}; torch {torch.__version__}; {args.dtype}")
    print(f"B={B} T={T} D={D} H={H} layers={args.layers} directions={dirs}; median of {repeats}, forward+backward\n")
    print("| cell | ms | x torch.nn.GRU | first call s | max abs diff vs eager |")
    print("|---|---:|---:|---:|---:|")
    print(f"| torch.nn.GRU | {base_s * 1e3:.1f} | 1.00 | | |")
    for cell in cells:
        enc = RecurrentEncoder(D, H, args.layers, cell=cell, bidirectional=args.bidirectional).to(device, dtype)
        first_s = time_step(lambda: enc(x, lengths)[0], device, 0, 1)
        s = time_step(lambda: enc(x, lengths)[0], device, args.warmup, repeats)
        diff = compiled_vs_eager(enc, x, lengths) if cell.endswith("_ref") and device.type == "cuda" else None
        diff_text = "" if diff is None else f"{diff:.1e}"
        print(f"| {cell} | {s * 1e3:.1f} | {s / base_s:.2f} | {first_s:.1f} | {diff_text} |", flush=True)


def compiled_vs_eager(enc: RecurrentEncoder, x: torch.Tensor, lengths: torch.Tensor) -> float:
    """Largest absolute difference of outputs and input gradients, compiled step against eager equations."""
    results = []
    for flag in ("1", "0"):
        os.environ["CRNN_COMPILE_CELLS"] = flag
        xi = x.detach().clone().requires_grad_()
        y = enc(xi, lengths)[0]
        y.float().square().sum().backward()
        results.append((y.detach().float(), xi.grad.float()))
    os.environ.pop("CRNN_COMPILE_CELLS")
    (y1, g1), (y0, g0) = results
    return max(float((y1 - y0).abs().max()), float((g1 - g0).abs().max()))


if __name__ == "__main__":
    main(get_args_parser().parse_args())

"""ONNX Runtime against PyTorch on the CPU: one exported model, the same 10 s of audio, same process.

    python bench/export.py                      # the "small" preset, 10 s at 16 kHz, 1 thread
    python bench/export.py --model tiny --cell lstm --threads 2

Prints the median latency of each and the ratio (ONNX Runtime / PyTorch). The model is random: the
timing does not depend on the weights. Needs the export extra (pip install -e '.[export]').
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, median_seconds  # noqa: E402

import crnn  # noqa: E402
from crnn.export import OnnxModel, export_onnx  # noqa: E402
from crnn.tokenizer import Tokenizer  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="small", help="preset (default: small)")
    p.add_argument("--cell", default="gru")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=1, help="threads for both runtimes (default: 1)")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    tok = Tokenizer(list("abcdefghijklmnopqrstuvwxyz '"))
    model = crnn.create_model(args.model, vocab_size=len(tok), cell=args.cell).eval()
    model.tokenizer = tok
    sr = model.frontend.cfg.sample_rate
    x = torch.randn(1, int(args.seconds * sr)) * 0.1
    lengths = torch.tensor([x.size(1)])

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = export_onnx(model, Path(tmp) / "model.onnx")
        export_s = time.perf_counter() - t0
        onnx_model = OnnxModel(path, threads=args.threads)

        def run_torch():
            with torch.inference_mode():
                return model(x, lengths)

        cpu = torch.device("cpu")
        torch_s = median_seconds(run_torch, cpu, warmup=1, repeats=args.repeats)
        ort_s = median_seconds(lambda: onnx_model(x, lengths), cpu, warmup=1, repeats=args.repeats)
        diff = (run_torch()[0] - onnx_model(x, lengths)[0]).abs().max().item()

    print(f"machine: {machine(cpu)}, torch {torch.__version__}")
    print(f"model {args.model} ({args.cell}), {args.seconds:g} s of audio at {sr} Hz, {args.threads} thread(s); "
          f"export took {export_s:.1f} s; max |log-prob difference| {diff:.1e}")
    print("| runtime | ms | x PyTorch |\n|---|---:|---:|")
    print(f"| PyTorch (eager) | {torch_s * 1e3:.1f} | 1.00 |")
    print(f"| ONNX Runtime | {ort_s * 1e3:.1f} | {ort_s / torch_s:.2f} |")


if __name__ == "__main__":
    main()

"""CPU deployment in one run: PyTorch fp32 / int8 against ONNX Runtime fp32 / int8, 1 and 2 threads,
batch 1 and 16, every built-in cell, and trained checkpoints with their held-out accuracy.

    python bench/cpu_deploy.py                                   # every built-in cell, random weights
    python bench/cpu_deploy.py --cells gru lstm --checkpoint runs/digits/best.pt --manifest data/fsdd/test.jsonl

Each model is timed on the same input by all runtimes in the same process: real-time factor (compute
seconds per second of input, lower is better) of PyTorch fp32 eager, and the speed of the others as a
multiple of it (higher is better). "ORT Scan" is the fp32 graph with each recurrent layer exported as a
Scan of per-frame ops (the path before native operators), for the cells that have a native one.
Random models take the shape of the first checkpoint (else the spoken-digits shape: ``small``, 2 x 128,
40 mels, x4, 8 kHz); timing does not depend on the weights. With ``--manifest`` (one per checkpoint),
the greedy WER of each variant on it, and the file sizes. Needs the export extra.
"""
from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, median_seconds  # noqa: E402

import crnn  # noqa: E402
from crnn.export import OnnxModel, export_onnx, quantize_onnx  # noqa: E402
from crnn.onnx_rnn import native_kind  # noqa: E402
from crnn.deploy.int8 import quantize_dynamic_int8  # noqa: E402
from crnn.evaluation.manifest import manifest_wer  # noqa: E402
from crnn.tokenizer import Tokenizer  # noqa: E402

DIGITS_SHAPE = dict(hidden_size=128, num_layers=2, n_mels=40, time_subsample=4, conv_channels=16, sample_rate=8000)
VARIANTS = ["PyTorch fp32", "PyTorch int8", "ORT fp32", "ORT int8", "ORT Scan fp32"]


def state_dict_bytes(model: torch.nn.Module) -> int:
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell()


def example(model, batch: int, seconds: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, lengths) of ``seconds`` per item: noise-level audio, or random uint8 frames."""
    g = torch.Generator().manual_seed(0)
    if model.modality == "audio":
        n = int(seconds * model.sample_rate)
        return torch.randn(batch, n, generator=g) * 0.1, torch.full((batch,), n)
    cfg = model.frontend.cfg
    t = int(seconds * cfg.fps)
    x = torch.randint(0, 256, (batch, t, cfg.in_channels, cfg.height, cfg.width), dtype=torch.uint8, generator=g)
    return x, torch.full((batch,), t)


class Variants:
    """The four (five) runtimes of one model, built once; ``get(name, threads)`` -> callable(x, lengths)."""

    def __init__(self, model, folder: Path, scan: bool):
        self.model = model.eval()
        self.int8 = quantize_dynamic_int8(model)
        t0 = time.perf_counter()
        self.paths = {"ORT fp32": export_onnx(model, folder / "m.fp32.onnx")}
        self.export_s = time.perf_counter() - t0
        self.paths["ORT int8"] = quantize_onnx(self.paths["ORT fp32"], folder / "m.int8.onnx")
        if scan:
            self.paths["ORT Scan fp32"] = export_onnx(model, folder / "m.scan.onnx", native_rnn=False)
        self.sessions: dict = {}

    def names(self) -> list[str]:
        return ["PyTorch fp32", "PyTorch int8", *self.paths]

    def get(self, name: str, threads: int):
        if name.startswith("PyTorch"):
            torch.set_num_threads(threads)
            model = self.model if name == "PyTorch fp32" else self.int8

            def run(x, lengths):
                with torch.inference_mode():
                    return model(x, lengths)
            return run
        key = (name, threads)
        if key not in self.sessions:
            self.sessions[key] = OnnxModel(self.paths[name], threads=threads)
        return self.sessions[key]

    def model_of(self, name: str):
        """The variant as a model object (what ``manifest_wer`` reads), on one thread."""
        torch.set_num_threads(1)
        return {"PyTorch fp32": self.model, "PyTorch int8": self.int8}.get(name) or self.get(name, 1)

    def sizes(self) -> dict[str, float]:
        """MB of each variant as stored: state_dict for PyTorch, the .onnx file for ORT."""
        out = {"PyTorch fp32": state_dict_bytes(self.model) / 1e6, "PyTorch int8": state_dict_bytes(self.int8) / 1e6}
        out.update({k: p.stat().st_size / 1e6 for k, p in self.paths.items()})
        return out


def time_model(title: str, v: Variants, args, rows: list[str]) -> None:
    for threads in args.threads:
        for batch in args.batch:
            x, lengths = example(v.model, batch, args.seconds)
            seconds = {}
            for name in v.names():
                fn = v.get(name, threads)
                seconds[name] = median_seconds(lambda: fn(x, lengths), torch.device("cpu"), warmup=1,
                                               repeats=args.repeats)
            base = seconds["PyTorch fp32"]
            rtf = base / (batch * args.seconds)
            cells = [f"{base / seconds[n]:.2f}x" if n in seconds else "" for n in VARIANTS[1:]]
            rows.append(f"| {title} | {threads} | {batch} | {rtf:.4f} | " + " | ".join(cells) + " |")
            print(rows[-1], flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cells", nargs="*", default=crnn.list_cells(), help="random models of these cells")
    p.add_argument("--checkpoint", action="append", default=[], help="trained checkpoint (repeatable)")
    p.add_argument("--manifest", action="append", default=[], help="held-out manifest of each --checkpoint")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    p.add_argument("--seconds", type=float, default=4.0, help="input length per item (default: 4)")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    if args.manifest and len(args.manifest) != len(args.checkpoint):
        p.error("give one --manifest per --checkpoint")

    torch.set_num_threads(1)
    print(f"machine: {machine(torch.device('cpu'))}, torch {torch.__version__}, "
          f"onnxruntime {__import__('onnxruntime').__version__}; {args.seconds:g} s per item")
    speed = ["| model | threads | batch | PyTorch fp32 RTF | " + " | ".join(VARIANTS[1:]) + " |",
             "|---|---:|---:|---:|" + "---:|" * (len(VARIANTS) - 1)]
    accuracy = ["| model | held-out manifest | " + " | ".join(f"{n} WER / MB" for n in VARIANTS[:4]) + " |",
                "|---|---|" + "---|" * 4]
    with tempfile.TemporaryDirectory() as tmp:
        for i, path in enumerate(args.checkpoint):
            model = crnn.load_model(path, device="cpu")
            title = f"`{path}` ({model.cfg.cell}, {sum(q.numel() for q in model.parameters()) / 1e6:.2f} M)"
            folder = Path(tmp) / f"ckpt{i}"
            folder.mkdir()
            v = Variants(model, folder, scan=False)
            sizes = v.sizes()
            if args.manifest:
                wers = {n: manifest_wer(v.model_of(n), args.manifest[i]) for n in VARIANTS[:4]}
                accuracy.append(f"| {title} | `{args.manifest[i]}` ({wers['PyTorch fp32'].items} items) | "
                                + " | ".join(f"{100 * wers[n].wer:.2f} % / {sizes[n]:.2f}" for n in VARIANTS[:4]) + " |")
                print(accuracy[-1], flush=True)
            time_model(title, v, args, speed)
        base = crnn.load_model(args.checkpoint[0]).cfg if args.checkpoint else None
        for cell in args.cells:
            tok = Tokenizer(list("0123456789"))
            if base is not None:
                model = crnn.CRNN(type(base).from_dict({**base.to_dict(), "cell": cell}))
            else:
                model = crnn.create_model("small", vocab_size=len(tok) + 1, cell=cell, **DIGITS_SHAPE)
            model.tokenizer = tok if base is None else crnn.load_model(args.checkpoint[0]).tokenizer
            folder = Path(tmp) / cell
            folder.mkdir()
            v = Variants(model.eval(), folder, scan=native_kind(model.encoder.layers[0]) is not None)
            time_model(f"`{cell}` (random)", v, args, speed)
    print("\n" + "\n".join(speed))
    if len(accuracy) > 2:
        print("\n" + "\n".join(accuracy))


if __name__ == "__main__":
    main()

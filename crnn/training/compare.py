"""Train several cells on the same data, budget and seed; tabulate parameters, speed and accuracy."""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from crnn.training import TrainConfig, train


@dataclass
class CellResult:
    cell: str
    params: int
    seconds_per_epoch: float
    frames_per_second: float  # inference throughput in output frames
    cer: float
    wer: float
    curve: list[tuple[float, float]]  # (seconds, validation CER) after each epoch


@torch.no_grad()
def inference_speed(model, x: torch.Tensor, lengths: torch.Tensor, repeats: int = 3) -> float:
    """Output frames per second of ``model`` on one batch (eval mode, best of ``repeats``)."""
    model.eval()
    model(x, lengths)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        if x.is_cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        _, out_lens = model(x, lengths)
        if x.is_cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return float(out_lens.sum()) / best


def compare_cells(cells: list[str], base: TrainConfig, out: str | Path) -> list[CellResult]:
    """Train one model per cell with ``base`` (only the cell and output folder change)."""
    from crnn.data.collate import collate

    out = Path(out)
    results = []
    for cell in cells:
        cfg = copy.deepcopy(base)
        cfg.out = str(out / cell)
        cfg.model_args = {**cfg.model_args, "cell": cell}
        summary = train(cfg)
        model = summary["model"]
        device = next(model.parameters()).device
        probe = collate([_probe_item(cfg, model, i) for i in range(8)])
        fps = inference_speed(model, probe.x.to(device), probe.x_lens.to(device))
        hist = summary["history"]
        per_epoch = hist[-1]["seconds"] / len(hist) if hist else float("nan")
        results.append(CellResult(cell, sum(p.numel() for p in model.parameters()), per_epoch, fps,
                                  summary["best_cer"], summary["best_wer"],
                                  [(h["seconds"], h["val_cer"]) for h in hist if h["val_cer"] is not None]))
    return results


def _probe_item(cfg: TrainConfig, model, i: int):
    """A validation-like input for timing: the built-in task's items, or the manifest's first items."""
    from crnn.data.build import build_builtin, make_dataset, read_rows

    if cfg.train_manifest:
        rows = read_rows(cfg.val_manifest or cfg.train_manifest, cfg.manifest_format)
        ds = make_dataset(rows[: 8], model.tokenizer, model.modality, model.reader_args, train=False)
        return ds[i % len(ds)]
    bundle = build_builtin(cfg.task, 1, 8, cfg.seed, model.sample_rate, reader_args=model.reader_args)
    return bundle.val[i]


def markdown_table(results: list[CellResult]) -> str:
    lines = ["| cell | parameters | train s/epoch | inference frames/s | val CER | val WER |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r.cell} | {r.params:,} | {r.seconds_per_epoch:.1f} | {r.frames_per_second:,.0f} | "
                     f"{100 * r.cer:.2f}% | {100 * r.wer:.2f}% |")
    return "\n".join(lines) + "\n"


def plot_curves(results: list[CellResult], path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in results:
        if r.curve:
            xs, ys = zip(*r.curve)
            ax.plot(xs, [100 * y for y in ys], marker="o", label=r.cell)
    ax.set_xlabel("training time (s)")
    ax.set_ylabel("validation CER (%)")
    ax.set_title("validation CER against wall-clock time")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

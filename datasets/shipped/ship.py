"""Ship a trained model in the package: its slim checkpoint and its learning curve.

    python datasets/shipped/ship.py --checkpoint runs/textlines_base/best.pt --name textlines-en

Writes ``crnn/pretrained/<name>.pt`` (config, vocabulary, fp16 weights or ``--precision fp32``; no optimizer state) and
``docs/img/<name>-curve.png`` (validation CER and training loss per epoch, from the run's ``log.csv``), and
prints the size. The model card (``crnn/pretrained/<name>.md``) and its row in ``models.json`` are written
by hand from the measured tables.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from crnn.pretrained import write_shipped  # noqa: E402


def plot_curve(log_csv: Path, out: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in csv.DictReader(log_csv.open()) if r.get("val_cer")]
    epochs = [int(r["epoch"]) for r in rows]
    fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
    ax.plot(epochs, [100 * float(r["val_cer"]) for r in rows], "o-", label="validation CER (%)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation CER (%)")
    ax.set_yscale("log")
    ax2 = ax.twinx()
    ax2.plot(epochs, [float(r["train_loss"]) for r in rows], "s--", color="tab:orange", label="training loss")
    ax2.set_ylabel("training loss")
    ax2.set_yscale("log")
    ax.set_title(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="the run's best.pt")
    ap.add_argument("--name", required=True, help="the shipped model's name")
    ap.add_argument("--precision", choices=("fp16", "fp32"), default="fp16",
                    help="how the weights are stored (default: %(default)s; fp32 doubles the size)")
    ap.add_argument("--log", help="the run's log.csv (default: beside the checkpoint)")
    args = ap.parse_args()
    path = write_shipped(args.checkpoint, args.name, precision=args.precision)
    print(f"{path}: {path.stat().st_size / 1e6:.2f} MB")
    log = Path(args.log) if args.log else Path(args.checkpoint).with_name("log.csv")
    if log.is_file():
        print(plot_curve(log, ROOT / "docs" / "img" / f"{args.name}-curve.png", args.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""crnn against kraken as line-recognition trainers: the same training lines, the same CPU minutes.

    python bench/kraken_compare.py --ketos /path/to/venv/bin/ketos --minutes 25

kraken (``pip install kraken``; its ``ketos train`` is a PyTorch CNN-LSTM-CTC line trainer) is not a
dependency of this project: install it in a virtual environment of its own and pass its ``ketos``.

Data (``crnn synth textlines``, from ``datasets/textlines/prepare.py``'s fonts and corpus):

* training: ``--train`` (a manifest folder of line images), fixed lines both trainers read;
* validation: ``--valid``, the lines both trainers validate on while training;
* test: ``--test``, lines in the four held-out font families and held-out words (the shipped model's test set).

Each trainer gets one thread, in-process data loading and ``--minutes`` of wall-clock time on an otherwise
idle core (kraken is stopped by a timeout; its checkpoints and its validation log give the curve); each
trainer's own defaults otherwise (kraken: its default VGSL network at 120 px, batch 16 instead of 1 so it
sees as many lines a minute as it can; crnn: ``image_base``, batch 16). The best model of each is then
scored on the test set by its own tool (``ketos test``, ``crnn eval``): character error rate.
Prints the validation CER each reached by minute and the test CER, as a Markdown table.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def kraken_folder(manifest_dir: Path, out: Path) -> list[Path]:
    """Line images (linked) beside ``.gt.txt`` transcripts: kraken's ``-f path`` layout."""
    out.mkdir(parents=True, exist_ok=True)
    images = []
    for line in (manifest_dir / "manifest.jsonl").read_text().splitlines():
        row = json.loads(line)
        stem = Path(row["path"]).stem
        image = out / f"{stem}.png"
        if not image.exists():
            os.symlink((manifest_dir / row["path"]).resolve(), image)
        (out / f"{stem}.gt.txt").write_text(row["text"] + "\n", encoding="utf-8")
        images.append(image)
    return images


def run_kraken(ketos: str, work: Path, train: Path, valid: Path, minutes: float, spec: str | None = None,
               tag: str = "kraken") -> dict:
    train_list, valid_list = work / "kraken_train.txt", work / "kraken_valid.txt"
    train_list.write_text("\n".join(map(str, kraken_folder(train, work / "kraken_lines/train"))) + "\n")
    valid_list.write_text("\n".join(map(str, kraken_folder(valid, work / "kraken_lines/valid"))) + "\n")
    out = work / f"{tag}_model"
    log = work / f"{tag}_train.log"
    cmd = [ketos, "-d", "cpu", "--threads", "1", "--workers", "0", "train", "-f", "path", "-B", "16",
           "-o", str(out), "--quit", "fixed", "-N", "1000", "-F", "0.1", "-t", str(train_list), "-e", str(valid_list)]
    if spec:
        cmd += ["-s", spec]
    t0 = time.time()
    with open(log, "w") as f:
        try:
            subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=minutes * 60, env=one_thread_env())
        except subprocess.TimeoutExpired:
            pass
    return {"curve": kraken_curve(out, t0), "best": best_checkpoint(out)}


CHECKPOINT = re.compile(r"checkpoint_\d+-([0-9.]+)(?:-v\d+)?\.ckpt")  # <epoch>-<val_accuracy>[-v<n>].ckpt


def kraken_curve(out: Path, t0: float) -> list[tuple[float, float]]:
    """(minutes since t0, validation CER) of each checkpoint kraken wrote, one per validation."""
    points = []
    for ck in sorted(out.glob("checkpoint_*.ckpt"), key=lambda p: p.stat().st_mtime):
        m = CHECKPOINT.fullmatch(ck.name)
        if m:
            points.append(((ck.stat().st_mtime - t0) / 60, 1 - float(m.group(1))))
    return points


def best_checkpoint(out: Path) -> Path | None:
    scored = [(float(m.group(1)), p.stat().st_mtime, p) for p in out.glob("checkpoint_*.ckpt")
              if (m := CHECKPOINT.fullmatch(p.name))]
    return max(scored)[2] if scored else None


def kraken_test(ketos: str, model: Path, test: Path, work: Path) -> float:
    weights = work / f"{model.parent.name}_best.safetensors"
    subprocess.run([ketos, "convert", "-o", str(weights), str(model)], check=True, capture_output=True)
    images = kraken_folder(test, work / "kraken_lines/test")
    r = subprocess.run([ketos, "-d", "cpu", "--threads", "1", "test", "-f", "path", "-m", str(weights),
                        *map(str, images)], capture_output=True, text=True, env=one_thread_env())
    m = re.search(r"([0-9.]+)%\s+Character Accuracy", r.stdout + r.stderr) or \
        re.search(r"Character Accuracy[^0-9]*([0-9.]+)%", r.stdout + r.stderr)
    if not m:
        raise SystemExit(f"error: ketos test printed no character accuracy:\n{(r.stdout + r.stderr)[-2000:]}")
    return 1 - float(m.group(1)) / 100


def run_crnn(work: Path, train: Path, valid: Path, minutes: float) -> dict:
    out = work / "crnn_run"
    cmd = [sys.executable, "-m", "crnn", "train", "--train-manifest", str(train / "manifest.jsonl"),
           "--val-manifest", str(valid / "manifest.jsonl"), "--model", "image_base", "--out", str(out),
           "--overwrite", "--epochs", "1000", "--max-minutes", str(minutes), "--time-schedule", "--batch-size", "16",
           "--warmup-steps", "300", "--threads", "1", "--workers", "0", "--no-progress", "--no-tensorboard"]
    subprocess.run(cmd, cwd=ROOT, check=True, env=one_thread_env(), stdout=subprocess.DEVNULL)
    rows = [r for r in csv.DictReader((out / "log.csv").open()) if r.get("val_cer")]
    return {"curve": [(float(r["seconds"]) / 60, float(r["val_cer"])) for r in rows], "best": out / "best.pt"}


def crnn_test(model: Path, test: Path) -> float:
    r = subprocess.run([sys.executable, "-m", "crnn", "eval", "-c", str(model), str(test / "manifest.jsonl")],
                       cwd=ROOT, capture_output=True, text=True, check=True, env=one_thread_env())
    m = re.search(r"CER\s+([0-9.]+)\s*%", r.stdout)
    if not m:
        raise SystemExit(f"error: crnn eval printed no CER:\n{r.stdout[-2000:]}")
    return float(m.group(1)) / 100


def one_thread_env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def at_minute(curve: list[tuple[float, float]], minute: float) -> str:
    """The best validation CER reached by ``minute`` (a run stopped by its budget validates just after it)."""
    seen = [cer for t, cer in curve if t <= minute + 0.5]
    return f"{100 * min(seen):.1f} %" if seen else "—"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ketos", required=True, help="kraken's ketos command (from its own virtual environment)")
    ap.add_argument("--train", default="data/kraken_cmp/train")
    ap.add_argument("--valid", default="data/kraken_cmp/valid")
    ap.add_argument("--test", default="data/textlines/test")
    ap.add_argument("--minutes", type=float, default=25.0)
    ap.add_argument("--work", default="runs/kraken_compare")
    ap.add_argument("--only", choices=["kraken", "crnn"], help="run one trainer (the other's results are kept)")
    ap.add_argument("--kraken-spec", help="a VGSL network for kraken instead of its default (e.g. one the size of "
                                          "crnn's); its rows are labelled 'kraken, --kraken-spec'")
    args = ap.parse_args()
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    train, valid, test = (Path(p).resolve() for p in (args.train, args.valid, args.test))
    results_path = work / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    if args.only in (None, "kraken"):
        tag = "kraken_spec" if args.kraken_spec else "kraken"
        k = run_kraken(args.ketos, work, train, valid, args.minutes, args.kraken_spec, tag)
        label = f"kraken, {args.kraken_spec}" if args.kraken_spec else "kraken (its default network)"
        results[label] = {"curve": k["curve"],
                             "test_cer": kraken_test(args.ketos, k["best"], test, work) if k["best"] else None}
        results_path.write_text(json.dumps(results, indent=1))
    if args.only in (None, "crnn"):
        c = run_crnn(work, train, valid, args.minutes)
        results["crnn"] = {"curve": c["curve"], "test_cer": crnn_test(c["best"], test)}
        results_path.write_text(json.dumps(results, indent=1))
    minutes = [m for m in (2, 5, 10, 15, 20, 25, 30, 45, 60) if m <= args.minutes]
    print(f"| trainer | " + " | ".join(f"val CER by {m} min" for m in minutes) + " | test CER (held-out fonts) |")
    print("|---|" + "---:|" * (len(minutes) + 1))
    for name, r in results.items():
        test_cer = f"{100 * r['test_cer']:.2f} %" if r.get("test_cer") is not None else "—"
        print(f"| {name} | " + " | ".join(at_minute(r["curve"], m) for m in minutes) + f" | {test_cer} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

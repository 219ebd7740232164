"""`crnn decode` over a folder of WAV files against the model alone, measured in the same run.

    python bench/decode_files.py                               # CUDA: 500 files x 10 s, preset small
    python bench/decode_files.py --device cpu --files 48 --seconds 4 --threads 1
    python bench/decode_files.py --checkpoint runs/digits/best.pt --files 1000

Writes ``--files`` WAV files (DTMF key strings padded with noise to ``--seconds``, at the model's
sample rate) to a temporary folder, then measures, in seconds of audio per second of wall time:

* **model only**: the waveforms already in memory, batched as the CLI batches them; moved to the
  device, frontend + encoder + head, greedy decoding. The ceiling for any file decoder.
* **decode CLI (in process)**: ``crnn.inference.transcribe_files``, the CLI's loop: files read and
  resampled by DataLoader workers while the model runs, results in input order.
* **decode CLI (subprocess)**: ``python -m crnn decode --checkpoint CKPT FOLDER`` end to end,
  interpreter start and model loading included.

A fresh model of ``--preset`` serves when no checkpoint is given (speed does not depend on the weights).
Targets on a GPU: >= 2,000 s of audio per second, and the CLI >= 0.8x the model-only rate.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

import crnn
from common import machine
from crnn.data.audio import read_audio
from crnn.data.collate import collate
from crnn.data.builtin.dtmf import dtmf_tokenizer, generate_utterance
from crnn.decoding import ctc_greedy
from crnn.inference import transcribe_files
from crnn.checkpoint import save_checkpoint


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--checkpoint", help="a trained model (default: a fresh --preset model)")
    p.add_argument("--preset", default="small", help="model preset without --checkpoint (default: small)")
    p.add_argument("--files", type=int, default=None, help="WAV files (default: 500 on CUDA, 48 on CPU)")
    p.add_argument("--seconds", type=float, default=None, help="length of each file (default: 10 on CUDA, 4 on CPU)")
    p.add_argument("--batch-size", type=int, default=None, help="files per batch (default: 64 on CUDA, 8 on CPU)")
    p.add_argument("--workers", type=int, default=None, help="reader processes (default: 4 on CUDA, 1 on CPU)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--no-subprocess", action="store_true", help="skip the subprocess run")
    return p


def write_files(folder: Path, n: int, seconds: float, sample_rate: int, seed: int = 0) -> list[Path]:
    """DTMF key strings at a random offset in ``seconds`` of low noise, as 16-bit WAV."""
    rng = np.random.default_rng(seed)
    total = int(seconds * sample_rate)
    paths = []
    for i in range(n):
        wave, _, _ = generate_utterance(rng, sample_rate=sample_rate)
        wave = wave[:total]
        out = (0.003 * rng.standard_normal(total)).astype(np.float32)
        start = int(rng.integers(0, total - len(wave) + 1))
        out[start:start + len(wave)] += wave
        path = folder / f"utt{i:05d}.wav"
        sf.write(path, np.clip(out, -1, 1), sample_rate, subtype="PCM_16")
        paths.append(path)
    return paths


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def model_only_seconds(model: crnn.CRNN, paths: list[Path], batch_size: int, device: torch.device) -> float:
    """Wall time of device transfer + forward + greedy decoding over in-memory waveforms, CLI batching."""
    sr = model.sample_rate
    items = [{"signal": read_audio(str(p), sr), "tokens": torch.zeros(0, dtype=torch.long), "text": "",
              "path": str(p)} for p in paths]
    batches = [collate(items[i:i + batch_size]) for i in range(0, len(items), batch_size)]
    if device.type == "cuda":
        batches = [b.pin_memory() for b in batches]

    def run() -> None:
        with torch.inference_mode():
            for b in batches:
                log_probs, lens = model(b.x.to(device, non_blocking=True), b.x_lens.to(device))
                ctc_greedy(log_probs, lens)

    run()  # warm-up: kernels, allocator
    sync(device)
    t0 = time.perf_counter()
    run()
    sync(device)
    return time.perf_counter() - t0


def cli_seconds(model: crnn.CRNN, paths: list[Path], batch_size: int, device: torch.device, workers: int) -> float:
    files = [str(p) for p in paths]
    for _ in transcribe_files(model, files[: 2 * batch_size], batch_size=batch_size, device=device, workers=0):
        pass  # warm-up on a slice
    sync(device)
    t0 = time.perf_counter()
    n_ok = sum(r.error is None for r in transcribe_files(model, files, batch_size=batch_size, device=device,
                                                         workers=workers))
    sync(device)
    assert n_ok == len(files), f"only {n_ok} of {len(files)} files decoded"
    return time.perf_counter() - t0


def main(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if args.threads:
        torch.set_num_threads(args.threads)
    n_files = args.files or (500 if cuda else 48)
    seconds = args.seconds or (10.0 if cuda else 4.0)
    batch_size = args.batch_size or (64 if cuda else 8)
    workers = args.workers if args.workers is not None else (4 if cuda else 1)

    with tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        if args.checkpoint:
            ckpt = Path(args.checkpoint)
            model = crnn.load_model(ckpt, device=device)
        else:
            tok = dtmf_tokenizer()
            model = crnn.create_model(args.preset, vocab_size=len(tok)).eval()
            model.tokenizer = tok
            ckpt = tmp_dir / "model.pt"
            save_checkpoint(ckpt, model, {})
            model = crnn.load_model(ckpt, device=device)
        sr = model.sample_rate
        wav_dir = tmp_dir / "wavs"
        wav_dir.mkdir()
        paths = write_files(wav_dir, n_files, seconds, sr)
        audio_s = n_files * seconds

        model_s = model_only_seconds(model, paths, batch_size, device)
        cli_s = cli_seconds(model, paths, batch_size, device, workers)
        sub_s = None
        if not args.no_subprocess:
            cmd = [sys.executable, "-m", "crnn", "decode", "--checkpoint", str(ckpt), str(wav_dir),
                   "--batch-size", str(batch_size), "--workers", str(workers), "--device", str(device)]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            t0 = time.perf_counter()
            r = subprocess.run(cmd, capture_output=True, text=True)
            sub_s = time.perf_counter() - t0
            if r.returncode != 0:
                raise SystemExit(f"crnn decode failed:\n{r.stderr}")

    n_params = sum(p.numel() for p in model.parameters())
    print(f"device: {machine(device)}; torch {torch.__version__}")
    print(f"model: {args.checkpoint or args.preset} ({n_params / 1e6:.2f} M params, {model.cfg.cell}); "
          f"{n_files} WAV files x {seconds:g} s at {sr} Hz = {audio_s:.0f} s of audio; batch {batch_size}, "
          f"{workers} reader worker(s)\n")
    print("| what | wall s | audio s per s | x model only |")
    print("|---|---:|---:|---:|")
    print(f"| model only (in memory, greedy) | {model_s:.2f} | {audio_s / model_s:.0f} | 1.00 |")
    print(f"| decode CLI loop (in process) | {cli_s:.2f} | {audio_s / cli_s:.0f} | {model_s / cli_s:.2f} |")
    if sub_s is not None:
        print(f"| `crnn decode FOLDER` (subprocess, start-up included) | {sub_s:.2f} | {audio_s / sub_s:.0f} | "
              f"{model_s / sub_s:.2f} |")
    print(f"\nCLI / model-only rate = {model_s / cli_s:.2f} (target >= 0.8); "
          f"{audio_s / cli_s:.0f} s of audio per second (target on a GPU >= 2000)")


if __name__ == "__main__":
    main(get_args_parser().parse_args())

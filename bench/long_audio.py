"""Long recordings: time and peak memory of ``crnn decode`` for 1, 10 and 60 minutes of audio.

    python bench/long_audio.py                         # 1, 10, 60 min, preset small, CPU, 1 thread
    python bench/long_audio.py --minutes 1 10 --whole --threads 2

Writes each recording (DTMF key strings with 0.5-3 s pauses and a noise floor, 16 kHz WAV) block by
block to a temporary folder, then decodes it in a fresh process (``crnn.inference.transcribe_files``,
the CLI's loop, default ``--segment auto``; the fastest of ``--repeats`` runs for lengths under 30
minutes) and reports wall time, peak resident memory (RSS), segment count and the padded audio of
the largest batch (what sets the peak: at most ``batch_size`` x the longest segment, 16 x 20 s by
default, whatever the file's length). Each row prints its time per minute of audio against the first
(shortest) run: 1.00 means time grows linearly with length. ``--segment none`` runs of the
``--whole`` lengths show what the whole-file path needs. Untrained weights: speed does not depend on them.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000


def write_recording(path: Path, minutes: float, seed: int = 0) -> None:
    """DTMF utterances with pauses and noise, written a block at a time (the writer never holds the file)."""
    from crnn.data.builtin.dtmf import DTMFSpec, generate_utterance

    rng = np.random.default_rng(seed)
    spec = DTMFSpec(snr_db=(15.0, 30.0), level_db=(-20.0, -6.0))
    total, written = int(minutes * 60 * SR), 0
    with sf.SoundFile(path, "w", SR, 1, subtype="PCM_16") as f:
        while written < total:
            wave, _, _ = generate_utterance(rng, spec, sample_rate=SR)
            block = np.concatenate([wave, np.zeros(int(rng.uniform(0.5, 3.0) * SR))])
            block += rng.normal(0, 10 ** (-55 / 20), block.size)
            block = block[: total - written]
            f.write(block.astype(np.float32))
            written += block.size


def decode_once(path: str, preset: str, segment: str, threads: int) -> dict:
    """Run in the child: build the model, decode the file, report time, peak RSS and segments."""
    import torch

    import crnn
    from crnn.data.builtin.dtmf import dtmf_tokenizer
    from crnn.inference import SegmentOptions, transcribe_files

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    tok = dtmf_tokenizer()
    model = crnn.create_model(preset, vocab_size=len(tok), sample_rate=SR).eval()
    model.tokenizer = tok
    largest = [0]
    forward = model.forward

    def counting_forward(x, lengths):  # the padded audio of the largest batch sets the peak memory
        largest[0] = max(largest[0], x.numel())
        return forward(x, lengths)

    model.forward = counting_forward
    t0 = time.perf_counter()
    (result,) = list(transcribe_files(model, [path], segment=SegmentOptions.parse(segment), workers=0))
    seconds = time.perf_counter() - t0
    if result.error:
        raise SystemExit(result.error)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"seconds": seconds, "peak_mib": peak_kib / 1024, "segments": result.segments,
            "audio_s": result.duration, "largest_batch_s": largest[0] / SR}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 60])
    p.add_argument("--preset", default="small")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--whole", type=float, nargs="*", default=[1, 10],
                   help="lengths (minutes) also decoded with --segment none, for reference (default: 1 10)")
    p.add_argument("--repeats", type=int, default=3,
                   help="runs of each length under 30 minutes, the fastest kept (default: 3; longer ones run once)")
    p.add_argument("--child", nargs=3, metavar=("PATH", "SEGMENT", "PRESET"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        path, segment, preset = args.child
        print(json.dumps(decode_once(path, preset, segment, args.threads)))
        return

    import torch

    from common import machine

    torch.set_num_threads(args.threads)
    print(f"machine: {machine(torch.device('cpu'))}; preset {args.preset}; torch {torch.__version__}")
    runs = [(m, s) for m in args.minutes for s in (["auto", "none"] if m in args.whole else ["auto"])]
    print(f"{'audio':>8} {'segment':>8} {'segments':>8} {'wall s':>8} {'s / min':>8} {'x first':>8} {'largest batch s':>16} {'peak RSS MiB':>13}")
    first = None
    with tempfile.TemporaryDirectory() as tmp:
        for minutes, segment in runs:
            path = Path(tmp) / f"{minutes:g}min.wav"
            if not path.exists():
                write_recording(path, minutes)
            env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
            rows = []
            for _ in range(args.repeats if minutes < 30 else 1):
                out = subprocess.run([sys.executable, __file__, "--child", str(path), segment, args.preset,
                                      "--threads", str(args.threads)], capture_output=True, text=True, env=env)
                if out.returncode:
                    raise SystemExit(out.stderr)
                rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            r = min(rows, key=lambda row: row["seconds"])  # the least disturbed run of a shared machine
            per_min = r["seconds"] / (r["audio_s"] / 60)
            first = first or per_min
            print(f"{minutes:>6g} m {segment:>8} {r['segments']:>8} {r['seconds']:>8.1f} {per_min:>8.2f} "
                  f"{per_min / first:>8.2f} {r['largest_batch_s']:>16.0f} {r['peak_mib']:>13.0f}", flush=True)


if __name__ == "__main__":
    main()

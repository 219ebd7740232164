"""Streaming latency of the whole-model streaming graph in onnxruntime, simulated in real time.

    python bench/stream_latency.py --checkpoint runs/dtmf_uni/best.pt --chunks-ms 100 200 320 640

Built-in DTMF utterances (each key a "word") are fed chunk by chunk as they would arrive: chunk c is
complete at audio time (c + 1) x chunk, and its tokens are out when the call returns (the measured
compute time of that call added). A key's end is the end of its tone in the generated audio. Latency
of a key = the time its token is emitted - its end; the median and 95th percentile over every key
recognised in the right place (by greedy decoding of the stream), per chunk size, one thread.
A forward-only audio model is needed (``--unidirectional``).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

import crnn  # noqa: E402
from crnn.data.builtin.dtmf import DTMFSpec, tone_pair  # noqa: E402
from crnn.streaming_graph import export_streaming_model_onnx  # noqa: E402


def utterance(rng: np.random.Generator, sr: int, spec: DTMFSpec) -> tuple[np.ndarray, str, list[float]]:
    """DTMF keys with pauses: (waveform (S,), keys, end time of each key in seconds)."""
    keys = "".join(rng.choice(list("0123456789"), size=int(rng.integers(3, 8))))
    parts, ends, t = [np.zeros(int(rng.uniform(0.2, 0.4) * sr), np.float32)], [], 0.0
    t = parts[0].size
    for k in keys:
        tone = 0.3 * tone_pair(k, int(rng.uniform(0.08, 0.2) * sr), sr, rng, spec)
        gap = np.zeros(int(rng.uniform(0.08, 0.2) * sr), np.float32)
        parts += [tone.astype(np.float32), gap]
        t += tone.size
        ends.append(t / sr)
        t += gap.size
    parts.append(np.zeros(int(0.4 * sr), np.float32))
    wave = np.concatenate(parts)
    wave += 0.003 * rng.standard_normal(wave.size).astype(np.float32)
    return wave, keys, ends


def run_stream(session, names, wave: np.ndarray, chunk: int, sr: int):
    """Greedy tokens of one stream with the wall-clock time each one is out: [(token, emit seconds)]."""
    meta = session.get_modelmeta().custom_metadata_map
    shapes, dtypes = json.loads(meta["state_shapes"]), json.loads(meta["state_dtypes"])
    state = {n: np.zeros([1 if d == "batch" else d for d in shapes[n]], dtypes[n]) for n in names}
    out_tokens, prev = [], 0
    for c, start in enumerate(range(0, wave.size, chunk)):
        piece = wave[start:start + chunk]
        feeds = {"audio": np.pad(piece, (0, chunk - piece.size))[None], "num_samples": np.array([piece.size])}
        t0 = time.perf_counter()
        out = session.run(None, feeds | {f"{n}_in": state[n] for n in names})
        compute = time.perf_counter() - t0
        state = dict(zip(names, out[4:]))
        emitted = (start + piece.size) / sr + compute  # the chunk's last sample arrives, then the call runs
        ids = out[0][0, : out[1][0]].argmax(-1).tolist()
        if start + chunk >= wave.size:  # the end of input completes the last frames
            ids += out[2][0, : out[3][0]].argmax(-1).tolist()
        for i in ids:
            if i != 0 and i != prev:
                out_tokens.append((i, emitted))
            prev = i
    return out_tokens


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a forward-only DTMF model (crnn train --unidirectional)")
    p.add_argument("--chunks-ms", type=float, nargs="+", default=[100, 200, 320, 640])
    p.add_argument("--utterances", type=int, default=40)
    args = p.parse_args()
    import onnxruntime as ort

    torch.set_num_threads(1)
    model = crnn.load_model(args.checkpoint, device="cpu")
    sr = model.sample_rate
    with tempfile.TemporaryDirectory() as tmp:
        path = export_streaming_model_onnx(model, Path(tmp) / "m.streaming.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    names, unit = json.loads(meta["state_names"]), int(meta["chunk_multiple"])
    vocab = json.loads(meta["vocabulary"])
    rng = np.random.default_rng(0)
    data = [utterance(rng, sr, DTMFSpec()) for _ in range(args.utterances)]
    print(f"machine: {machine(torch.device('cpu'))}; {args.checkpoint}, {len(data)} utterances, "
          f"{sum(len(k) for _, k, _ in data)} keys; chunk multiple {1000 * unit / sr:g} ms")
    print("| chunk | keys right | latency median | p95 | compute per chunk (median) |\n|---:|---:|---:|---:|---:|")
    for ms in args.chunks_ms:
        chunk = max(unit, int(round(ms / 1000 * sr / unit)) * unit)
        lat, right, total, compute = [], 0, 0, []
        for wave, keys, ends in data:
            t0 = time.perf_counter()
            tokens = run_stream(session, names, wave, chunk, sr)
            compute.append((time.perf_counter() - t0) / -(-wave.size // chunk))
            total += len(keys)
            if "".join(vocab[i] for i, _ in tokens) == keys:  # aligned one to one: each key's own token
                right += len(keys)
                lat += [emit - end for (_, emit), end in zip(tokens, ends)]
        lat.sort()
        p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))] if lat else float("nan")
        med = statistics.median(lat) if lat else float("nan")
        print(f"| {1000 * chunk / sr:.0f} ms | {right}/{total} | {1000 * med:.0f} ms | {1000 * p95:.0f} ms | "
              f"{1000 * statistics.median(compute):.2f} ms |", flush=True)


if __name__ == "__main__":
    main()

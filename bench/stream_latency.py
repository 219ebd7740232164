"""Streaming latency of the whole-model streaming graph in onnxruntime, simulated in real time.

    python bench/stream_latency.py --checkpoint runs/dtmf_uni/best.pt --chunks-ms 100 200 320 640
    python bench/stream_latency.py --checkpoint runs/digits_uni/best.pt --manifest data/fsdd/test_digits.jsonl

Utterances are fed chunk by chunk as they would arrive: chunk c is complete at audio time (c + 1) x
chunk, and its tokens are out when the call returns (the measured compute time of that call added).
Without ``--manifest`` they are built-in DTMF keys (each key a "word", ending where its tone ends);
with one, 3-7 of its single-word recordings (one token each: a ``--units word`` model, or one-character
words) joined by 80-200 ms pauses, a word ending where its recording's energy last comes within 30 dB
of its loudest 10 ms (each recording is cut 50 ms after that: recordings keep silence after the word).
Latency of a word = the time its token is emitted - its end (negative: out before the word has ended,
as a model may commit once a word is clear); the median and 95th percentile over every word recognised
in its place (greedy decoding of the stream, aligned to the reference words by minimum edits), per
chunk size, one thread. A forward-only audio model is needed (``--unidirectional``).
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


def spoken_utterance(rng: np.random.Generator, sr: int, words: list[tuple[np.ndarray, str]]
                     ) -> tuple[np.ndarray, list[str], list[float]]:
    """3-7 recordings with pauses: (waveform (S,), their words, end time of each in seconds)."""
    picks = rng.choice(len(words), size=int(rng.integers(3, 8)))
    parts, ends, t = [np.zeros(int(rng.uniform(0.2, 0.4) * sr), np.float32)], [], 0
    t = parts[0].size
    for i in picks:
        gap = np.zeros(int(rng.uniform(0.08, 0.2) * sr), np.float32)
        parts += [words[i][0], gap]
        t += words[i][0].size
        ends.append(t / sr - 0.05)  # the word's end: 50 ms before its cut
        t += gap.size
    parts.append(np.zeros(int(0.4 * sr), np.float32))
    return np.concatenate(parts), [words[i][1] for i in picks], ends


def speech_end(samples: np.ndarray, sr: int, floor_db: float = 30.0) -> int:
    """Samples up to the end of the last 10 ms frame within ``floor_db`` of the loudest: where the word
    ends, not the recording (recordings keep some silence after the word)."""
    hop = sr // 100
    frames = samples[: samples.size // hop * hop].reshape(-1, hop)
    energy_db = 10 * np.log10((frames.astype(np.float64) ** 2).mean(1) + 1e-12)
    loud = np.flatnonzero(energy_db > energy_db.max() - floor_db)
    return int((loud[-1] + 1) * hop) if loud.size else samples.size


def read_words(manifest: str, sr: int, vocab: list[str]) -> list[tuple[np.ndarray, str]]:
    """(samples at ``sr``, word) of each single-word row whose word is one token of the model."""
    from crnn.data.audio.reader import read_audio
    from crnn.data.manifest import read_manifest

    rows = [r for r in read_manifest(manifest) if r["text"].strip() in vocab]
    if not rows:
        sys.exit(f"error: {manifest}: no row is a single word the model has as one token")
    words = []
    for r in rows:  # each recording cut 50 ms after its word ends: the pause that follows is the bench's own
        samples = read_audio(r["path"], sr).numpy().astype(np.float32)
        words.append((samples[: speech_end(samples, sr) + sr // 20], r["text"].strip()))
    return words


def matched_pairs(ref: list[str], hyp: list[str]) -> list[tuple[int, int]]:
    """(reference index, hypothesis index) of the words a minimum-edit alignment matches exactly."""
    n, m = len(ref), len(hyp)
    cost = [[i + j if i * j == 0 else 0 for j in range(m + 1)] for i in range(n + 1)]
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i][j] = min(cost[i - 1][j] + 1, cost[i][j - 1] + 1, cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]))
    pairs, i, j = [], n, m
    while i and j:
        if ref[i - 1] == hyp[j - 1] and cost[i][j] == cost[i - 1][j - 1]:
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif cost[i][j] == cost[i - 1][j - 1] + 1:
            i, j = i - 1, j - 1
        elif cost[i][j] == cost[i - 1][j] + 1:
            i -= 1
        else:
            j -= 1
    return pairs[::-1]


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
    p.add_argument("--checkpoint", required=True, help="a forward-only audio model (crnn train --unidirectional)")
    p.add_argument("--manifest", help="single-word recordings to build utterances from (else DTMF keys)")
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
    if args.manifest:
        words = read_words(args.manifest, sr, vocab)
        data = [spoken_utterance(rng, sr, words) for _ in range(args.utterances)]
    else:
        data = [(w, list(k), e) for w, k, e in (utterance(rng, sr, DTMFSpec()) for _ in range(args.utterances))]
    print(f"machine: {machine(torch.device('cpu'))}; {args.checkpoint}, {len(data)} utterances, "
          f"{sum(len(k) for _, k, _ in data)} words; chunk multiple {1000 * unit / sr:g} ms")
    print("| chunk | words recognised | latency median | p95 | compute per chunk (median) |\n|---:|---:|---:|---:|---:|")
    for ms in args.chunks_ms:
        chunk = max(unit, int(round(ms / 1000 * sr / unit)) * unit)
        lat, right, total, compute = [], 0, 0, []
        for wave, keys, ends in data:
            t0 = time.perf_counter()
            tokens = run_stream(session, names, wave, chunk, sr)
            compute.append((time.perf_counter() - t0) / -(-wave.size // chunk))
            total += len(keys)
            pairs = matched_pairs(keys, [vocab[i] for i, _ in tokens])  # each word recognised in its place
            right += len(pairs)
            lat += [tokens[j][1] - ends[i] for i, j in pairs]
        lat.sort()
        p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))] if lat else float("nan")
        med = statistics.median(lat) if lat else float("nan")
        print(f"| {1000 * chunk / sr:.0f} ms | {right}/{total} | {1000 * med:.0f} ms | {1000 * p95:.0f} ms | "
              f"{1000 * statistics.median(compute):.2f} ms |", flush=True)


if __name__ == "__main__":
    main()

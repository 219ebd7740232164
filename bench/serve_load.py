"""Load on ``crnn serve``'s WebSocket streams: N live streams at once, over loopback, paced in real time.

    python bench/serve_load.py --checkpoint runs/dtmf_uni/best.pt                  # N = 1,2,4,8
    python bench/serve_load.py --checkpoint CK --streams 1,4,16,32 --seconds 20 --threads 1

Starts the real server (``python -m crnn serve`` on a free 127.0.0.1 port) and, for each N of
``--streams``, opens N WebSocket streams together. Each sends ``--seconds`` of audio in ``--chunk-ms``
pieces at the pace it would arrive live: DTMF key strings (3-7 keys) separated by 1.2 s of quiet noise,
so the server's endpointing (``--trailing-silence``) closes each one with a final.

Measured per N:

* **latency** of each final: the wall time from sending the chunk that holds the utterance's end (the
  ``end`` of the final: where endpointing cut it, or the end of the stream) to receiving the final;
  p50 / p90 / p99 over every final of every stream. It includes the model's look-ahead (the chunk that
  ends an utterance is sent before the audio that shows its silence is complete) and any queueing.
* **CPU RTF**: the server process's CPU time (user + system, from /proc) over the seconds of audio all
  N streams carried; below 1 / cores the machine could keep up.
* **keeps up**: p90 latency within ``--budget`` seconds. A server slower than real time falls behind
  more with every chunk, so its latency passes any budget; the first N that does is reported.

Bounded: N at most 64, ``--seconds`` at most 120, every run stops by itself (a stream that gets no
answer for 30 s is abandoned), and the server is stopped at the end. Loopback only.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MAX_STREAMS, MAX_SECONDS = 64, 120.0


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a forward-only audio model (trained with --unidirectional)")
    p.add_argument("--streams", default="1,2,4,8", help="comma-separated N to try, in order (default: %(default)s)")
    p.add_argument("--seconds", type=float, default=15.0, help="audio per stream (default: %(default)s, at most 120)")
    p.add_argument("--chunk-ms", type=float, default=100.0, help="audio per message (default: %(default)s)")
    p.add_argument("--trailing-silence", type=float, default=0.6, help="server endpointing (default: %(default)s)")
    p.add_argument("--budget", type=float, default=1.0, help="p90 latency that still counts as keeping up, s")
    p.add_argument("--threads", type=int, default=None, help="server --threads (default: the server's choice)")
    p.add_argument("--stream-workers", type=int, default=None, help="server --stream-workers")
    p.add_argument("--seed", type=int, default=0)
    return p


def stream_audio(seconds: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """16-bit PCM: key strings and 1.2 s quiet gaps, ``seconds`` long."""
    from crnn.data.builtin.dtmf import DTMFSpec, generate_utterance

    spec = DTMFSpec(min_keys=3, max_keys=7, key_ms=(80, 150), gap_ms=(60, 140), no_gap_prob=0.0, snr_db=(25, 30),
                    level_db=(-12, -8), edge_ms=(150, 250), sample_rates=(sr,))
    parts, n = [], 0
    while n < seconds * sr:
        wave = generate_utterance(rng, spec, sr)[0]
        gap = rng.normal(0, 0.002, int(1.2 * sr)).astype(np.float32)
        parts += [wave, gap]
        n += wave.size + gap.size
    x = np.concatenate(parts)[: int(seconds * sr)]
    return (np.clip(x, -1, 1) * 32767).astype("<i2")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def one_stream(url: str, pcm: np.ndarray, sr: int, chunk_s: float, start: float) -> list[float]:
    """Send ``pcm`` paced in real time from wall time ``start``; latencies (s) of the finals received."""
    import aiohttp

    step = int(round(chunk_s * sr))
    data = pcm.tobytes()
    sent: list[float] = []  # wall time each chunk was sent
    latencies: list[float] = []
    finals: list[tuple[float, dict]] = []
    async with aiohttp.ClientSession() as client:
        async with client.ws_connect(url) as ws:
            async def receive():
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        m = json.loads(msg.data)
                        if m["type"] == "final":
                            finals.append((time.perf_counter(), m))
                        elif m["type"] == "error":
                            raise RuntimeError(m["error"])

            reader = asyncio.ensure_future(receive())
            for i, c in enumerate(range(0, pcm.size, step)):
                await asyncio.sleep(max(0.0, start + (i + 1) * chunk_s - time.perf_counter()))  # the chunk is "heard"
                await ws.send_bytes(data[2 * c: 2 * (c + step)])
                sent.append(time.perf_counter())
            await ws.send_str(json.dumps({"type": "end"}))
            t_end = time.perf_counter()
            await asyncio.wait_for(reader, timeout=30)
    for t, m in finals:
        ref = t_end if m["reason"] == "end" else sent[min(len(sent) - 1, max(0, math.ceil(m["end"] * sr / step) - 1))]
        latencies.append(t - ref)
    return latencies


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def run_n(n: int, url: str, audios: list[np.ndarray], sr: int, chunk_s: float) -> list[float]:
    start = time.perf_counter() + 0.2
    per_stream = await asyncio.gather(*(one_stream(url, audios[i % len(audios)], sr, chunk_s, start) for i in range(n)))
    return [x for lat in per_stream for x in lat]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(args: argparse.Namespace) -> int:
    import urllib.request

    counts = [int(x) for x in args.streams.split(",") if x.strip()]
    if not counts or min(counts) < 1 or max(counts) > MAX_STREAMS:
        print(f"error: --streams takes counts between 1 and {MAX_STREAMS}", file=sys.stderr)
        return 2
    seconds = min(args.seconds, MAX_SECONDS)
    port = free_port()
    cmd = [sys.executable, "-m", "crnn", "serve", "-c", args.checkpoint, "--host", "127.0.0.1", "--port", str(port),
           "--device", "cpu", "--trailing-silence", str(args.trailing_silence), "--idle-timeout", "30"]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.stream_workers:
        cmd += ["--stream-workers", str(args.stream_workers)]
    server = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        info = None
        for _ in range(600):
            if server.poll() is not None:
                print(f"error: the server stopped: {server.stderr.read().strip()}", file=sys.stderr)
                return 1
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/model", timeout=1) as r:
                    info = json.load(r)
                break
            except OSError:
                time.sleep(0.1)
        if info is None or not info["streaming"]:
            print(f"error: {args.checkpoint}: {info and info['streaming_problem'] or 'the server did not start'}",
                  file=sys.stderr)
            return 1
        sr = info["sample_rate"]
        rng = np.random.default_rng(args.seed)
        audios = [stream_audio(seconds, sr, rng) for _ in range(4)]
        url = f"ws://127.0.0.1:{port}/stream"
        load = os.getloadavg()[0]
        print(f"# crnn serve load: {Path(args.checkpoint).name}, {seconds:g} s per stream, {args.chunk_ms:g} ms chunks, "
              f"trailing silence {args.trailing_silence:g} s; CPU {os.cpu_count()} cores, load {load:.1f} at start")
        print(f"{'N':>4} {'finals':>7} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'CPU RTF':>8}  keeps up")
        first_behind = None
        for n in counts:
            cpu0 = cpu_seconds(server.pid)
            lat = asyncio.run(run_n(n, url, audios, sr, args.chunk_ms / 1000))
            rtf = (cpu_seconds(server.pid) - cpu0) / (n * seconds)
            p50, p90, p99 = (percentile(lat, q) for q in (50, 90, 99))
            ok = bool(lat) and p90 <= args.budget
            if not ok and first_behind is None:
                first_behind = n
            print(f"{n:>4} {len(lat):>7} {p50 * 1000:>8.0f} {p90 * 1000:>8.0f} {p99 * 1000:>8.0f} {rtf:>8.3f}  "
                  f"{'yes' if ok else 'no'}", flush=True)
        print(f"first N over real time (p90 > {args.budget:g} s): {first_behind if first_behind else f'none up to {max(counts)}'}")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))

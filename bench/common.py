"""Shared by the benchmarks: a median timer that waits for the GPU, and the machine line they print."""
from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Callable

import torch


def median_seconds(fn: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` untimed ones (CUDA synchronised)."""

    def once() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    for _ in range(warmup):
        once()
    return statistics.median(once() for _ in range(repeats))


def machine(device: torch.device) -> str:
    """The GPU's name, or the CPU with its threads and current load (a shared CPU's load moves timings)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"CPU ({platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads, load {load:.1f})"

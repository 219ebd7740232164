"""Optional CUDA fast path: ``torch.compile`` of a cell's per-step maths (the same equations, fused).

On CUDA every step of an eager loop launches one kernel per elementwise op; compiling the step
fuses the gate arithmetic into a few kernels. CPU runs the plain function (compilation would cost
more than it saves there). Set ``CRNN_COMPILE_CELLS=0`` to turn the fast path off everywhere.
"""
from __future__ import annotations

import functools
import os
import warnings
from typing import Callable

import torch

from crnn.cells.base import exporting


def enabled() -> bool:
    """Whether the compiled fast path may be used (environment switch ``CRNN_COMPILE_CELLS``)."""
    return os.environ.get("CRNN_COMPILE_CELLS", "1") != "0"


class _CompiledOrEager:
    """Call the compiled function; if compilation fails (no Triton, old GPU), warn once and run eager."""

    def __init__(self, fn: Callable):
        self.fn = fn
        # dynamic=None: specialise on the first shapes, go dynamic after a shape change (new batch size).
        self.compiled = torch.compile(fn, dynamic=None)
        self.failed = False

    def __call__(self, *args):
        if not self.failed:
            try:
                return self.compiled(*args)
            except Exception as e:  # compiler/toolchain problems must not stop training
                self.failed = True
                warnings.warn(f"torch.compile of {self.fn.__name__} failed ({type(e).__name__}: {e}); "
                              "running the plain version", RuntimeWarning, stacklevel=2)
        return self.fn(*args)


@functools.cache
def _compiled(fn: Callable) -> _CompiledOrEager:
    return _CompiledOrEager(fn)


def step_function(fn: Callable, device: torch.device) -> Callable:
    """``fn`` compiled when ``device`` is CUDA and the fast path is enabled, else ``fn`` itself.

    ``fn`` must be a pure function of tensors (weights passed as arguments), so one compiled graph
    serves every layer and direction instead of recompiling per module.
    """
    if device.type == "cuda" and enabled() and not exporting():
        return _compiled(fn)
    return fn

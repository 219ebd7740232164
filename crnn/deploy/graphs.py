"""The model as exportable graphs: what ``crnn export`` traces, for ONNX and ``torch.export``.

The offline graph is the whole model, features included::

    audio    float32 (B, S) at the model's sample rate  \\
    frames   uint8 (B, T, C, H, W)                        >  + lengths int64 (B,)
    features float32 (B, T, D)                          /
    image    uint8 (B, C, H, W) any height (resized inside), widths int64 (B,)
        -> log_probs float32 (B, T', V), out_lengths int64 (B,)

Batch and length are dynamic. :func:`exporting` gives a CPU copy in export mode (recurrent layers on
their exportable paths, ONNX's native GRU/LSTM operators where a layer is exactly one: ``onnx_rnn``);
:class:`StreamingGraph` is the encoder and head of a forward-only model, the recurrent state in and out.
"""
from __future__ import annotations

import contextlib
import warnings
from copy import deepcopy
from typing import Iterator

import torch
import torch.nn as nn

from crnn.cells.base import StepLayer, export_mode
from crnn.cells.torch_rnn import _TorchRNNLayer
from crnn.model.modality import modality_of
from crnn.model.network import CRNN

# Input name per modality of the offline graph.
INPUT_NAMES = {"audio": "audio", "video": "frames", "features": "features", "image": "image"}


class ExportError(ValueError):
    """The model (or this environment) cannot be exported; the message says why."""


def check_exportable(model: CRNN) -> None:
    """Raise ExportError naming the part of ``model`` that has no exportable path."""
    for layer in model.encoder.layers:
        if not isinstance(layer, (StepLayer, _TorchRNNLayer)):
            raise ExportError(
                f"cell {model.cfg.cell!r} ({type(layer).__name__}) cannot be exported: only cells built on "
                "crnn.StepLayer/ScanLayer or the torch GRU/LSTM/RNN wrappers have an exportable time loop")
    if model.cfg.frontend == "video3d":
        raise ExportError("the video3d frontend cannot be exported: its padding masks are looked up by the "
                          "padded length at run time, which a graph with a dynamic length cannot do")
    if modality_of(model) not in INPUT_NAMES:
        raise ExportError(f"frontend {model.cfg.frontend!r} has no known input modality for export")


def require(module: str, what: str):
    try:
        return __import__(module)
    except ImportError:
        raise ExportError(f"{what} needs the '{module}' package: pip install 'crnn[export]'") from None


# -- graphs ---------------------------------------------------------------------------------------
class OfflineGraph(nn.Module):
    """The whole model as one graph: (x, lengths) -> (log_probs (B, T', V) fp32, out_lengths (B,) int64)."""

    def __init__(self, model: CRNN):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_probs, out_lengths = self.model(x, lengths)
        return log_probs, out_lengths.to(torch.int64)


class ImageGraph(nn.Module):
    """A text-line model as one graph, with the reader's work inside: 8-bit pixels to [0, 1] and any line
    height resized to the model's (aspect kept, widths scaled alike), so a runtime feeds decoded files as
    they are. (image uint8 (B, C, H, W), widths (B,)) -> (log_probs (B, T', V), out_lengths (B,) int64)."""

    def __init__(self, model: CRNN):
        super().__init__()
        self.model, self.height = model, int(model.reader_args["height"])

    def forward(self, image: torch.Tensor, widths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = image.float() / 255.0
        h, w = x.shape[-2], x.shape[-1]  # symbolic under export: the resize follows each call's size
        scale = self.height / h
        new_w = torch.sym_max(1, torch.sym_int(w * scale + 0.5))
        x = nn.functional.interpolate(x, size=(self.height, new_w), mode="bilinear", align_corners=False,
                                      antialias=True)
        widths = torch.clamp(torch.floor(widths.to(torch.float32) * scale + 0.5), min=1).to(torch.int64)
        log_probs, out_lengths = self.model(x, widths)
        return log_probs, out_lengths.to(torch.int64)


class StreamingGraph(nn.Module):
    """Encoder + head over frontend features, one chunk at a time, the recurrent state in and out.

    forward(features (B, N, D), lengths (B,) int64, state_in (L, K, B, H))
        -> log_probs (B, N, V), state_out (L, K, B, H)

    ``L`` recurrent layers, ``K`` state tensors per layer (1; 2 for LSTM cells: h then c).
    """

    def __init__(self, model: CRNN, state_size: int):
        super().__init__()
        self.model, self.state_size = model, state_size

    def forward(self, features: torch.Tensor, lengths: torch.Tensor, state_in: torch.Tensor):
        enc, _, new = self.model.encoder(features, lengths, unpack_states(state_in))
        return self.model.forward_head(enc), pack_states(new)


def unpack_states(packed: torch.Tensor) -> list:
    """(L, K, B, H) -> the encoder's per-layer states: (1, B, H) each, or an (h, c) pair of them."""
    out = []
    for layer in packed.unbind(0):
        leaves = [s.unsqueeze(0) for s in layer.unbind(0)]
        out.append(leaves[0] if len(leaves) == 1 else tuple(leaves))
    return out


def pack_states(states: list) -> torch.Tensor:
    """The encoder's per-layer states of one direction -> (L, K, B, H), the form a graph passes them in."""
    return torch.stack([torch.stack([s[0] for s in (n if isinstance(n, tuple) else (n,))]) for n in states])


def example_input(model: CRNN, batch: int = 2, seconds: float = 2.0) -> torch.Tensor:
    """A dummy input of the model's modality (its shape only guides tracing)."""
    modality = modality_of(model)
    if modality == "audio":
        return torch.randn(batch, int(seconds * model.sample_rate)) * 0.1
    if modality == "image":  # lines twice the model's height: the graph's resize is traced too
        cfg = model.frontend.cfg
        return torch.randint(0, 256, (batch, cfg.channels, 2 * cfg.height, 24 * cfg.height), dtype=torch.uint8)
    frames = max(8, int(seconds * model.frontend.cfg.fps))
    if modality == "video":
        cfg = model.frontend.cfg
        return torch.randint(0, 256, (batch, frames, cfg.in_channels, cfg.height, cfg.width), dtype=torch.uint8)
    return torch.randn(batch, frames, model.frontend.cfg.input_dim)


def _dynamic_shapes(x: torch.Tensor, modality: str = "audio") -> tuple:
    # DYNAMIC (not named Dims): guards the solver cannot prove (the padding of too-short audio) stay
    # run-time checks instead of failing the export.
    dyn = torch.export.Dim.DYNAMIC
    if modality == "image":  # batch, height (resized inside) and width
        return ({0: dyn, 2: dyn, 3: dyn}, {0: dyn})
    return ({0: dyn, 1: dyn}, {0: dyn})


def offline_graph(model: CRNN) -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor], tuple]:
    """The offline graph of ``model``, example inputs (x, lengths) and their dynamic dimensions."""
    modality = modality_of(model)
    x = example_input(model)
    size = x.size(-1) if modality == "image" else x.size(1)
    lengths = torch.tensor([size, size * 3 // 4])
    graph = ImageGraph(model) if modality == "image" else OfflineGraph(model)
    return graph, (x, lengths), _dynamic_shapes(x, modality)


@contextlib.contextmanager
def exporting(model: CRNN, native_rnn: bool = False) -> Iterator[CRNN]:
    """A CPU copy of ``model`` in eval mode, no gradients, exportable paths (the caller's model is untouched);
    ``native_rnn``: ONNX's recurrent operators where a layer allows (ONNX graphs only)."""
    copy = deepcopy(model).cpu().eval()
    for module in copy.modules():
        if hasattr(module, "prepare_export"):  # e.g. constants the exported path needs
            module.prepare_export()
    if native_rnn:
        from crnn.deploy.onnx_rnn import NativeRNNEncoder

        copy.encoder = NativeRNNEncoder(copy.encoder)
    with torch.no_grad(), export_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer chatter, not the user's concern
        yield copy


def export_program(model: CRNN) -> torch.export.ExportedProgram:
    """The offline graph as a ``torch.export`` program with dynamic batch and length."""
    check_exportable(model)
    with exporting(model) as model:
        graph, args, shapes = offline_graph(model)
        try:
            return torch.export.export(graph, args, dynamic_shapes=shapes)
        except Exception as e:
            raise ExportError(f"torch.export failed for this model ({type(e).__name__}: {str(e)[-1500:]})") from None


def state_layout(model: CRNN) -> tuple[int, int, int]:
    """(L, K, H) of the streaming state: layers, state tensors per layer (2 for LSTM: h, c), hidden size."""
    feats = torch.zeros(1, 2, model.frontend.output_size, device=next(model.parameters()).device)
    with torch.no_grad(), export_mode():
        _, _, states = model.encoder(feats, torch.tensor([2]))
    first = states[0]
    k = len(first) if isinstance(first, tuple) else 1
    return len(states), k, model.cfg.hidden_size



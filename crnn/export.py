"""Export a model for use outside Python: ONNX (onnxruntime) and ``torch.export`` programs.

The offline graph is the whole model, features included::

    audio    float32 (B, S) at the model's sample rate  \\
    frames   uint8 (B, T, C, H, W)                        >  + lengths int64 (B,)
    features float32 (B, T, D)                          /
        -> log_probs float32 (B, T', V), out_lengths int64 (B,)

Batch and length are dynamic. Recurrent layers that are exactly ONNX's GRU / LSTM operators
(the ``gru``, ``lstm``, ``gru_ref`` and ``lstm_ref`` cells) become those operators, padded
batches included (``crnn.onnx_rnn``); ``mingru``/``minlstm`` a chunked prefix scan; other cells run their
exportable path (a masked ``scan`` over time, see ``crnn.cells.base.exporting``). The log-mel is two
matrix products over the window's folded halves (a Conv1d over a DFT basis where the window is not symmetric). All equal the
normal path within float32 rounding. A forward-only model also gets a streaming graph: the whole
model for log-mel audio models (raw samples in chunks, every state carried: ``crnn.streaming_graph``),
else its encoder and head, which take and return the recurrent state (:func:`export_streaming_onnx`).

The file carries what a runtime needs in its ``metadata_props`` (:func:`export_metadata`), so
:class:`OnnxModel` (and ``crnn decode --checkpoint model.onnx``) needs no side file.
"""
from __future__ import annotations

import contextlib
from copy import deepcopy
import io
import json
import logging
import warnings
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.nn as nn

from crnn.cells.base import StepLayer, export_mode
from crnn.cells.torch_rnn import _TorchRNNLayer
from crnn.config import ModelConfig
from crnn.model import CRNN
from crnn.tokenizer import Tokenizer

# Input name per modality of the offline graph.
INPUT_NAMES = {"audio": "audio", "video": "frames", "features": "features", "image": "image"}
STREAMING_FORMAT = "encoder-head"


class ExportError(ValueError):
    """The model (or this environment) cannot be exported; the message says why."""


def modality_of(model: CRNN) -> str:
    """"audio", "video" or "features": what the model's frontend reads."""
    declared = getattr(model.frontend, "modality", None)
    if declared:
        return declared
    return {"audio": "audio", "video": "video", "video3d": "video", "features": "features"}.get(
        model.cfg.frontend, model.cfg.frontend)


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


def _require(module: str, what: str):
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
        states = []
        for layer_state in state_in.unbind(0):  # (K, B, H) each
            leaves = [s.unsqueeze(0) for s in layer_state.unbind(0)]  # (1, B, H): one direction
            states.append(leaves[0] if self.state_size == 1 else tuple(leaves))
        enc, _, new = self.model.encoder(features, lengths, states)
        log_probs = self.model.forward_head(enc)
        out = [torch.stack([s[0] for s in (n if isinstance(n, tuple) else (n,))]) for n in new]  # (K, B, H) each
        return log_probs, torch.stack(out)


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


def _offline(model: CRNN) -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor], tuple]:
    """The offline graph of ``model``, example inputs (x, lengths) and their dynamic dimensions."""
    modality = modality_of(model)
    x = example_input(model)
    size = x.size(-1) if modality == "image" else x.size(1)
    lengths = torch.tensor([size, size * 3 // 4])
    graph = ImageGraph(model) if modality == "image" else OfflineGraph(model)
    return graph, (x, lengths), _dynamic_shapes(x, modality)


@contextlib.contextmanager
def _exporting(model: CRNN, native_rnn: bool = False) -> Iterator[CRNN]:
    """A CPU copy of ``model`` in eval mode, no gradients, exportable paths (the caller's model is untouched);
    ``native_rnn``: ONNX's recurrent operators where a layer allows (ONNX graphs only)."""
    copy = deepcopy(model).cpu().eval()
    for module in copy.modules():
        if hasattr(module, "prepare_export"):  # e.g. constants the exported path needs
            module.prepare_export()
    if native_rnn:
        from crnn.onnx_rnn import NativeRNNEncoder

        copy.encoder = NativeRNNEncoder(copy.encoder)
    with torch.no_grad(), export_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer chatter, not the user's concern
        yield copy


def export_program(model: CRNN) -> torch.export.ExportedProgram:
    """The offline graph as a ``torch.export`` program with dynamic batch and length."""
    check_exportable(model)
    with _exporting(model) as model:
        graph, args, shapes = _offline(model)
        try:
            return torch.export.export(graph, args, dynamic_shapes=shapes)
        except Exception as e:
            raise ExportError(f"torch.export failed for this model ({type(e).__name__}: {str(e)[-1500:]})") from None


def export_metadata(model: CRNN) -> dict[str, str]:
    """What a runtime needs, as strings: vocabulary, blank, sample_rate, frame_shift, modality, config."""
    tok = model.tokenizer
    if tok is None:
        raise ExportError("the model has no tokenizer attached (load it with crnn.load_model)")
    modality = modality_of(model)
    reader = model.reader_args
    sample_rate = reader.get("sample_rate") if modality == "audio" else None
    fps = reader.get("fps") if modality != "audio" else None
    return {
        "vocabulary": json.dumps(["<blank>", *tok.symbols], ensure_ascii=False),
        "blank": "0",
        "sample_rate": str(sample_rate) if sample_rate else "",
        "fps": str(fps) if fps else "",
        "frame_shift": repr(float(model.frame_shift)) if model.frame_shift is not None else "",
        "pixels_per_frame": str(model.pixels_per_frame or ""),
        "modality": modality,
        "input_name": INPUT_NAMES[modality],
        "config": json.dumps(model.cfg.to_dict()),
        "reader_args": json.dumps(reader),
        "tokenizer": json.dumps(tok.to_dict(), ensure_ascii=False),
        "producer": "crnn",
    }


def _to_onnx(graph: nn.Module, args: tuple, input_names: list[str], output_names: list[str],
             dynamic_shapes: tuple, metadata: dict[str, str], path: str | Path) -> Path:
    _require("onnxscript", "ONNX export")
    onnx = _require("onnx", "ONNX export")
    from crnn.onnx_rnn import translation_table

    try:
        # The exporter prints its progress, and the partial graph of a capture strategy that fails before
        # another one succeeds (a scan over a data-dependent number of chunks needs strict capture).
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            program = torch.onnx.export(graph, args, dynamo=True, input_names=input_names,
                                        output_names=output_names, dynamic_shapes=dynamic_shapes,
                                        optimize=False, verbose=False, custom_translation_table=translation_table())
    except Exception as e:
        raise ExportError(f"ONNX export failed ({type(e).__name__}: {str(e)[-1500:]})") from None
    proto = program.model_proto
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(proto, str(path))  # one file: the weights are initializers inside it
    return path


def export_onnx(model: CRNN, path: str | Path, native_rnn: bool = True) -> Path:
    """Write the offline graph (features inside) to one ONNX file with metadata; returns the path.

    ``native_rnn=False`` keeps every recurrent layer a ``Scan`` of per-frame ops (for comparison).
    """
    check_exportable(model)
    meta = export_metadata(model)
    with _exporting(model, native_rnn) as model:
        graph, args, shapes = _offline(model)
        return _to_onnx(graph, args, [meta["input_name"], "lengths"], ["log_probs", "out_lengths"], shapes, meta, path)


def state_layout(model: CRNN) -> tuple[int, int, int]:
    """(L, K, H) of the streaming state: layers, state tensors per layer (2 for LSTM: h, c), hidden size."""
    feats = torch.zeros(1, 2, model.frontend.output_size, device=next(model.parameters()).device)
    with torch.no_grad(), export_mode():
        _, _, states = model.encoder(feats, torch.tensor([2]))
    first = states[0]
    k = len(first) if isinstance(first, tuple) else 1
    return len(states), k, model.cfg.hidden_size


def export_streaming_onnx(model: CRNN, path: str | Path, native_rnn: bool = True) -> Path:
    """Write the streaming graph of a forward-only model (see :class:`StreamingGraph`).

    Inputs ``features`` (B, N, D) float32: frames of the frontend's output (``model.frontend(x,
    lengths)``, or chunk by chunk as ``crnn.streaming.StreamingRecognizer`` computes them),
    ``lengths`` (B,) int64 valid frames of this chunk, ``state_in`` (L, K, B, H) float32 (zeros to
    start). Outputs ``log_probs`` (B, N, V) and ``state_out`` (L, K, B, H) for the next chunk. Fed
    chunk by chunk, the log-probs equal the offline graph's.
    """
    check_exportable(model)
    if model.cfg.bidirectional:
        raise ExportError("a streaming graph needs forward-only recurrent layers: this model is bidirectional")
    L, K, H = state_layout(model)
    meta = export_metadata(model)
    meta.update({
        "streaming": STREAMING_FORMAT,
        "input_name": "features",
        "feature_size": str(model.frontend.output_size),
        "state_in": "state_in", "state_out": "state_out",
        "state_shape": json.dumps([L, K, "batch", H]),
        "state_layout": "layers x (h) or (h, c) x batch x hidden",
    })
    with _exporting(model, native_rnn) as model:
        feats = torch.randn(2, 12, model.frontend.output_size)
        lengths = torch.tensor([12, 7])
        state = torch.zeros(L, K, 2, H)
        batch, frames = torch.export.Dim("batch"), torch.export.Dim("frames")
        shapes = ({0: batch, 1: frames}, {0: batch}, {2: batch})
        return _to_onnx(StreamingGraph(model, K), (feats, lengths, state), ["features", "lengths", "state_in"],
                        ["log_probs", "state_out"], shapes, meta, path)


def save_program(model: CRNN, path: str | Path) -> Path:
    """Write the offline graph as a ``torch.export`` program (``.pt2``), the metadata as an extra file."""
    meta = export_metadata(model)
    program = export_program(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the archive writer warns about CPU weights it handles fine
        torch.export.save(program, str(path), extra_files={"metadata.json": json.dumps(meta)})
    return path


# -- running an exported file ---------------------------------------------------------------------
class OnnxModel:
    """An exported ONNX file run by onnxruntime on the CPU, shaped like a CRNN for inference code.

    ``model(x, lengths) -> (log_probs (B, T', V), out_lengths (B,))`` as torch tensors; ``tokenizer``,
    ``frame_shift``, ``cfg`` and ``metadata`` come from the file's metadata; ``eval``/``to`` do nothing.

    Args:
        path: an ``.onnx`` file written by ``crnn export``.
        threads: onnxruntime intra-op threads (None: its default).
    """

    def __init__(self, path: str | Path, threads: int | None = None):
        from crnn.checkpoint import CheckpointError

        try:
            import onnxruntime as ort
        except ImportError:
            raise CheckpointError(f"{path}: running an ONNX model needs onnxruntime: "
                                  "pip install 'crnn[export]'") from None
        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"{path}: no such ONNX file")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: graph-optimiser notes are not the user's concern
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise CheckpointError(f"{path}: not a loadable ONNX model ({type(e).__name__}: {e})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        missing = [k for k in ("vocabulary", "config", "modality", "frame_shift") if k not in meta]
        if missing or meta.get("producer") != "crnn":
            raise CheckpointError(f"{path}: not an ONNX file exported by crnn (metadata lacks {missing or 'producer'})")
        if meta.get("streaming"):
            raise CheckpointError(f"{path}: this is a streaming graph (chunk by chunk, state in and out); decode with "
                                  "the offline .onnx file exported beside it")
        self.metadata: dict[str, str] = dict(meta)
        self.cfg = ModelConfig.from_dict(json.loads(meta["config"]))
        self.tokenizer = self._tokenizer(meta)
        self.frame_shift = float(meta["frame_shift"]) if meta["frame_shift"] else None
        self.pixels_per_frame = int(meta["pixels_per_frame"]) if meta.get("pixels_per_frame") else None
        self.modality = meta["modality"]
        self.reader_args = self._reader_args(meta, self.cfg)
        self.sample_rate = int(self.reader_args["sample_rate"]) if self.modality == "audio" else None
        inputs = self.session.get_inputs()
        self.input_name = inputs[0].name
        self.input_dtype = {"tensor(uint8)": torch.uint8}.get(inputs[0].type, torch.float32)

    @staticmethod
    def _reader_args(meta: dict[str, str], cfg: ModelConfig) -> dict:
        """What file readers need (``CRNN.reader_args``): stored in the file, else from its frontend config."""
        if meta.get("reader_args"):
            return json.loads(meta["reader_args"])
        from crnn.frontends import build_frontend, reader_args

        return reader_args(build_frontend(cfg.frontend, cfg.frontend_args))

    @staticmethod
    def _tokenizer(meta: dict[str, str]) -> Tokenizer:
        vocab = json.loads(meta["vocabulary"])
        if int(meta.get("blank", 0)) != 0:
            raise ValueError("only models whose blank is id 0 are supported")
        spec = json.loads(meta.get("tokenizer", "{}"))
        return Tokenizer(vocab[1:], kind=spec.get("kind", "char"), lowercase=spec.get("lowercase", False),
                         keep=spec.get("keep"))

    def __call__(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, S) / (B, T, C, H, W) / (B, T, D), lengths (B,) -> log_probs (B, T', V), out_lengths (B,)."""
        x = x.detach().cpu()
        if self.input_dtype == torch.uint8 and x.dtype != torch.uint8:  # readers may give 0..1 floats
            x = (x * 255).round().clamp(0, 255) if x.is_floating_point() else x
        feeds = {self.input_name: x.to(self.input_dtype).contiguous().numpy(),
                 "lengths": lengths.detach().cpu().to(torch.int64).numpy()}
        log_probs, out_lengths = self.session.run(["log_probs", "out_lengths"], feeds)
        return torch.from_numpy(log_probs), torch.from_numpy(out_lengths)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("an ONNX model computes output lengths in its graph (out_lengths)")

    @property
    def frontend(self):
        from crnn.streaming import StreamingError

        raise StreamingError("an exported ONNX file cannot stream through crnn decode --stream; use its "
                             "streaming graph (.streaming.onnx) with onnxruntime, or the .pt checkpoint")

    def eval(self) -> "OnnxModel":
        return self

    def to(self, *args: Any, **kwargs: Any) -> "OnnxModel":
        return self

    def parameters(self) -> Iterator[torch.Tensor]:
        return iter(())


def quantize_onnx(src: str | Path, dst: str | Path) -> Path:
    """Write an int8 copy of the ONNX file ``src`` to ``dst``: onnxruntime dynamic quantization.

    The weights of MatMul/Gemm outside the frontend (the head, the input projections of cells exported as
    a Scan) and of native LSTM operators (``DynamicQuantizeLSTM``) are stored as int8 and their
    activations quantized per call, so no calibration data is needed; the features (DFT, mel filterbank),
    native GRU/RNN operators (onnxruntime has no int8 kernel for them) and Scan loops stay fp32. The metadata (vocabulary, config) is kept,
    so ``OnnxModel`` and ``crnn decode`` read the int8 file like the fp32 one.
    """
    _require("onnxruntime", "int8 quantization")
    onnx = _require("onnx", "int8 quantization")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, dst = Path(src), Path(dst)
    import onnxscript.optimizer

    proto = onnx.load(str(src))
    meta = {p.key: p.value for p in proto.metadata_props}
    # Fold the weights' transposes into initializers: only initializer weights are quantized.
    proto = onnxscript.optimizer.optimize(proto)
    folded = dst.with_name(dst.stem + ".folded" + dst.suffix)
    onnx.save_model(proto, str(folded))
    # The features stay fp32: int8 activations of raw audio / a mel filterbank lose the quiet parts.
    frontend = [n.name for n in proto.graph.node if any(i.startswith("model.frontend.") for i in n.input)]
    logging.disable(logging.WARNING)  # the quantizer's advice to pre-process: the fold above does that
    try:
        quantize_dynamic(str(folded), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm", "LSTM"],
                         nodes_to_exclude=frontend)
    except Exception as e:
        raise ExportError(f"{src}: int8 quantization failed ({type(e).__name__}: {str(e)[-500:]})") from None
    finally:
        logging.disable(logging.NOTSET)
        folded.unlink(missing_ok=True)
    proto = onnx.load(str(dst))
    del proto.metadata_props[:]
    for key, value in {**meta, "quantization": "int8-dynamic"}.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save_model(proto, str(dst))
    return dst

"""Export a model for use outside Python: ONNX (onnxruntime) and ``torch.export`` programs.

The offline graph is the whole model, features included::

    audio    float32 (B, S) at the model's sample rate  \\
    frames   uint8 (B, T, C, H, W)                        >  + lengths int64 (B,)
    features float32 (B, T, D)                          /
        -> log_probs float32 (B, T', V), out_lengths int64 (B,)

Batch and length are dynamic. Recurrent layers that are exactly ONNX's GRU / LSTM operators
(the ``gru``, ``lstm``, ``gru_ref`` and ``lstm_ref`` cells) become those operators, padded
batches included (``crnn.deploy.onnx_rnn``); ``mingru``/``minlstm`` a chunked prefix scan; other cells run their
exportable path (a masked ``scan`` over time, see ``crnn.cells.base.exporting``). The log-mel is two
matrix products over the window's folded halves (a Conv1d over a DFT basis where the window is not symmetric). All equal the
normal path within float32 rounding. A forward-only model also gets a streaming graph: the whole
model for log-mel audio models (raw samples in chunks, every state carried: ``crnn.deploy.streaming_graph``),
else its encoder and head, which take and return the recurrent state (:func:`export_streaming_onnx`).

The file carries what a runtime needs in its ``metadata_props`` (:func:`export_metadata`), so
:class:`OnnxModel` (and ``crnn decode --checkpoint model.onnx``) needs no side file.
"""
from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from crnn.deploy.graphs import (INPUT_NAMES, ExportError, StreamingGraph, check_exportable, export_program,
                                exporting, offline_graph, require, state_layout)
from crnn.model.modality import forward_only, modality_of
from crnn.model.network import CRNN

# What the "streaming" metadata key names: the graph a runtime is holding.
ENCODER_HEAD, AUDIO_CHUNKS = "encoder-head", "audio-chunks"
STREAMING_FORMATS = {
    ENCODER_HEAD: "encoder and head over frontend features, recurrent state in and out (export_streaming_onnx)",
    AUDIO_CHUNKS: "the whole model over raw samples, every state carried (crnn.deploy.streaming_graph)",
}


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


def to_onnx(graph: nn.Module, args: tuple, input_names: list[str], output_names: list[str],
             dynamic_shapes: tuple, metadata: dict[str, str], path: str | Path) -> Path:
    require("onnxscript", "ONNX export")
    onnx = require("onnx", "ONNX export")
    from crnn.deploy.onnx_rnn import translation_table

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
    with exporting(model, native_rnn) as model:
        graph, args, shapes = offline_graph(model)
        return to_onnx(graph, args, [meta["input_name"], "lengths"], ["log_probs", "out_lengths"], shapes, meta, path)


def export_streaming_onnx(model: CRNN, path: str | Path, native_rnn: bool = True) -> Path:
    """Write the streaming graph of a forward-only model (see :class:`StreamingGraph`).

    Inputs ``features`` (B, N, D) float32: frames of the frontend's output (``model.frontend(x,
    lengths)``, or chunk by chunk as ``crnn.inference.streaming.StreamingRecognizer`` computes them),
    ``lengths`` (B,) int64 valid frames of this chunk, ``state_in`` (L, K, B, H) float32 (zeros to
    start). Outputs ``log_probs`` (B, N, V) and ``state_out`` (L, K, B, H) for the next chunk. Fed
    chunk by chunk, the log-probs equal the offline graph's.
    """
    check_exportable(model)
    if not forward_only(model):
        raise ExportError("a streaming graph needs forward-only recurrent layers: this model is bidirectional")
    L, K, H = state_layout(model)
    meta = export_metadata(model)
    meta.update({
        "streaming": ENCODER_HEAD,
        "input_name": "features",
        "feature_size": str(model.frontend.output_size),
        "state_in": "state_in", "state_out": "state_out",
        "state_shape": json.dumps([L, K, "batch", H]),
        "state_layout": "layers x (h) or (h, c) x batch x hidden",
    })
    with exporting(model, native_rnn) as model:
        feats = torch.randn(2, 12, model.frontend.output_size)
        lengths = torch.tensor([12, 7])
        state = torch.zeros(L, K, 2, H)
        batch, frames = torch.export.Dim("batch"), torch.export.Dim("frames")
        shapes = ({0: batch, 1: frames}, {0: batch}, {2: batch})
        return to_onnx(StreamingGraph(model, K), (feats, lengths, state), ["features", "lengths", "state_in"],
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



"""int8 models for the CPU: PyTorch dynamic quantization, and the accuracy check of any int8 model.

``quantize_dynamic_int8(model)`` returns a copy whose ``torch.nn.GRU/LSTM/RNN`` layers (the ``gru``,
``lstm`` and ``rnn`` cells) and ``Linear`` layers of the encoder and head hold int8 weights; their
activations are quantized per call, so no calibration data is needed. The frontend (log-mel, convs)
stays fp32: int8 activations of raw audio or pixels lose the quiet parts. Cells written from the
equations (``gru_ref``, ``mingru`` ...) keep fp32 recurrent weights; only their ``Linear`` modules,
if any, are quantized. Dynamic quantization runs on the CPU only.

``quantize_onnx(src, dst)`` writes an int8 copy of an exported ONNX file (onnxruntime dynamic
quantization). Either is scored against its fp32 model by ``crnn.evaluation.manifest.manifest_wer``.
"""
from __future__ import annotations

import warnings
from copy import deepcopy
import logging
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from crnn.cells.base import map_state
from crnn.cells.torch_rnn import _TorchRNNLayer
from crnn.deploy.graphs import ExportError, require
from crnn.model.network import CRNN



class QuantizedRNNLayer(nn.Module):
    """A ``gru``/``lstm``/``rnn`` layer with a dynamically quantized ``torch.nn`` module (eval only).

    forward(x (B, T, D), lengths (B,), state) -> y (B, T, H * dirs), lengths, state: the layer
    contract; ragged batches go through a packed sequence, so padding never changes valid outputs.
    """

    def __init__(self, layer: _TorchRNNLayer):
        super().__init__()
        self.input_size, self.hidden_size = layer.input_size, layer.hidden_size
        self.bidirectional, self.output_size = layer.bidirectional, layer.output_size
        holder = nn.Sequential()
        holder.add_module("rnn", layer.rnn)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao's deprecation notice: the API still runs
            self.rnn = torch.ao.quantization.quantize_dynamic(
                holder, {nn.GRU, nn.LSTM, nn.RNN}, dtype=torch.qint8, inplace=False).rnn

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, state: Any = None):
        total = x.size(1)
        lengths_cpu = lengths.cpu()
        if bool((lengths_cpu == total).all()):
            y, state = self.rnn(x, state)
            return y, lengths, state
        packed = pack_padded_sequence(x, lengths_cpu.clamp(min=1), batch_first=True, enforce_sorted=False)
        y, new = self.rnn(packed, state)
        y, _ = pad_packed_sequence(y, batch_first=True, total_length=total)
        mask = (torch.arange(total)[None, :] < lengths_cpu[:, None]).unsqueeze(-1)  # (B, T, 1): zero-length items
        ran = (lengths_cpu > 0).view(1, -1, 1)  # an empty item keeps the state it came with
        if state is None:
            state = map_state(torch.zeros_like, new)
        return y * mask, lengths, map_state(lambda a, b: torch.where(ran, a, b), new, state)


def quantize_dynamic_int8(model: CRNN) -> CRNN:
    """An int8 copy of ``model`` on the CPU in eval mode (the caller's model is untouched).

    The returned model has ``quantization == "int8-dynamic"`` and keeps tokenizer and reader settings.
    """
    if getattr(model, "quantization", None):
        return model
    q = deepcopy(model).cpu().eval()
    q.tokenizer = getattr(model, "tokenizer", None)
    layers = q.encoder.layers
    for i, layer in enumerate(layers):
        if isinstance(layer, _TorchRNNLayer):
            layers[i] = QuantizedRNNLayer(layer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q.encoder = _quantized_linear(q.encoder)  # e.g. mingru/minlstm input projections
        q.head = _quantized_linear(q.head)
    q.quantization = "int8-dynamic"
    return q


def int8_for_decoding(model: Any, device: torch.device) -> CRNN:
    """``crnn decode --int8``: the int8 copy of a loaded checkpoint; ValueError says why it cannot be."""
    if not isinstance(model, CRNN):  # an OnnxModel: its int8 copy is made at export time
        raise ValueError("--int8 quantizes a .pt checkpoint; for an ONNX file use "
                         "'crnn export --quantize int8' and decode the file it writes")
    if torch.device(device).type != "cpu":
        raise ValueError("--int8 runs on the CPU only (dynamic quantization); add --device cpu")
    return quantize_dynamic_int8(model)


def _quantized_linear(module: nn.Module) -> nn.Module:
    """``module`` with its Linear layers int8 (a bare Linear is replaced, a container converted in place)."""
    holder = nn.Sequential()
    holder.add_module("m", module)
    torch.ao.quantization.quantize_dynamic(holder, {nn.Linear}, dtype=torch.qint8, inplace=True)
    return holder.m


def quantize_onnx(src: str | Path, dst: str | Path) -> Path:
    """Write an int8 copy of the ONNX file ``src`` to ``dst``: onnxruntime dynamic quantization.

    The weights of MatMul/Gemm outside the frontend (the head, the input projections of cells exported as
    a Scan) and of native LSTM operators (``DynamicQuantizeLSTM``) are stored as int8 and their
    activations quantized per call, so no calibration data is needed; the features (DFT, mel filterbank),
    native GRU/RNN operators (onnxruntime has no int8 kernel for them) and Scan loops stay fp32. The metadata (vocabulary, config) is kept,
    so ``OnnxModel`` and ``crnn decode`` read the int8 file like the fp32 one.
    """
    require("onnxruntime", "int8 quantization")
    onnx = require("onnx", "int8 quantization")
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

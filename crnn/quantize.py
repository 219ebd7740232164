"""int8 models for the CPU: PyTorch dynamic quantization, and the accuracy check of any int8 model.

``quantize_dynamic_int8(model)`` returns a copy whose ``torch.nn.GRU/LSTM/RNN`` layers (the ``gru``,
``lstm`` and ``rnn`` cells) and ``Linear`` layers of the encoder and head hold int8 weights; their
activations are quantized per call, so no calibration data is needed. The frontend (log-mel, convs)
stays fp32: int8 activations of raw audio or pixels lose the quiet parts. Cells written from the
equations (``gru_ref``, ``mingru`` ...) keep fp32 recurrent weights; only their ``Linear`` modules,
if any, are quantized. Dynamic quantization runs on the CPU only.

``manifest_wer`` decodes a held-out manifest greedily with any model that maps ``(x, lengths)`` to
``(log_probs, out_lengths)`` (a CRNN, its int8 copy, an ``OnnxModel``), so fp32 and int8 are scored
the same way; ``crnn export --quantize int8 --check`` and ``bench/cpu_deploy.py`` use it.
"""
from __future__ import annotations

import warnings
from copy import deepcopy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from crnn.cells.base import map_state
from crnn.cells.torch_rnn import _TorchRNNLayer
from crnn.model import CRNN

# The most WER (in points) an int8 model may lose against its fp32 model before export refuses it.
MAX_WER_LOSS = 0.5


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


# -- accuracy on a held-out manifest --------------------------------------------------------------
@dataclass
class WerResult:
    """Greedy word error rate of one model on one manifest (labels for video models)."""

    wer: float  # 0..1
    word_errors: int
    words: int
    items: int
    skipped: int  # unreadable items


def manifest_wer(model: Any, manifest: str, batch_size: int = 16, manifest_format: str | None = None) -> WerResult:
    """Decode ``manifest`` greedily with ``model`` on the CPU and score it.

    Args:
        model: ``model(x, lengths) -> (log_probs (B, T', V), out_lengths (B,))`` with ``tokenizer``,
            ``modality`` and ``reader_args`` (a CRNN, its int8 copy or an ``OnnxModel``).
        manifest: a manifest file or corpus folder (``crnn.data.build.read_rows``).
        batch_size: utterances per call.

    Raises:
        ManifestError / ValueError naming the manifest; EmptyMetricError when nothing could be scored.
    """
    from torch.utils.data import DataLoader

    from crnn.data.build import make_dataset, read_rows
    from crnn.data.collate import collate
    from crnn.data.media import modality_of_rows
    from crnn.decoding.greedy import ctc_greedy
    from crnn.metrics import EmptyMetricError, error_counts

    rows = read_rows(manifest, manifest_format)
    if not rows:
        raise ValueError(f"{manifest}: no utterances")
    if modality_of_rows(rows) != model.modality:
        raise ValueError(f"{manifest}: holds {modality_of_rows(rows)} data, but the model reads {model.modality}")
    dataset = make_dataset(rows, model.tokenizer, model.modality, model.reader_args, train=False)
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate)
    errors = words = items = skipped = 0
    with torch.inference_mode():
        for batch in loader:
            skipped += len(batch.skipped)
            if len(batch) == 0:
                continue
            log_probs, lens = model(batch.x, batch.x_lens)
            for ref, hyp in zip(batch.texts, ctc_greedy(log_probs, lens)):
                counts = error_counts(ref, model.tokenizer.decode(hyp.tokens))
                errors, words, items = errors + counts["word_errors"], words + counts["words"], items + 1
    if words == 0:
        raise EmptyMetricError(f"{manifest}: no reference words to score ({skipped} unreadable items)")
    return WerResult(errors / words, errors, words, items, skipped)


def wer_loss_report(fp32: WerResult, int8: WerResult, limit: float = MAX_WER_LOSS) -> tuple[str, bool]:
    """One line comparing the two, and whether int8 stays within ``limit`` WER points of fp32."""
    loss = 100 * (int8.wer - fp32.wer)
    ok = loss <= limit
    line = (f"WER fp32 {100 * fp32.wer:.2f}% ({fp32.word_errors}/{fp32.words}), int8 {100 * int8.wer:.2f}% "
            f"({int8.word_errors}/{int8.words}): {loss:+.2f} points"
            + ("" if ok else f", more than the {limit:g} allowed"))
    return line, ok

"""Native ONNX recurrent operators: the cells that are exactly ONNX's GRU / LSTM export as those
operators (bidirectional, padded batches, carried state), equal to PyTorch; other cells keep a Scan."""
from collections import Counter

import pytest
import torch
from test_export import assert_parity, mixed_batch, tiny_model

from crnn.cells.base import export_mode
from crnn.export import _exporting, export_onnx
from crnn.onnx_rnn import NativeRNNEncoder, native_kind

NATIVE = {"gru": "GRU", "lstm": "LSTM", "gru_ref": "GRU", "lstm_ref": "LSTM"}  # rnn: its scan is faster


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn", "gru_ref", "lstm_ref", "mingru"])
def test_native_encoder_equals_the_layers_in_pytorch(cell, one_thread):
    """The ONNX-ordered weights and the operator's equations (run step by step) give the layers' outputs
    and states, bidirectional, on a ragged batch."""
    model = tiny_model(cell)
    assert (native_kind(model.encoder.layers[0]) is not None) == (cell in NATIVE)
    x, lengths = mixed_batch([0.5, 2.0, 1.1])
    with torch.no_grad():
        feats, n = model.frontend(x, lengths)
        ref, _, ref_states = model.encoder(feats, n)
        with _exporting(model, native_rnn=True) as copy, export_mode():
            got, _, got_states = copy.encoder(feats, n)
    assert isinstance(copy.encoder, NativeRNNEncoder)
    valid = torch.arange(ref.size(1))[None] < n[:, None]
    torch.testing.assert_close(got[valid], ref[valid], atol=1e-5, rtol=1e-4)
    if cell not in ("lstm",):  # torch's padded LSTM path keeps no final memory cell for ragged batches
        for a, b in zip(torch.utils._pytree.tree_leaves(got_states), torch.utils._pytree.tree_leaves(ref_states)):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def _op_types(path) -> Counter:
    onnx = pytest.importorskip("onnx")
    return Counter(node.op_type for node in onnx.load(str(path)).graph.node)


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["gru", "lstm"])  # every cell's parity: test_export.py
def test_native_operator_in_the_graph_equals_pytorch(cell, tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    layers = 2 if cell == "gru" else 1
    model = tiny_model(cell, num_layers=layers)
    path = export_onnx(model, tmp_path / "m.onnx")
    ops = _op_types(path)
    assert ops[NATIVE[cell]] == layers and "Scan" not in ops  # one operator per layer, both directions in it
    if cell == "gru":  # two transposes for the whole stack (in and out), where the Scan path pays per layer
        scan_ops = _op_types(export_onnx(model, tmp_path / "scan.onnx", native_rnn=False))
        assert scan_ops["Scan"] == 4 and ops["Transpose"] < scan_ops["Transpose"]
    seconds = [0.5, 12.5, 4.0, 1.3] + ([0.02] if cell != "lstm" else [])  # 0.02 s: no frames at all
    texts = assert_parity(model, path, *mixed_batch(seconds))
    assert any(texts)


@pytest.mark.slow
def test_cell_without_native_operator_keeps_its_scan(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    model = tiny_model("mingru", num_layers=1)
    path = export_onnx(model, tmp_path / "m.onnx")
    ops = _op_types(path)
    # one Scan per direction, over chunks of 16 frames (the frames within a chunk: whole-tensor ops)
    assert ops["Scan"] == 2 and not {"GRU", "LSTM", "RNN"} & set(ops)
    assert_parity(model, path, *mixed_batch([0.5, 3.0]))

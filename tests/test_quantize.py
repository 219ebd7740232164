"""int8 ONNX export: the quantized file keeps the metadata, runs in onnxruntime and stays close to fp32."""
import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

from test_export import mixed_batch, tiny_model  # noqa: E402

from crnn.export import OnnxModel, export_onnx, quantize_onnx  # noqa: E402


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_int8_onnx_close_to_fp32(tmp_path, cell):
    model = tiny_model(cell=cell)
    fp32 = export_onnx(model, tmp_path / "m.fp32.onnx")
    int8 = quantize_onnx(fp32, tmp_path / "m.onnx")
    x, lengths = mixed_batch([0.5, 4.0, 1.3])
    ref, ref_len = OnnxModel(fp32)(x, lengths)
    q = OnnxModel(int8)
    assert q.metadata["quantization"] == "int8-dynamic"
    out, out_len = q(x, lengths)
    assert torch.equal(out_len, ref_len)
    # Dynamic int8 rounding moves the log-probs (measured up to 0.4 here). This random model's frames are
    # nearly all close calls, so its greedy path is no measure; a trained model's transcripts are
    # checked in tests/test_int8.py.
    valid = torch.arange(out.size(1))[None] < out_len[:, None]
    assert (out - ref)[valid].abs().max().item() < 1.0
    assert not torch.equal(out, ref)  # it really is a different (quantized) graph
    # The features stay fp32: the folded DFT's products read the fp32 bases, never an int8 copy.
    import onnx

    graph = onnx.load(str(int8)).graph
    dft = [n for n in graph.node if any(i.startswith("model.frontend.fold_") for i in n.input)]
    assert {n.op_type for n in dft} == {"MatMul"} and len(dft) == 2
    assert not any(i.name.startswith("model.frontend.") and i.data_type == onnx.TensorProto.INT8
                   for i in graph.initializer)

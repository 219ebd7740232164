"""Deployment: the model as graphs (``graphs``), written to ONNX with its metadata (``onnx_writer``), the
whole-model streaming graph (``streaming_graph``), ONNX's native recurrent operators (``onnx_rnn``), the
onnxruntime runner (``runner``) and int8 models, PyTorch's and ONNX's (``int8``).

``crnn.export`` (the earlier module) is this package under its old name.
"""
from crnn.deploy.graphs import (INPUT_NAMES, ExportError, ImageGraph, OfflineGraph, StreamingGraph, check_exportable,
                                example_input, export_program, exporting, offline_graph, pack_states, require,
                                state_layout, unpack_states)
from crnn.deploy.int8 import QuantizedRNNLayer, int8_for_decoding, quantize_dynamic_int8, quantize_onnx
from crnn.deploy.onnx_writer import (STREAMING_FORMATS, export_metadata, export_onnx, export_streaming_onnx,
                                     save_program, to_onnx)
from crnn.deploy.runner import OnnxModel
from crnn.model.modality import modality_of

_exporting = exporting  # the earlier private name, still used by callers of crnn.export

__all__ = ["ExportError", "OnnxModel", "export_onnx", "export_streaming_onnx", "export_program", "save_program",
           "export_metadata", "quantize_onnx", "quantize_dynamic_int8", "int8_for_decoding", "check_exportable",
           "modality_of", "STREAMING_FORMATS", "INPUT_NAMES"]

"""crnn: CNN -> RNN -> CTC sequence recognition for audio, video and text-line images.

Public API::

    import crnn
    model = crnn.create_model("small", vocab_size=29, cell="lstm")
    feats, lengths = model.forward_features(x, x_lens)     # (B, T', D) backbone features
    model = crnn.load_model("runs/dtmf/best.pt")            # tokenizer attached as model.tokenizer
    crnn.list_cells(), crnn.list_models()
    results = crnn.transcribe(["a.wav"], checkpoint="runs/dtmf/best.pt")  # .text, .words, .to_json()
    aligned = crnn.align("a.wav", "0123", checkpoint="runs/dtmf/best.pt")  # known text: .words, .tokens

Layers, one package each: ``model`` (network, presets, checkpoints, modality), ``cells``, ``frontends``,
``decoding``, ``data``, ``training``, ``evaluation``, ``inference``, ``deploy``, ``cli``. Inference and
the data readers are imported when first used, so building a model imports no reader.
"""
from crnn._moved import alias_modules
from crnn.cells import ScanLayer, StepLayer, get_cell, list_cells, register_cell
from crnn.decoding import Hypothesis, ctc_beam_search, ctc_greedy
from crnn.frontends import list_frontends, register_frontend
from crnn.model import CRNN, ModelConfig, create_model, list_models, load_model

__version__ = "0.1.0"

# Module paths of the earlier flat layout, kept importable (the same module objects).
alias_modules({
    "crnn.config": "crnn.model.presets", "crnn.encoder": "crnn.model.encoder",
    "crnn.checkpoint": "crnn.model.checkpoint", "crnn.segment": "crnn.inference.segment",
    "crnn.streaming": "crnn.inference.streaming", "crnn.outputs": "crnn.inference.outputs",
    "crnn.export": "crnn.deploy", "crnn.streaming_graph": "crnn.deploy.streaming_graph",
    "crnn.onnx_rnn": "crnn.deploy.onnx_rnn", "crnn.quantize": "crnn.deploy.int8",
    "crnn.metrics": "crnn.evaluation.metrics", "crnn.video_metrics": "crnn.evaluation.frame_accuracy",
    "crnn.training.evaluate": "crnn.evaluation.evaluate", "crnn.compare": "crnn.training.compare",
})

# Imported on first use: inference pulls in the readers of every modality.
_LAZY = {"transcribe": "crnn.inference.api", "FileResult": "crnn.inference.api",
         "TranscriptionError": "crnn.inference.api", "align": "crnn.inference.align",
         "Alignment": "crnn.inference.align", "AlignmentError": "crnn.inference.align",
         "align_long": "crnn.inference.align_long"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'crnn' has no attribute {name!r}")


__all__ = [
    "CRNN", "ModelConfig", "Hypothesis", "create_model", "list_models", "load_model", "get_cell",
    "list_cells", "register_cell", "StepLayer", "ScanLayer", "list_frontends", "register_frontend", "ctc_greedy", "ctc_beam_search",
    "transcribe", "FileResult", "TranscriptionError", "align", "Alignment", "AlignmentError",
    "align_long",
]

"""crnn: CNN -> RNN -> CTC sequence recognition for audio and video.

Public API::

    import crnn
    model = crnn.create_model("small", vocab_size=29, cell="lstm")
    feats, lengths = model.forward_features(x, x_lens)     # (B, T', D) backbone features
    model = crnn.load_model("runs/dtmf/best.pt")            # tokenizer attached as model.tokenizer
    crnn.list_cells(), crnn.list_models()
    results = crnn.transcribe(["a.wav"], checkpoint="runs/dtmf/best.pt")  # .text, .words, .to_json()
"""
from crnn.cells import ScanLayer, StepLayer, get_cell, list_cells, register_cell
from crnn.config import ModelConfig
from crnn.decoding import Hypothesis, ctc_beam_search, ctc_greedy
from crnn.frontends import list_frontends, register_frontend
from crnn.checkpoint import load_model
from crnn.model import CRNN, create_model, list_models
from crnn.inference import FileResult, TranscriptionError, transcribe

__version__ = "0.1.0"

__all__ = [
    "CRNN", "ModelConfig", "Hypothesis", "create_model", "list_models", "load_model", "get_cell",
    "list_cells", "register_cell", "StepLayer", "ScanLayer", "list_frontends", "register_frontend", "ctc_greedy", "ctc_beam_search",
    "transcribe", "FileResult", "TranscriptionError",
]

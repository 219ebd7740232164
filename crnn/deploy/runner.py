"""Running an exported ONNX file with onnxruntime, shaped like a CRNN for the inference code."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import torch

from crnn.model.presets import ModelConfig
from crnn.tokenizer import Tokenizer


class OnnxModel:
    """An exported ONNX file run by onnxruntime on the CPU, shaped like a CRNN for inference code.

    ``model(x, lengths) -> (log_probs (B, T', V), out_lengths (B,))`` as torch tensors; ``tokenizer``,
    ``frame_shift``, ``cfg`` and ``metadata`` come from the file's metadata; ``eval``/``to`` do nothing.

    Args:
        path: an ``.onnx`` file written by ``crnn export``.
        threads: onnxruntime intra-op threads (None: its default).
    """

    def __init__(self, path: str | Path, threads: int | None = None):
        from crnn.model.checkpoint import CheckpointError

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
        self._lengths_frontend = None
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
        """x (B, S) / (B, T, C, H, W) / (B, T, D) / (B, C, H, W), lengths (B,) -> log_probs (B, T', V),
        out_lengths (B,). Inputs of another form are refused with the reason, as ``CRNN.forward_features`` does."""
        from crnn.model.network import check_input

        check_input(self.modality, x, lengths)
        x = x.detach().cpu()
        if self.input_dtype == torch.uint8 and x.dtype != torch.uint8:  # readers may give 0..1 floats
            x = (x * 255).round().clamp(0, 255) if x.is_floating_point() else x
        feeds = {self.input_name: x.to(self.input_dtype).contiguous().numpy(),
                 "lengths": lengths.detach().cpu().to(torch.int64).numpy()}
        log_probs, out_lengths = self.session.run(["log_probs", "out_lengths"], feeds)
        return torch.from_numpy(log_probs), torch.from_numpy(out_lengths)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Input lengths (B,) -> output frames (B,), by the frontend's own arithmetic (the graph computes the
        same as ``out_lengths``); what the CTC pre-scan of ``crnn eval`` needs before decoding."""
        if self._lengths_frontend is None:
            from crnn.frontends import build_frontend

            self._lengths_frontend = build_frontend(self.cfg.frontend, self.cfg.frontend_args)
        return self._lengths_frontend.output_lengths(lengths)

    @property
    def frontend(self):
        from crnn.inference.streaming import StreamingError

        raise StreamingError("an exported ONNX file cannot stream through crnn decode --stream; use its "
                             "streaming graph (.streaming.onnx) with onnxruntime, or the .pt checkpoint")

    def eval(self) -> "OnnxModel":
        return self

    def to(self, *args: Any, **kwargs: Any) -> "OnnxModel":
        return self

    def parameters(self) -> Iterator[torch.Tensor]:
        return iter(())



"""The whole model as one streaming graph: raw samples in, CTC log-probs out, all state carried.

A forward-only audio model is exported as a graph a runtime calls once per chunk of samples; the
samples not yet framed, the recent log-mel frames the conv stack re-reads, the normalisation
statistics, the sample count and the recurrent state go out of each call and back into the next, so
the runtime needs no DSP of its own::

    inputs   audio        float32 (B, N)  N a multiple of `chunk_multiple` samples (pad the last chunk)
             num_samples  int64 (B,)      valid samples of this chunk (N except in the last one)
             <state>_in   each state tensor (zeros to start; shapes in the metadata)
    outputs  log_probs    float32 (B, K, V), lengths int64 (B,): the frames now complete (first `lengths`)
             tail_log_probs (B, E, V), tail_lengths (B,): the frames the end of input would add now
             <state>_out  to feed back

Concatenating every call's ``log_probs[:lengths]`` and the last call's ``tail_log_probs[:tail_lengths]``
gives the offline graph's log-probs of the same samples (global or no normalisation: equal within
float32 rounding; per-utterance normalisation uses the statistics heard so far, as
``crnn.inference.streaming.StreamingRecognizer`` does). Streams in a batch advance in lockstep, each with its own end.

Why chunks are a multiple of ``hop x conv stride`` samples: every chunk then adds a whole number of
output frames at the same phase of the conv stride, so the graph's shapes and slices are static.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn as nn

from crnn.lengths import conv_out_length
from crnn.deploy.graphs import ExportError, check_exportable, exporting, pack_states, state_layout, unpack_states
from crnn.deploy.onnx_writer import AUDIO_CHUNKS, export_metadata, to_onnx
from crnn.model.modality import forward_only, is_log_mel
from crnn.model.network import CRNN



class StreamingModelGraph(nn.Module):
    """See the module docstring. Built from a forward-only CRNN with the ``audio`` frontend.

    Args:
        model: the model (a CPU copy in export mode, see ``crnn.export.exporting``).
        context: output frames of left context the conv stack re-reads (its receptive field is less).
    """

    def __init__(self, model: CRNN, context: int = 2):
        super().__init__()
        fe = model.frontend
        self.model, self.fe = model, fe
        self.hop, self.n_fft = fe.hop, fe.n_fft
        self.strides = list(fe.time_strides)
        self.S = math.prod(self.strides)
        self.unit = self.hop * self.S  # samples per output frame
        self.tail = -(-self.n_fft // self.hop) * self.hop  # samples kept: every frame still open starts in them
        self.lookahead = self._receptive_right()  # mel frames past S*j that output frame j reads
        # Window start must sit on the stride grid: new mel frames start at phase 1 - ceil(n_fft / hop).
        phase = (1 - self.tail // self.hop) % self.S
        c = self.S * (context + 1) + self.lookahead
        self.ctx = c + ((phase - c) % self.S)  # mel frames of context, ctx = phase (mod S)
        # Output slots computed per call past the regular ones: frames only the end of input completes.
        self.extra = -(-self.lookahead // self.S) + 1

    def _receptive_right(self) -> int:
        """Mel frames past S*j that output frame j reads (kernel 3, padding 1 per conv layer)."""
        reach, scale = 0, 1
        for s in self.strides:
            reach += scale  # one frame right per layer, in that layer's input frames
            scale *= s
        return reach

    def state_shapes(self, batch: int) -> dict[str, tuple[int, ...]]:
        """Name -> shape of each carried state (besides the recurrent one), batch first."""
        n_mels = self.fe.cfg.n_mels
        return {"samples": (batch, self.tail), "mel": (batch, self.ctx, n_mels), "count": (batch,),
                "stats": (batch, 3, n_mels)}

    def forward(self, audio: torch.Tensor, num_samples: torch.Tensor, samples_in: torch.Tensor,
                mel_in: torch.Tensor, count_in: torch.Tensor, stats_in: torch.Tensor, rnn_in: torch.Tensor):
        fe, hop, S = self.fe, self.hop, self.S
        B, N = audio.shape
        per_call = N // hop  # new mel frames per call
        k = per_call // S  # regular output slots

        # -- log-mel of the frames this chunk completes ------------------------------------------------
        wave = torch.cat([samples_in, audio], dim=1)  # absolute samples [count - tail, count + N)
        mel = fe.log_mel(wave)  # (B, F, n_mels), frames start at count - tail + f * hop
        mel = mel[:, mel.size(1) - per_call:]  # the new ones
        # Absolute index of the first new mel frame: floor((count + N - n_fft) / hop) - per_call + 1.
        first = torch.div(count_in + N - self.n_fft, hop, rounding_mode="floor") - per_call + 1  # (B,)
        m = first[:, None] + torch.arange(per_call)[None, :]  # (B, per_call)
        n_mel_valid = torch.clamp(torch.div(count_in + num_samples - self.n_fft, hop, rounding_mode="floor") + 1, min=0)
        valid = (m >= 0) & (m < n_mel_valid[:, None])  # (B, per_call)
        mel, stats = self.fe.normalize_running(mel, stats_in, valid)
        mel = mel * valid.unsqueeze(-1)

        # -- conv stack over context + new frames, masked as offline padding would be ------------------
        window = torch.cat([mel_in, mel], dim=1)  # (B, ctx + per_call, n_mels), starts at m0 = first - ctx
        m0 = first - self.ctx  # a multiple of S
        # Zero frames on the right give the slots only the end of input completes a place (masked below
        # exactly as the offline graph's padding).
        x = torch.cat([window, window.new_zeros(B, S * self.extra, window.size(-1))], dim=1).unsqueeze(1)
        n_layer = n_mel_valid  # valid frames of this layer's input, absolute
        start = m0  # absolute index of the layer input's first frame
        for conv, s in zip(fe.convs, fe.time_strides):
            x = conv(x)  # (B, C, T_l, F_l)
            n_layer = conv_out_length(n_layer, kernel=3, stride=s, padding=1)
            start = torch.div(start, s, rounding_mode="floor")
            j = start[:, None] + torch.arange(x.size(2))[None, :]  # absolute index of each output frame
            x = x * ((j >= 0) & (j < n_layer[:, None]))[:, None, :, None]
        Bc, C, T, F = x.shape
        feats = x.permute(0, 2, 1, 3).reshape(Bc, T, C * F)  # (B, T_w, D), output j0 = m0 / S first

        # -- slots: the k frames this chunk completes, then those only the end of input completes -------
        slot0 = (self.ctx - self.lookahead + S - 1) // S  # first regular slot (static: ctx - la is fixed)
        slots = feats[:, slot0: slot0 + k + self.extra]  # (B, k + extra, D)
        j = torch.div(m0, S, rounding_mode="floor")[:, None] + slot0 + torch.arange(k + self.extra)[None, :]
        last_mel = n_mel_valid - 1
        complete = (j >= 0) & (S * j + self.lookahead <= last_mel[:, None])
        pending = (j >= 0) & ~complete & (j < n_layer[:, None])  # n_layer: the offline output length
        skip = (j < 0).sum(1)  # frames before the stream's start lead the slots: shift them out
        idx = torch.clamp(skip[:, None] + torch.arange(k + self.extra)[None, :], max=k + self.extra - 1)
        slots = slots.gather(1, idx.unsqueeze(-1).expand_as(slots))
        n_done, n_tail = complete.sum(1), pending.sum(1)

        # -- recurrent layers: complete frames carry the state; the tail runs from it and is dropped ---
        states = unpack_states(rnn_in)
        enc, _, new = self.model.encoder(slots[:, :k], n_done, states)
        log_probs = self.model.forward_head(enc)  # (B, k, V)
        tail_idx = torch.clamp(n_done[:, None] + torch.arange(self.extra)[None, :], max=k + self.extra - 1)
        tail_feats = slots.gather(1, tail_idx.unsqueeze(-1).expand(B, self.extra, slots.size(-1)))
        tail_enc, _, _ = self.model.encoder(tail_feats, n_tail, new)
        tail_log_probs = self.model.forward_head(tail_enc)  # (B, extra, V)

        samples_out = wave[:, wave.size(1) - self.tail:]
        mel_out = window[:, window.size(1) - self.ctx:]
        count_out = count_in + num_samples
        return (log_probs, n_done, tail_log_probs, n_tail, samples_out, mel_out, count_out, stats.clone(),
                pack_states(new))



def check_streamable(model: CRNN) -> None:
    if not forward_only(model):
        raise ExportError("a streaming graph needs forward-only recurrent layers: this model is bidirectional")
    if not is_log_mel(model.frontend):
        raise ExportError(f"the whole-model streaming graph needs the log-mel audio frontend, not "
                          f"{model.cfg.frontend!r}")


def export_streaming_model_onnx(model: CRNN, path: str | Path) -> Path:
    """Write the whole-model streaming graph of a forward-only audio model (see the module docstring)."""
    check_exportable(model)
    check_streamable(model)
    L, K, H = state_layout(model)
    meta = export_metadata(model)
    with exporting(model, native_rnn=True) as copy:
        graph = StreamingModelGraph(copy)
        shapes = graph.state_shapes(2)
        meta.update({
            "streaming": AUDIO_CHUNKS,
            "input_name": "audio",
            "chunk_multiple": str(graph.unit),
            "state_names": json.dumps(["samples", "mel", "count", "stats", "rnn"]),
            "state_shapes": json.dumps({**{k: ["batch", *v[1:]] for k, v in shapes.items()},
                                        "rnn": [L, K, "batch", H]}),
            "state_dtypes": json.dumps({"samples": "float32", "mel": "float32", "count": "int64",
                                        "stats": "float64", "rnn": "float32"}),
        })
        chunk = 3 * graph.unit
        args = (torch.randn(2, chunk) * 0.1, torch.tensor([chunk, chunk // 2]),
                torch.zeros(shapes["samples"]), torch.zeros(shapes["mel"]), torch.zeros(2, dtype=torch.int64),
                torch.zeros(shapes["stats"], dtype=torch.float64), torch.zeros(L, K, 2, H))
        batch, units = torch.export.Dim("batch"), torch.export.Dim("units", min=1)
        dyn = ({0: batch, 1: units * graph.unit}, {0: batch}, {0: batch}, {0: batch}, {0: batch}, {0: batch},
               {2: batch})
        names_in = ["audio", "num_samples", "samples_in", "mel_in", "count_in", "stats_in", "rnn_in"]
        names_out = ["log_probs", "lengths", "tail_log_probs", "tail_lengths", "samples_out", "mel_out", "count_out",
                     "stats_out", "rnn_out"]
        return to_onnx(graph, args, names_in, names_out, dyn, meta, path)

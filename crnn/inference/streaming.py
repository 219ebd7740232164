"""Streaming recognition: audio in chunks, CTC posteriors out as soon as each frame can be computed.

A model streams when its recurrent layers run forward only (``--unidirectional``). Log-mel frames are
computed as their samples arrive; the conv stack is re-run over a short window of recent frames
(its receptive field is a few frames), and only output frames whose whole receptive field has
arrived are passed on; the recurrent layers carry their state from chunk to chunk. With
``normalize="global"`` (or ``"none"``) the posteriors equal the offline ones for the whole file.
With per-utterance normalisation, which needs the whole utterance, statistics accumulate as audio
arrives (the first frames are normalised with little data), so results are close to, not equal to,
offline decoding: train streaming models with ``--frontend-arg normalize=global``.

Example::

    stream = StreamingRecognizer(crnn.load_model("runs/dtmf-uni/best.pt"))
    for chunk in chunks:                 # (S_i,) float waveform at the model's sample rate
        stream.accept(chunk)
        print(stream.text)               # greedy transcript so far
    stream.finish()
"""
from __future__ import annotations

import math

import torch

from crnn.decoding.greedy import ctc_greedy
from crnn.decoding.hypothesis import Hypothesis
from crnn.model.modality import forward_only, is_log_mel
from crnn.model.network import CRNN


class StreamingError(ValueError):
    """The model cannot stream (bidirectional layers, or a non-audio frontend)."""


class StreamingRecognizer:
    """Chunk-by-chunk greedy CTC recognition with a unidirectional audio model.

    Args:
        model: a CRNN with the ``audio`` frontend and unidirectional recurrent layers (eval mode is set).
        context: output frames of left context re-computed by the conv stack per chunk (2 suffice for
            its 3-frame kernels; more costs a little time and changes nothing). (Default: 3)
    """

    def __init__(self, model: CRNN, context: int = 3):
        if not is_log_mel(model.frontend):
            raise StreamingError(f"streaming needs a model with the log-mel audio frontend; this one's frontend "
                                 f"is {model.cfg.frontend!r}")
        if not forward_only(model):
            raise StreamingError("streaming needs forward-only recurrent layers: this model is bidirectional "
                                 "(train one with --unidirectional)")
        self.model = model.eval()
        self.fe = model.frontend
        self.device = next(model.parameters()).device
        self.total_stride = math.prod(self.fe.time_strides)
        self.lookahead = self.fe.time_strides[0] + 1  # mel frames past S*j that output frame j reads
        self.context = max(2, context)
        self.reset()

    # -- state -----------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget everything: the next chunk starts a new utterance."""
        n_mels = self.fe.cfg.n_mels
        self.samples = torch.zeros(0, device=self.device)
        self.sample_offset = 0  # absolute index of self.samples[0]
        self.mel = torch.zeros(0, n_mels, device=self.device)  # normalised log-mel, recent frames only
        self.mel_offset = 0  # absolute index of self.mel[0]
        self.n_mel = 0  # log-mel frames computed so far
        self.n_out = 0  # output frames emitted so far
        self.n_samples = 0
        self.state = None  # per-layer recurrent state
        self.stats = torch.zeros(3, n_mels, device=self.device, dtype=torch.float64)  # count, sum, sum of squares
        self.log_probs: list[torch.Tensor] = []  # (T_i, V) per call
        self.finished = False

    # -- feeding ---------------------------------------------------------------------------------
    @torch.inference_mode()
    def accept(self, chunk: torch.Tensor) -> torch.Tensor:
        """Add samples (S,) at the model's rate; returns log-probs (N, V) of the output frames now complete."""
        if self.finished:
            raise RuntimeError("this stream is finished: call reset() to start a new one")
        chunk = torch.as_tensor(chunk, dtype=torch.float32).to(self.device).flatten()
        self.samples = torch.cat([self.samples, chunk])
        self.n_samples += chunk.numel()
        self._new_mel_frames()
        ready = self._complete_outputs()
        return self._emit(ready, final=False)

    @torch.inference_mode()
    def finish(self) -> torch.Tensor:
        """End of input: returns log-probs (N, V) of the remaining frames (the conv stack's right edge)."""
        if self.finished:
            return torch.zeros(0, self.model.cfg.vocab_size, device=self.device)
        total = int(self.fe.output_lengths(torch.tensor([self.n_samples]))[0])
        out = self._emit(total, final=True)
        self.finished = True
        return out

    # -- results ---------------------------------------------------------------------------------
    @property
    def frames(self) -> torch.Tensor:
        """All log-probs emitted so far, (T', V)."""
        if not self.log_probs:
            return torch.zeros(0, self.model.cfg.vocab_size, device=self.device)
        return torch.cat(self.log_probs)

    def hypothesis(self) -> Hypothesis:
        """Greedy hypothesis of everything so far (text, score, frame spans, confidence)."""
        lp = self.frames
        hyp = ctc_greedy(lp[None], torch.tensor([lp.size(0)], device=lp.device))[0]
        tok = getattr(self.model, "tokenizer", None)
        hyp.text = tok.decode(hyp.tokens) if tok is not None else " ".join(map(str, hyp.tokens))
        return hyp

    @property
    def text(self) -> str:
        """Greedy transcript so far."""
        return self.hypothesis().text

    @property
    def latency_seconds(self) -> float:
        """Audio received but not yet turned into output frames, in seconds."""
        shift = self.fe.frame_shift
        return max(0.0, self.n_samples / self.fe.cfg.sample_rate - self.n_out * shift)

    # -- internals -------------------------------------------------------------------------------
    def _new_mel_frames(self) -> None:
        fe = self.fe
        total = int(fe.feature_lengths(torch.tensor([self.n_samples]))[0])
        if total <= self.n_mel:
            return
        start = self.n_mel * fe.hop - self.sample_offset
        stop = (total - 1) * fe.hop + fe.n_fft - self.sample_offset
        feats = self._normalize(fe.log_mel(self.samples[start:stop][None])[0])  # (k, n_mels)
        self.mel = torch.cat([self.mel, feats])
        self.n_mel = total
        keep_from = total * fe.hop  # the next frame's first sample
        self.samples = self.samples[keep_from - self.sample_offset:]
        self.sample_offset = keep_from

    def _normalize(self, feats: torch.Tensor) -> torch.Tensor:
        """The frontend's normalisation; per-utterance statistics are those of everything heard so far."""
        normalized, stats = self.fe.normalize_running(feats[None], self.stats[None])
        self.stats = stats[0]
        return normalized[0]

    def _complete_outputs(self) -> int:
        """Output frames whose receptive field (up to mel frame S*j + lookahead) has arrived."""
        last = self.n_mel - 1 - self.lookahead
        return 0 if last < 0 else last // self.total_stride + 1

    def _emit(self, ready: int, final: bool) -> torch.Tensor:
        V = self.model.cfg.vocab_size
        if ready <= self.n_out:
            return torch.zeros(0, V, device=self.device)
        S = self.total_stride
        w = max(0, S * (self.n_out - self.context))  # window start: a multiple of S keeps the stride grid
        window = self.mel[w - self.mel_offset:]  # (n_mel - w, n_mels)
        n = torch.tensor([window.size(0)], device=self.device)
        conv_out, _ = self.fe.convolve(window[None], n)  # (1, T_w, D)
        feats = conv_out[:, self.n_out - w // S: ready - w // S]  # (1, N, D): complete frames only
        lengths = torch.tensor([feats.size(1)], device=self.device)
        enc, _, self.state = self.model.encoder(feats, lengths, self.state)
        log_probs = self.model.forward_head(enc)[0]  # (N, V)
        self.n_out = ready
        self.log_probs.append(log_probs)
        if not final:  # drop mel frames no later window reads
            drop = max(0, S * (ready - self.context)) - self.mel_offset
            if drop > 0:
                self.mel = self.mel[drop:]
                self.mel_offset += drop
        return log_probs


def stream_file(model: CRNN, waveform: torch.Tensor, chunk_seconds: float = 0.1) -> StreamingRecognizer:
    """Feed a whole waveform (S,) through a StreamingRecognizer in chunks; returns the finished stream."""
    stream = StreamingRecognizer(model)
    step = max(1, int(chunk_seconds * model.sample_rate))
    for i in range(0, waveform.numel(), step):
        stream.accept(waveform[i:i + step])
    stream.finish()
    return stream


# -- streams of any length: audio in chunks, decoded a segment at a time -------------------------
def audio_chunks(path: str, sample_rate: int, chunk: int):
    """Waveform chunks (S_i,) of ``chunk`` samples at ``sample_rate``: a file read in blocks, or 16-bit
    little-endian mono PCM on standard input for ``-``."""
    import sys

    import numpy as np

    if path == "-":
        from crnn.data.audio import AudioReadError

        if sys.stdin is None or sys.stdin.closed:
            raise AudioReadError("-", "standard input is closed")
        while True:
            try:
                data = sys.stdin.buffer.read(2 * chunk)
            except (OSError, ValueError) as e:
                raise AudioReadError("-", f"cannot read standard input ({e})") from None
            if not data:
                return
            data = data[: len(data) // 2 * 2]
            yield torch.from_numpy(np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0)
        return
    from crnn.data.audio.blocks import open_audio, to_model_rate

    source = open_audio(path, sample_rate)  # AudioReadError names the file
    for block in source.blocks(10.0):  # resampled 10 s at a time: one piece in memory, few block edges
        wav = to_model_rate(block, source.sample_rate, sample_rate)
        for i in range(0, wav.numel(), chunk):
            yield wav[i:i + chunk]


class SegmentedStream:
    """Posteriors of a stream decoded a segment at a time: once ``length`` seconds wait undecoded, they
    are decoded up to the last pause (else the quietest frame) and dropped; ``result`` stitches the pieces.

    Memory holds one segment's posteriors, whatever the length of the stream.
    """

    def __init__(self, model, decoder, segment):
        from crnn.inference.segment import EnergyMeter

        self.model, self.decoder, self.opts = model, decoder, segment
        self.sr = model.sample_rate
        self.shift = model.frame_shift
        self.meter = EnergyMeter(self.sr)
        self.energies = []  # energy frames (10 ms) of the undecoded audio and up to 30 s before it
        self.energy_start = 0  # absolute index of self.energies[0]
        self.frames = []  # (N_i, V) undecoded posteriors
        self.frame_start = 0  # absolute output frame of the first undecoded one
        self.pieces = []  # (Segment, Hypothesis) decoded so far

    def add(self, samples, log_probs) -> None:
        """Samples just fed (S,) and the posteriors the stream emitted for them (N, V)."""
        import numpy as np

        self.energies.extend(self.meter.feed(samples.cpu().numpy()).tolist())
        if log_probs.numel():
            self.frames.append(log_probs)
        pending = sum(f.size(0) for f in self.frames)
        if self.opts.mode != "none" and pending * self.shift >= self.opts.length:
            from crnn.inference.segment import HOP_SECONDS, last_cut

            first = int(self.frame_start * self.shift / HOP_SECONDS) - self.energy_start
            half = first + int(self.opts.length / 2 / HOP_SECONDS)  # cut in the segment's second half
            cut = last_cut(np.asarray(self.energies, dtype=np.float32), half, self.opts.min_pause)
            cut_frame = int(round((self.energy_start + cut) * HOP_SECONDS / self.shift)) - self.frame_start
            self._decode(max(1, min(cut_frame, pending)))

    def finish(self, log_probs) -> None:
        if log_probs.numel():
            self.frames.append(log_probs)
        pending = sum(f.size(0) for f in self.frames)
        if pending or not self.pieces:
            self._decode(pending)

    def _decode(self, n: int) -> None:
        import torch

        from crnn.inference.segment import HOP_SECONDS, Segment

        lp = torch.cat(self.frames) if self.frames else torch.zeros(0, self.model.cfg.vocab_size)
        head, rest = lp[:n], lp[n:]
        hyp = self.decoder(head[None], torch.tensor([head.size(0)], device=head.device))[0][0]
        start = self.frame_start * self.shift
        self.pieces.append((Segment(start, start + n * self.shift), hyp))
        self.frames = [rest] if rest.numel() else []
        self.frame_start += n
        keep_from = max(0, int((self.frame_start * self.shift - 30.0) / HOP_SECONDS) - self.energy_start)
        del self.energies[:keep_from]  # keep 30 s of history for the adaptive threshold
        self.energy_start += keep_from

    def result(self):
        from crnn.inference.segment import stitch

        if len(self.pieces) == 1:
            return [self.pieces[0][1]]
        return [stitch(self.pieces, self.model.tokenizer, self.shift)]

    def partial_text(self) -> str:
        import torch

        from crnn.decoding import ctc_greedy

        done = self.result()[0].text if self.pieces else ""
        lp = torch.cat(self.frames) if self.frames else None
        live = self.model.tokenizer.decode(ctc_greedy(lp[None], torch.tensor([lp.size(0)]))[0].tokens) if lp is not None else ""
        sep = " " if done and live and self.model.tokenizer.word_separator is not None else ""
        return done + sep + live

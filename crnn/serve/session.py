"""One live stream's recognition: PCM bytes in, ``partial`` and ``final`` messages out.

A :class:`StreamSession` owns a ``StreamingRecognizer`` (the model's recurrent state), an
:class:`~crnn.serve.endpointing.Endpointer` and, when the client declared another rate, a resampler. It does
no I/O: the server calls ``feed``/``finish`` from a worker thread, one call at a time per stream, and
sends the messages they return.

When a rule ends an utterance at output frame ``n`` (the frames emitted so far), the final covers the
stream's audio up to ``n`` frames into the utterance; the recognizer is reset and the audio received past
that point (the conv stack's look-ahead, a few tens of milliseconds) is fed again as the start of the
next utterance, so no sample is lost at a cut. Times in messages are seconds from the start of the stream.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from crnn.inference.streaming import StreamingRecognizer
from crnn.serve.endpointing import Endpointer, EndpointRules
from crnn.serve.pcm import PcmDecoder, StreamResampler, check_rate


class StreamProtocolError(ValueError):
    """The client sent something the protocol does not allow (the message says what)."""


class StreamLimitError(ValueError):
    """The stream went past a server limit (the message names it)."""


class StreamSession:
    """Recognition of one stream of 16-bit little-endian mono PCM, utterance by utterance.

    Args:
        model: a forward-only audio CRNN with its tokenizer (``StreamingError`` otherwise).
        decoder: ``(log_probs (1, T, V), lengths (1,)) -> n-best lists`` for finals (``crnn.decoding.Decoder``).
        rules: endpointing thresholds; a client may lower ``max_utterance`` and change ``trailing_silence``.
        max_seconds: the most audio one stream may carry (None: no limit).
    """

    def __init__(self, model, decoder, rules: EndpointRules = EndpointRules(), max_seconds: float | None = None):
        self.recognizer = StreamingRecognizer(model)
        self.decoder, self.rules, self.max_seconds = decoder, rules, max_seconds
        self.sample_rate = int(model.sample_rate)
        self.input_rate = self.sample_rate
        self.frame_samples = self.recognizer.fe.hop * self.recognizer.total_stride  # samples per output frame
        self.endpointer = Endpointer(rules, model.frame_shift)
        self.pcm = PcmDecoder()
        self.resampler: StreamResampler | None = None
        self.received = 0  # samples (model rate) received
        self.utt_start = 0  # sample where the current utterance starts
        self.tail = torch.zeros(0)  # samples from tail_start on: not yet covered by an emitted output frame
        self.tail_start = 0
        self.shown = ""  # the last partial text sent
        self.audio_started = False
        self.finished = False

    # -- client messages -----------------------------------------------------------------------------
    def configure(self, message: dict[str, Any]) -> None:
        """A text message before the audio: ``{"sample_rate": N, "trailing_silence": s, "max_utterance": s}``
        (each optional). Raises StreamProtocolError for unknown fields, bad values or audio already sent."""
        if self.audio_started:
            raise StreamProtocolError("sample_rate and endpointing can only be set before the first audio")
        unknown = set(message) - {"type", "sample_rate", "trailing_silence", "max_utterance"}
        if unknown:
            raise StreamProtocolError(f"unknown field(s) {', '.join(sorted(unknown))} (allowed: sample_rate, "
                                      "trailing_silence, max_utterance)")
        try:
            if "sample_rate" in message:
                self.input_rate = check_rate(message["sample_rate"], self.sample_rate)
                self.resampler = (StreamResampler(self.input_rate, self.sample_rate)
                                  if self.input_rate != self.sample_rate else None)
            rules = EndpointRules(trailing_silence=message.get("trailing_silence", self.rules.trailing_silence),
                                  max_utterance=message.get("max_utterance", self.rules.max_utterance))
        except (ValueError, TypeError) as e:
            raise StreamProtocolError(str(e)) from None
        if rules.max_utterance > self.rules.max_utterance:
            raise StreamProtocolError(f"max_utterance is at most {self.rules.max_utterance:g} s on this server")
        self.rules = rules
        self.endpointer = Endpointer(rules, self.endpointer.frame_shift)

    def feed(self, data: bytes) -> list[dict]:
        """A binary message of PCM bytes; returns the messages to send (partials, finals)."""
        if self.finished:
            raise StreamProtocolError("the stream has ended")
        self.audio_started = True
        x = self.pcm.decode(data)
        if self.resampler is not None:
            x = self.resampler.accept(x)
        if self.max_seconds is not None and (self.received + x.numel()) / self.sample_rate > self.max_seconds:
            raise StreamLimitError(f"the stream passed {self.max_seconds:g} s of audio (the server's --max-seconds)")
        return self._push(x)

    def finish(self) -> list[dict]:
        """End of the stream: the last utterance's final (if anything was recognised in it)."""
        if self.finished:
            return []
        out = self._push(self.resampler.finish()) if self.resampler is not None else []
        lp = self.recognizer.finish()
        self.endpointer.update(lp)
        self.finished = True
        final = self._final("end", self.received)
        return out + ([final] if final else [])

    # -- internals -----------------------------------------------------------------------------------
    def _push(self, x: torch.Tensor) -> list[dict]:
        if not x.numel():
            return []
        self.received += x.numel()
        self.tail = torch.cat([self.tail, x.to(self.tail.dtype)])
        return self._advance(self.recognizer.accept(x))

    def _advance(self, log_probs: torch.Tensor) -> list[dict]:
        out: list[dict] = []
        while True:
            reason = self.endpointer.update(log_probs)
            self._trim_tail()
            if reason is None:
                break
            cut = min(self.received, self.utt_start + self.recognizer.n_out * self.frame_samples)
            final = self._final(reason, cut) if reason != "nothing" else None
            if final:
                out.append(final)
            self.recognizer.reset()
            self.endpointer.reset()
            self.shown = ""
            self.utt_start = cut
            if self.tail_start < cut:  # nothing left uncovered (cannot happen with a sane frontend)
                self.tail, self.tail_start = torch.zeros(0), cut
            log_probs = self.recognizer.accept(self.tail)  # the audio past the cut starts the next utterance
        text = self.recognizer.text if self.recognizer.n_out else ""
        if text and text != self.shown:
            self.shown = text
            out.append({"type": "partial", "text": text})
        return out

    def _trim_tail(self) -> None:
        """Drop the samples the emitted output frames cover (the next cut can only be after them)."""
        covered = self.utt_start + self.recognizer.n_out * self.frame_samples
        drop = min(covered - self.tail_start, self.tail.numel())
        if drop > 0:
            self.tail = self.tail[drop:]
            self.tail_start += drop

    def _final(self, reason: str, end: int) -> dict | None:
        """The current utterance's final message, or None when it holds no text."""
        frames = self.recognizer.frames  # (T, V)
        if not frames.size(0):
            return None
        with torch.inference_mode():
            hyp = self.decoder(frames[None], torch.tensor([frames.size(0)], device=frames.device))[0][0]
        if not hyp.text:
            return None
        offset = self.utt_start / self.sample_rate
        words = [dict(w, start=round(w["start"] + offset, 4), end=round(w["end"] + offset, 4)) for w in hyp.words]
        confidence = hyp.confidence if math.isfinite(hyp.confidence) else None
        return {"type": "final", "text": hyp.text, "start": round(offset, 4), "end": round(end / self.sample_rate, 4),
                "confidence": None if confidence is None else round(confidence, 4), "words": words, "reason": reason}

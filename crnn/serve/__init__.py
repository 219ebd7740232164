"""The recognition server: HTTP for files, a WebSocket for live audio, on aiohttp (``pip install 'crnn[serve]'``).

    crnn serve --model runs/dtmf_uni/best.pt                   # http://127.0.0.1:8000
    crnn serve --model CK --host 0.0.0.0 --token "$TOKEN"      # other hosts: only with a token

Modules: ``app`` (the aiohttp application: ``make_app(model, options)``, routes, auth, errors), ``service``
(``ServeOptions``; the file queue and worker threads), ``uploads`` (media types, saving a request body),
``session`` (one stream: recognizer + endpointing), ``endpointing`` (the rules), ``pcm`` (PCM bytes,
chunked resampling). Only ``app`` imports aiohttp, so the rest (and ``import crnn``) works without it.

HTTP (JSON in and out; errors are ``{"error": "<reason>"}`` with the status):

* ``GET /health`` -> ``{"status": "ok"}`` (never needs the token).
* ``GET /model`` -> ``{"model", "modality", "sample_rate", "frame_shift", "vocabulary_size", "vocabulary",
  "config", "streaming", "streaming_problem", "stream_format", "endpointing", "accepts", "decoding", "limits"}``.
* ``POST /recognize`` -> the row ``crnn decode --json`` prints for the file (``path`` is the upload's name):
  ``{"path", "text", "score", "confidence", "words": [{"word", "start", "end", "confidence"}]}``.
  The body is the file itself (``Content-Type: audio/wav`` or a name: ``?name=call.wav`` or
  ``Content-Disposition: attachment; filename="call.wav"``), or ``multipart/form-data`` with a ``file`` field.
  400: no file / empty / malformed multipart; 413: over ``--max-upload-mb`` or ``--max-seconds``;
  415: a type the model does not read; 422: a file of a known type that cannot be decoded.
* With ``--token T`` every request except ``/health`` needs ``Authorization: Bearer T`` (else 401).

WebSocket ``GET /stream`` (forward-only audio models; otherwise an ``error`` message and close 1008):

* client -> server: binary messages of 16-bit little-endian mono PCM at the model's rate (``GET /model``
  ``stream_format``), any size (100 ms is typical); optionally, before the audio, a text message
  ``{"sample_rate": N}`` (another rate, resampled on the server) which may also set ``"trailing_silence"``
  and ``"max_utterance"`` (seconds, at most the server's); ``{"type": "end"}`` flushes the last utterance,
  after which the server closes (1000).
* server -> client, JSON text: ``{"type": "partial", "text"}`` whenever the current utterance's text
  changes; ``{"type": "final", "text", "start", "end", "confidence", "words", "reason"}`` when an
  utterance ends (``reason``: ``"silence"`` after ``trailing_silence`` s of blank output following
  speech, ``"max_utterance"``, or ``"end"``; times in seconds from the start of the stream; utterances
  with no text give no final); ``{"type": "error", "error"}`` before the server closes a stream it
  refuses: 1008 for a bad message, ``--max-seconds`` of audio, or ``--idle-timeout`` seconds without a
  message; 1011 for the server's own failure. One connection carries any number of utterances.

Streaming and offline decoding agree: for a model with ``normalize="global"`` (or ``"none"``) a
one-utterance stream gives the offline text, and word times within one output frame (``frame_shift``) of
the offline ones; at a cut between utterances the next one starts without left context, which can move a
word next to the cut by a frame. Per-utterance normalisation streams approximately (running statistics).
"""
from crnn.serve.endpointing import Endpointer, EndpointRules, endpoint
from crnn.serve.service import ServeOptions


def __getattr__(name: str):
    if name == "make_app":  # aiohttp is imported here, on first use
        from crnn.serve.app import make_app

        return make_app
    raise AttributeError(f"module 'crnn.serve' has no attribute {name!r}")


__all__ = ["EndpointRules", "Endpointer", "endpoint", "ServeOptions", "make_app"]

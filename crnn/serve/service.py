"""The model side of the server: options, the file-decoding queue, stream sessions and the model's description.

One model serves every request. Uploaded files wait in a queue; one worker thread takes whatever has
gathered (up to ``batch_size`` files) and decodes it with ``crnn.inference.transcribe_files``, so files
that arrive together share forward passes and the event loop never runs the model. Stream chunks run in a
small pool of threads, each stream's chunks one at a time and in order. PyTorch's eval-mode forward passes
may run in several threads at once; the decoder (which may hold an LM's caches) is behind a lock.
"""
from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import torch

from crnn.decoding import DecodeOptions, Decoder
from crnn.inference.outputs import finite
from crnn.serve.endpointing import EndpointRules
from crnn.serve.uploads import UploadError


@dataclass(frozen=True)
class ServeOptions:
    """How the server runs (``crnn serve`` flags)."""

    token: str | None = None  # every request but /health needs "Authorization: Bearer <token>" (None: none does)
    max_upload_bytes: int = 50 * 2**20  # the largest upload (413 above)
    max_seconds: float = 600.0  # the longest upload, and the most audio one stream may carry, in seconds
    idle_timeout: float = 30.0  # a stream with no message for this long is closed (seconds)
    batch_size: int = 8  # files decoded together, and pieces per forward pass
    device: str = "cpu"  # where the model runs
    stream_workers: int = 2  # threads that run stream chunks
    decode: DecodeOptions = DecodeOptions()  # greedy unless a beam, LM, lexicon ... is set
    endpointing: EndpointRules = field(default_factory=EndpointRules)  # where stream utterances end
    model_name: str | None = None  # shown by GET /model (a file name or a shipped model's name, never a path)


class _LockedDecoder:
    """A Decoder shared by threads: one call at a time."""

    def __init__(self, decoder: Decoder):
        self.decoder, self.lock = decoder, threading.Lock()

    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor):
        with self.lock:
            return self.decoder(log_probs, lengths)


def stream_problem(model) -> str | None:
    """Why ``model`` cannot serve ``/stream``, or None when it can."""
    from crnn.inference.streaming import StreamingError, StreamingRecognizer

    if not isinstance(model, torch.nn.Module) or not hasattr(model, "encoder"):
        return "an exported model does not stream here: serve its checkpoint (.pt)"
    try:
        StreamingRecognizer(model)
    except StreamingError as e:
        return str(e)
    return None


class Service:
    """A loaded model and the workers that run it for the HTTP and WebSocket handlers.

    Args:
        model: a CRNN (or ``OnnxModel``) with its tokenizer, in eval mode.
        options: ServeOptions.
    """

    def __init__(self, model, options: ServeOptions):
        if model.tokenizer is None:
            raise ValueError("the model has no tokenizer: load it with crnn.load_model")
        self.model, self.options = model.eval(), options
        self.decoder = _LockedDecoder(Decoder(model.tokenizer, options.decode, model.frame_shift))
        self.stream_problem = stream_problem(model) if model.modality == "audio" else (
            f"streaming needs an audio model; this one reads {model.modality}")
        self.files_pool: ThreadPoolExecutor | None = None
        self.stream_pool: ThreadPoolExecutor | None = None
        self.queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None

    # -- lifetime (the application's startup and cleanup) ------------------------------------------
    async def start(self) -> None:
        self.files_pool = ThreadPoolExecutor(1, thread_name_prefix="crnn-files")
        self.stream_pool = ThreadPoolExecutor(self.options.stream_workers, thread_name_prefix="crnn-stream")
        self.queue = asyncio.Queue()
        self._worker = asyncio.create_task(self._decode_queued())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        for pool in (self.files_pool, self.stream_pool):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    # -- files ----------------------------------------------------------------------------------------
    async def recognize(self, path: str):
        """Decode one saved file (queued with others); returns its ``FileResult``."""
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((path, future))
        return await future

    async def _decode_queued(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            while len(batch) < self.options.batch_size and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            batch = [(p, f) for p, f in batch if not f.done()]  # requests whose client left are dropped
            if not batch:
                continue
            try:
                results = await loop.run_in_executor(self.files_pool, self._decode_files, [p for p, _ in batch])
            except Exception as e:  # noqa: BLE001 - handed to each waiting request (a 500 naming it)
                for _, f in batch:
                    if not f.done():
                        f.set_exception(e)
                continue
            for (_, f), r in zip(batch, results):
                if not f.done():
                    f.set_result(r)

    def _decode_files(self, paths: list[str]) -> list:
        from crnn.inference.api import transcribe_files
        from crnn.inference.segment import SegmentOptions

        return list(transcribe_files(self.model, paths, self.decoder, batch_size=self.options.batch_size,
                                     device=self.options.device, workers=0, segment=SegmentOptions()))

    def duration(self, path: str, name: str) -> float | None:
        """Seconds of an audio or video upload from its header (None for images and features).

        Raises:
            UploadError: 422 when the file cannot be read as the model's media (the reader's reason).
        """
        modality = self.model.modality
        if modality == "audio":
            from crnn.data.audio import AudioReadError, audio_duration

            try:
                return audio_duration(path)
            except AudioReadError as e:
                raise UploadError(422, f"{name}: {e.reason}".replace(path, name)) from None
        if modality == "video" and not path.endswith(".npy"):
            import av

            try:
                with av.open(path) as container:
                    if container.duration is not None:
                        return container.duration / av.time_base
                    stream = container.streams.video[0]
                    return float(stream.frames / stream.average_rate) if stream.frames and stream.average_rate else None
            except (av.FFmpegError, IndexError, OSError, ValueError) as e:
                raise UploadError(422, f"{name}: not a readable video ({e})".replace(path, name)) from None
        return None

    # -- streams --------------------------------------------------------------------------------------
    def new_session(self):
        """A StreamSession for one WebSocket (the model must stream: see ``stream_problem``)."""
        from crnn.serve.session import StreamSession

        return StreamSession(self.model, self.decoder, self.options.endpointing, self.options.max_seconds)

    async def in_stream_pool(self, fn: Callable, *args):
        """Run a session call in the stream threads."""
        return await asyncio.get_running_loop().run_in_executor(self.stream_pool, fn, *args)

    # -- description ----------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """What ``GET /model`` answers."""
        from crnn.data.media import READABLE

        m, o = self.model, self.options
        streams = self.stream_problem is None
        return finite({
            "model": o.model_name, "modality": m.modality, "sample_rate": m.sample_rate, "frame_shift": m.frame_shift,
            "pixels_per_frame": getattr(m, "pixels_per_frame", None), "vocabulary_size": len(m.tokenizer),
            "vocabulary": list(m.tokenizer.symbols), "config": m.cfg.to_dict(),
            "streaming": streams, "streaming_problem": self.stream_problem,
            "stream_format": {"encoding": "pcm_s16le", "channels": 1, "sample_rate": m.sample_rate} if streams else None,
            "endpointing": asdict(o.endpointing) if streams else None,
            "accepts": sorted(READABLE[m.modality]),
            "decoding": {"beam_size": o.decode.beam_size, "nbest": o.decode.nbest, "lm": o.decode.lm is not None},
            "limits": {"max_upload_bytes": o.max_upload_bytes, "max_seconds": o.max_seconds,
                       "idle_timeout": o.idle_timeout, "batch_size": o.batch_size},
        })

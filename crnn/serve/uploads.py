"""Uploaded media: what type a request body is, and saving it to a private temporary file within the limits.

``POST /recognize`` takes a file either as the raw request body (its type from the file name, given as
``?name=`` or in ``Content-Disposition``, else from ``Content-Type``), or as ``multipart/form-data`` with a
``file`` field (its type from the part's file name, else the part's ``Content-Type``). The body is written,
as it arrives, to a file in a fresh folder only the server's user can read (``tempfile.mkdtemp``), named
``upload<suffix>``: the client's name is shown in results and errors, never used as a path.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import AsyncIterator

from crnn.data.media import READABLE

# Content-Type -> suffix, for bodies that come without a file name (or with one whose suffix says nothing).
MEDIA_TYPES = {
    "audio/wav": ".wav", "audio/x-wav": ".wav", "audio/wave": ".wav", "audio/vnd.wave": ".wav",
    "audio/flac": ".flac", "audio/x-flac": ".flac", "audio/ogg": ".ogg", "audio/opus": ".opus",
    "audio/mpeg": ".mp3", "audio/mp3": ".mp3", "audio/mp4": ".m4a", "audio/x-m4a": ".m4a", "audio/aac": ".aac",
    "audio/webm": ".webm", "audio/aiff": ".aiff", "audio/x-aiff": ".aiff", "audio/basic": ".au",
    "video/mp4": ".mp4", "video/webm": ".webm", "video/x-matroska": ".mkv", "video/quicktime": ".mov",
    "video/x-msvideo": ".avi", "image/png": ".png", "image/jpeg": ".jpg", "image/tiff": ".tif",
    "image/bmp": ".bmp", "image/webp": ".webp", "application/x-npy": ".npy",
}
CHUNK = 1 << 16


class UploadError(Exception):
    """A request whose upload cannot be decoded: the HTTP status and the reason, for ``{"error": ...}``."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclass
class Upload:
    """A saved upload: the client's name for it (for results) and the private file holding it."""

    name: str
    path: str
    size: int


def clean_name(name: str | None) -> str:
    """The last component of a client's file name, without control characters (for display only)."""
    name = PurePosixPath((name or "").replace("\\", "/")).name
    return re.sub(r"[\x00-\x1f\x7f]", "", name)[:200]


def media_suffix(name: str, content_type: str | None, modality: str) -> str:
    """The suffix the upload is saved with: the name's, else the Content-Type's, if the model reads it.

    Raises:
        UploadError: 415, naming what was sent and what the model reads.
    """
    readable = READABLE[modality]
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in readable:
        return suffix
    ctype = (content_type or "").split(";")[0].strip().lower()
    if MEDIA_TYPES.get(ctype) in readable:
        return MEDIA_TYPES[ctype]
    sent = ", ".join(x for x in (repr(name) if name else "", ctype) if x) or "a body without a name or type"
    raise UploadError(415, f"unsupported media type ({sent}): this model reads {modality} files: "
                           f"{' '.join(sorted(readable))} (give the file name, or a Content-Type such as "
                           f"{_example_type(modality)})")


def _example_type(modality: str) -> str:
    return {"audio": "audio/wav", "video": "video/mp4", "image": "image/png"}.get(modality, "application/x-npy")


@asynccontextmanager
async def receive_upload(request, modality: str, max_bytes: int) -> AsyncIterator[Upload]:
    """Save the request's file to a private temporary file; removed when the block ends.

    Raises:
        UploadError: 400 (no file, empty, malformed multipart), 413 (over ``max_bytes``), 415 (a type
            the model does not read).
    """
    if request.content_length is not None and request.content_length > max_bytes + (1 << 16):
        raise UploadError(413, f"the upload is {request.content_length} bytes, over the {max_bytes} byte limit "
                               "(--max-upload-mb)")
    folder = tempfile.mkdtemp(prefix="crnn-serve-")  # mode 0700: private to the server's user
    try:
        if request.content_type.startswith("multipart/"):
            upload = await _save_multipart(request, modality, max_bytes, folder)
        else:
            upload = await _save_body(request, modality, max_bytes, folder)
        yield upload
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def _save_body(request, modality: str, max_bytes: int, folder: str) -> Upload:
    from aiohttp.multipart import content_disposition_filename, parse_content_disposition

    name = request.query.get("name")
    if not name and "Content-Disposition" in request.headers:
        _, params = parse_content_disposition(request.headers["Content-Disposition"])
        name = content_disposition_filename(params, "filename")
    name = clean_name(name)
    ctype = request.headers.get("Content-Type")
    suffix = media_suffix(name, ctype, modality)
    return await _write(request.content.iter_chunked(CHUNK), name or f"upload{suffix}", suffix, max_bytes, folder)


async def _save_multipart(request, modality: str, max_bytes: int, folder: str) -> Upload:
    try:
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                raise UploadError(400, "the multipart form has no 'file' field (send the media as the field "
                                       "'file', or as the raw request body)")
            if part.name == "file":
                break
            await part.release()
    except (ValueError, AssertionError) as e:  # aiohttp's parser: a missing or damaged boundary
        raise UploadError(400, f"malformed multipart body ({e})") from None
    name = clean_name(part.filename)
    suffix = media_suffix(name, part.headers.get("Content-Type"), modality)

    async def chunks():
        while True:
            chunk = await part.read_chunk(CHUNK)
            if not chunk:
                return
            yield chunk

    return await _write(chunks(), name or f"upload{suffix}", suffix, max_bytes, folder)


async def _write(chunks, name: str, suffix: str, max_bytes: int, folder: str) -> Upload:
    path = os.path.join(folder, "upload" + suffix)
    size = 0
    with open(path, "xb") as f:
        async for chunk in chunks:
            size += len(chunk)
            if size > max_bytes:
                raise UploadError(413, f"the upload is over the {max_bytes} byte limit (--max-upload-mb)")
            f.write(chunk)
    if size == 0:
        raise UploadError(400, "the upload is empty")
    return Upload(name, path, size)

"""Reading text-line images (PNG, JPEG, TIFF, BMP, WebP through Pillow).

:func:`read_line_image` returns ``float32 (C, H, W)`` in ``[0, 1]`` (C = 1 grey, or 3 RGB), resized to a
fixed height with the width scaled by the same factor, so the line's aspect is kept and its width becomes
the model's time axis. Anything unreadable raises :class:`ImageReadError` naming the file and the reason.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from crnn.data.files import MAX_DECODE_BYTES, format_bytes, regular_file_problem

LINE_IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"})
MAX_PIXELS = 50_000_000  # a line larger than this is a corrupt header or a decompression bomb
MIN_LINE_HEIGHT = 6       # pixels: fewer rows cannot hold a legible character
PAGE_MIN_BANDS = 3        # a taller-than-wide image with this many rows of ink, blank rows between, is a page
# the full scale of each integer pixel format Pillow reads (16-bit PNG/TIFF greys arrive as I;16 or I)
INTEGER_MODE_RANGE = {"I;16": 65535, "I;16L": 65535, "I;16B": 65535, "I;16N": 65535}


class ImageReadError(RuntimeError):
    """A line image cannot be read; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str | Path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")


def read_line_image(
    path: str | Path, height: int | None = 32, channels: int = 1, max_bytes: int | None = None,
    allow_tall: bool = False,
) -> torch.Tensor:
    """Read one text line.

    Args:
        path: image file (``.png .jpg .jpeg .tif .tiff .bmp .webp``).
        height: resize to this height, width scaled alike (at least 1 px); None keeps the size. (Default: 32)
        channels: 1 (grey) or 3 (RGB). (Default: 1)
        max_bytes: budget of the decoded pixels. (Default: MAX_DECODE_BYTES)
        allow_tall: accept an image taller than wide whatever it holds; otherwise such an image is refused
            when its ink lies in several separate rows (a page or a column of lines). A short word or a
            single glyph, taller than wide, is a line. (Default: False)

    Returns:
        float32 (C, H, W) in [0, 1].

    Raises:
        ImageReadError: missing, not a regular file, empty, unsupported suffix, not an image, truncated,
            absurd size (over MAX_PIXELS or the byte budget), or a multi-line page.
    """
    from PIL import Image, UnidentifiedImageError

    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    path = Path(path)
    problem = regular_file_problem(path)
    if problem == "no such file":
        problem = "no such image file"
    if problem:
        raise ImageReadError(path, problem)
    if path.suffix.lower() not in LINE_IMAGE_EXTENSIONS:
        raise ImageReadError(path, f"unsupported image format {path.suffix or '(no extension)'!r} "
                                   f"(supported: {', '.join(sorted(LINE_IMAGE_EXTENSIONS))})")
    budget = MAX_DECODE_BYTES if max_bytes is None else max_bytes
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w < 1 or h < 1 or w * h > MAX_PIXELS:
                    raise ImageReadError(path, f"absurd image size {w}x{h} (at most {MAX_PIXELS} pixels)")
                if w * h * channels * 4 > budget:
                    raise ImageReadError(path, f"decoding would need {format_bytes(w * h * channels * 4)}, over "
                                               f"the {format_bytes(budget)} budget (CRNN_MAX_DECODE_BYTES)")
                if h < MIN_LINE_HEIGHT:
                    raise ImageReadError(path, f"{w}x{h} is too small for a text line (at least {MIN_LINE_HEIGHT} "
                                               "pixels high to hold a legible character)")
                im.load()
                im = _to_8bit(im, path, channels)
                if not allow_tall and h > w:
                    bands = ink_bands(np.asarray(im.convert("L"), dtype=np.uint8))
                    if bands >= PAGE_MIN_BANDS:
                        raise ImageReadError(path, f"{w}x{h} holds {bands} rows of text one above the other: a page "
                                                   "or several lines, not one text line (split it into lines first)")
                if height is not None and h != height:
                    new_w = max(1, round(w * height / h))
                    im = im.resize((new_w, height), Image.BILINEAR)
                arr = np.asarray(im, dtype=np.uint8)
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(path, "not an image (Pillow cannot identify it)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageReadError(path, "absurd image size (decompression bomb)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        reason = str(e) or type(e).__name__
        if "truncated" in reason.lower() or isinstance(e, EOFError):
            reason = f"truncated ({reason})"
        raise ImageReadError(path, f"cannot decode: {reason}") from None
    x = torch.from_numpy(arr.copy()).float().div_(255.0)
    return x.unsqueeze(0) if channels == 1 else x.permute(2, 0, 1).contiguous()


def _to_8bit(im, path: Path, channels: int):
    """The image in 8-bit L or RGB, integer formats scaled by their own range (a 16-bit grey is divided by
    65535/255, not clipped at 255); float images must lie in [0, 1]."""
    from PIL import Image

    mode = im.mode
    if mode in INTEGER_MODE_RANGE or mode in ("I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        if not np.isfinite(arr).all():
            raise ImageReadError(path, f"non-finite pixel values (mode {mode})")
        if mode == "F":
            full = 1.0
        elif mode == "I":  # 32-bit integers: PNG's 16-bit greys on older Pillow, or a 32-bit TIFF
            full = 65535.0 if im.format == "PNG" or arr.max(initial=0) <= 65535 else 2.0**32 - 1
        else:
            full = float(INTEGER_MODE_RANGE[mode])
        if arr.min(initial=0) < 0 or arr.max(initial=0) > full:
            raise ImageReadError(path, f"pixel values outside the format's range [0, {full:g}] (mode {mode})")
        im = Image.fromarray((arr * (255.0 / full)).round().astype(np.uint8), mode="L")
    return im.convert("L" if channels == 1 else "RGB")


def ink_bands(grey: np.ndarray, min_rows: int = MIN_LINE_HEIGHT) -> int:
    """Rows of text in a grey ``(H, W)`` uint8 image, counted as runs of at least ``min_rows`` inked pixel rows
    between blank ones (ink: darker than the paper by a third of the image's contrast, on its dominant
    background). Thinner runs are no row of text: the edges of the lines above and below that a loose
    crop of one short line shows, a rule, specks."""
    g = grey.astype(np.float32)
    lo, hi = np.percentile(g, 2), np.percentile(g, 98)
    if hi - lo < 32:
        return 0  # no contrast: no text to count
    paper_light = np.median(g) >= (lo + hi) / 2
    ink = g < hi - (hi - lo) / 3 if paper_light else g > lo + (hi - lo) / 3
    inked_rows = ink.mean(axis=1) > 0.01
    edges = np.diff(np.concatenate([[0], inked_rows.astype(np.int8), [0]]))
    heights = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
    return int((heights >= min_rows).sum())


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of an image file from its header; ImageReadError when it cannot be opened."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.size
    except Exception as e:  # the same file was just decoded by read_line_image, so this is rare
        raise ImageReadError(path, f"cannot read the image header ({type(e).__name__}: {e})") from None

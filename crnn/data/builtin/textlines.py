"""Built-in text lines: words, numbers and punctuation rendered with TrueType fonts (Pillow).

The fonts are a choice: :func:`find_fonts` takes folders, files or globs (e.g. the Debian packages
fonts-dejavu, fonts-liberation, fonts-freefont-ttf under ``/usr/share/fonts/truetype``) and falls back
to the DejaVu fonts that matplotlib ships, so rendering works wherever the package is installed.
:func:`split_fonts` holds a set of font families out for testing.
"""
from __future__ import annotations

import glob
import random
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

SYSTEM_FONT_DIRS = ("/usr/share/fonts/truetype",)
WORDS = ("the quick brown fox jumps over a lazy dog while seven bold wizards quietly pack "
         "twelve jugs of liquid mixed from zebra honey and vexing frozen kiwis").split()
PUNCT = list(".,;:!?-'\"()")


def find_fonts(sources: Sequence[str] | None = None) -> list[Path]:
    """TrueType/OpenType font files from ``sources`` (folders searched recursively, files, globs);
    None: the system's font folders, else matplotlib's bundled DejaVu. Sorted, deduplicated."""
    found: set[Path] = set()
    for src in (sources if sources else SYSTEM_FONT_DIRS):
        p = Path(src)
        paths = p.rglob("*") if p.is_dir() else (Path(g) for g in glob.glob(src, recursive=True))
        found |= {f for f in paths if f.is_file() and f.suffix.lower() in (".ttf", ".otf")}
    if not found and not sources:
        import matplotlib
        found = set((Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf").glob("DejaVu*.ttf"))
    if not found:
        raise FileNotFoundError(f"no .ttf/.otf fonts in {', '.join(sources or SYSTEM_FONT_DIRS)}")
    return sorted(found)


def split_fonts(fonts: Sequence[Path], held_out: Sequence[str]) -> tuple[list[Path], list[Path]]:
    """(train, test): a font goes to test when its file name contains any of ``held_out`` (case-insensitive)."""
    keys = [k.lower() for k in held_out]
    test = [f for f in fonts if any(k in f.name.lower() for k in keys)]
    return [f for f in fonts if f not in test], test


def random_text(rng: random.Random, words: Sequence[str] = WORDS, max_words: int = 5) -> str:
    """A line of words, numbers and punctuation, e.g. ``'lazy 1984, fox!'``."""
    out = []
    for _ in range(rng.randint(1, max_words)):
        r = rng.random()
        tok = str(rng.randint(0, 99999)) if r < 0.2 else rng.choice(words)
        if rng.random() < 0.15:
            tok = tok.capitalize()
        if rng.random() < 0.2:
            tok += rng.choice(PUNCT)
        out.append(tok)
    return " ".join(out)


def render_line(text: str, font_path: str | Path, rng: random.Random, height: int = 32) -> torch.Tensor:
    """Render ``text`` in the font at a random size, ink/paper, tilt, blur and noise.

    Returns float32 (1, height, W) in [0, 1], width scaled with the aspect kept.
    """
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    font = ImageFont.truetype(str(font_path), rng.randint(20, 40))
    left, top, right, bottom = font.getbbox(text)
    pad = rng.randint(2, 8)
    w, h = right - left + 2 * pad, bottom - top + 2 * pad
    paper, ink = rng.randint(170, 255), rng.randint(0, 90)
    im = Image.new("L", (max(w, 1), max(h, 1)), paper)
    ImageDraw.Draw(im).text((pad - left, pad - top), text, font=font, fill=ink)
    if rng.random() < 0.5:
        im = im.rotate(rng.uniform(-2, 2), resample=Image.BILINEAR, expand=True, fillcolor=paper)
    if rng.random() < 0.4:
        im = im.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    im = im.resize((max(4, round(im.width * height / im.height)), height), Image.BILINEAR)
    x = np.asarray(im, dtype=np.float32) / 255.0
    x = x + np.random.default_rng(rng.randrange(2**32)).normal(0, rng.uniform(0, 0.05), x.shape)
    return torch.from_numpy(np.clip(x, 0, 1).astype(np.float32))[None]

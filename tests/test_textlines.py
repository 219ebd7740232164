"""Built-in text lines: fonts are a user choice with a held-out split, and rendered lines carry ink."""
from __future__ import annotations

import random

import pytest

from crnn.data.builtin.textlines import find_fonts, random_text, render_line, split_fonts


def test_fonts_found_and_split_by_family():
    fonts = find_fonts()
    assert fonts and all(f.suffix.lower() in (".ttf", ".otf") for f in fonts)
    train, test = split_fonts(fonts, ["mono"])
    assert set(train).isdisjoint(test) and len(train) + len(test) == len(fonts)
    assert all("mono" in f.name.lower() for f in test)
    with pytest.raises(FileNotFoundError):
        find_fonts(["/nonexistent/*.ttf"])


def test_rendered_line_has_fixed_height_and_wider_for_longer_text():
    rng = random.Random(0)
    font = find_fonts()[0]
    short = render_line("ab", font, random.Random(1), height=32)
    long = render_line("ab" * 20, font, random.Random(1), height=32)
    assert short.shape[:2] == (1, 32) and long.shape[1] == 32 and long.shape[2] > 3 * short.shape[2]
    assert long.min() < long.max() - 0.3  # ink differs from paper
    assert random_text(rng).strip()

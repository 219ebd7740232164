"""Text-line image reader: each format read back, and each kind of bad file named with its reason."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image

from crnn.data.image import ImageReadError, read_line_image


def line_array(w: int = 120, h: int = 30) -> np.ndarray:
    a = np.full((h, w), 255, np.uint8)
    a[h // 3: 2 * h // 3, 10: w - 10] = 0  # a dark bar: the "ink"
    return a


def reason(path, **kw) -> str:
    with pytest.raises(ImageReadError) as e:
        read_line_image(path, **kw)
    assert str(path) in str(e.value)
    return e.value.reason


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif", ".bmp", ".webp"])
def test_formats_read_at_fixed_height_with_aspect_kept(tmp_path, suffix):
    p = tmp_path / f"line{suffix}"
    Image.fromarray(line_array()).save(p)
    x = read_line_image(p, height=15)
    assert x.shape == (1, 15, 60) and x.dtype == torch.float32
    assert x.min() < 0.2 and x.max() > 0.8  # ink dark, paper light, in [0, 1]
    rgb = read_line_image(p, height=None, channels=3)
    assert rgb.shape == (3, 30, 120)


def test_bad_files_are_named(tmp_path):
    assert "no such image file" in reason(tmp_path / "missing.png")
    (tmp_path / "empty.png").write_bytes(b"")
    assert "empty" in reason(tmp_path / "empty.png")
    (tmp_path / "text.png").write_text("not an image at all\n")
    assert "not an image" in reason(tmp_path / "text.png")
    (tmp_path / "line.gif").write_bytes(b"GIF89a")
    assert "unsupported image format" in reason(tmp_path / "line.gif")
    good = tmp_path / "good.png"
    Image.fromarray(line_array(400, 40)).save(good)
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    assert "truncated" in reason(tmp_path / "cut.png") or "cannot decode" in reason(tmp_path / "cut.png")
    page = np.full((200, 40), 255, np.uint8)
    for top in range(10, 190, 36):  # five rows of ink, blank rows between: several lines
        page[top:top + 20, 4:36] = 0
    Image.fromarray(page).save(tmp_path / "page.png")
    assert "several lines" in reason(tmp_path / "page.png")
    assert read_line_image(tmp_path / "page.png", allow_tall=True, height=None).shape == (1, 200, 40)


def test_absurd_size_in_header_is_refused_before_decoding(tmp_path):
    Image.new("L", (20000, 3000), 255).save(tmp_path / "huge.png")  # 60 Mpx, compresses to a few kB
    assert "absurd image size" in reason(tmp_path / "huge.png")
    Image.fromarray(line_array()).save(tmp_path / "small.png")
    assert "budget" in reason(tmp_path / "small.png", max_bytes=100)


def test_fuzzed_bytes_either_read_or_raise_image_read_error(tmp_path):
    """Random corruption of a real PNG/JPEG: a (C, H, W) tensor in [0, 1] or an ImageReadError, nothing else."""
    rng = random.Random(0)
    for suffix in (".png", ".jpg", ".webp"):
        src = tmp_path / f"src{suffix}"
        Image.fromarray(line_array()).save(src)
        data = src.read_bytes()
        for i in range(40):
            b = bytearray(data)
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            if rng.random() < 0.3:
                b = b[: rng.randrange(1, len(b))]
            p = tmp_path / f"fuzz{i}{suffix}"
            p.write_bytes(bytes(b))
            try:
                x = read_line_image(p, height=16)
            except ImageReadError as e:
                assert str(p) in str(e)
            else:
                assert x.ndim == 3 and x.shape[1] == 16 and torch.isfinite(x).all()
                assert 0 <= x.min() and x.max() <= 1


def test_registered_reader_follows_the_frontend_settings(tmp_path):
    from crnn.data.media import make_reader
    from crnn.frontends import build_frontend, reader_args

    Image.fromarray(line_array()).save(tmp_path / "l.png")
    f = build_frontend("image", {"height": 10, "channels": 3})
    assert reader_args(f) == {"height": 10, "channels": 3}
    assert make_reader("image", reader_args(f))(str(tmp_path / "l.png")).shape == (3, 10, 40)


def test_a_16_bit_grey_line_is_scaled_by_its_range_not_clipped(tmp_path):
    line = line_array(120, 30).astype(np.uint16) * 257  # the same picture in 16 bits (255 -> 65535)
    Image.fromarray(line).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as im:
        assert im.mode.startswith("I")  # Pillow reads it as 16-bit integers
    Image.fromarray(line_array(120, 30)).save(tmp_path / "flat.png")
    deep = read_line_image(tmp_path / "deep.png", height=None)
    flat = read_line_image(tmp_path / "flat.png", height=None)
    assert torch.allclose(deep, flat, atol=1 / 255)
    assert float(deep.min()) == 0.0 and float(deep.max()) == 1.0  # ink and paper, not a blank page


def test_an_image_too_small_to_hold_a_character_is_refused(tmp_path):
    Image.fromarray(np.zeros((1, 1), np.uint8)).save(tmp_path / "dot.png")
    assert "too small for a text line" in reason(tmp_path / "dot.png")


def test_a_short_word_taller_than_wide_is_a_line_and_a_page_is_not(tmp_path):
    word = np.full((33, 23), 255, np.uint8)
    word[8:26, 3:20] = 0  # one short word, 23x33 px: one row of ink
    Image.fromarray(word).save(tmp_path / "word.png")
    assert read_line_image(tmp_path / "word.png").shape == (1, 32, 22)
    page = np.full((200, 60), 255, np.uint8)
    for top in range(6, 190, 24):
        page[top:top + 12, 4:56] = 0
    Image.fromarray(page).save(tmp_path / "page.png")
    assert "rows of text one above the other" in reason(tmp_path / "page.png")
    loose = np.full((32, 29), 255, np.uint8)  # a loose crop of one glyph: slivers of the lines above and below
    loose[0:2, 2:27] = loose[5:7, 4:25] = 0
    loose[11:24, 9:20] = 0
    loose[27:29, 3:26] = loose[30:32, 2:27] = 0
    Image.fromarray(loose).save(tmp_path / "loose.png")
    assert read_line_image(tmp_path / "loose.png").shape == (1, 32, 29)

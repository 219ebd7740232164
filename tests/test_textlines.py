"""Built-in text lines: fonts are a user choice with a held-out split, held-out words, deterministic items,
files written to disk that the image reader and dataset read back."""
from __future__ import annotations

import json
import random

import pytest
import torch

from crnn.data.builtin.english_words import word_split
from crnn.data.builtin.textlines import (CHARSET, DEFAULT_HELD_OUT, TextLinesConfig, TextLinesDataset, find_fonts, fonts_for_split,
                                         missing_glyphs, random_text, render_clean_line, render_line, split_fonts,
                                         textlines_tokenizer, write_textlines)


def test_default_fonts_are_text_fonts_and_the_test_split_is_held_out():
    fonts = find_fonts()
    assert fonts and all(f.suffix.lower() in (".ttf", ".otf") for f in fonts)
    assert all(missing_glyphs(f) == "" for f in fonts)  # math/symbol fonts are left out
    assert len({f.name for f in fonts}) == len(fonts)  # a font installed twice counts once
    train, test = fonts_for_split("train"), fonts_for_split("test")
    assert test and train and set(train).isdisjoint(test)
    assert all(any(k.lower() in f.name.lower() for k in DEFAULT_HELD_OUT) for f in test)
    train2, test2 = split_fonts(fonts, ["mono"])
    assert all("mono" in f.name.lower() for f in test2) and len(train2) + len(test2) == len(fonts)
    with pytest.raises(FileNotFoundError):
        find_fonts(["/nonexistent/*.ttf"])
    with pytest.raises(FileNotFoundError, match="no test font"):
        fonts_for_split("test", held_out=("no-such-family",))


def test_font_missing_characters_is_rejected(tmp_path):
    bogus = tmp_path / "broken.ttf"
    bogus.write_bytes(b"not a font at all")
    assert missing_glyphs(bogus) != ""
    with pytest.raises(FileNotFoundError):
        find_fonts([str(bogus)])


def test_held_out_words_never_appear_in_training_lines():
    train_words, test_words = word_split()
    assert test_words and set(train_words).isdisjoint(test_words)
    ds = TextLinesDataset(200, seed=3, config=TextLinesConfig("train"))
    seen = {w.strip(".,;:!?\"'()/&-").lower() for i in range(200) for w in ds.draw(i)[1].split()}
    assert not seen & set(test_words)
    test = TextLinesDataset(50, seed=3, config=TextLinesConfig("test"))
    test_seen = {w.strip(".,;:!?\"'()/&-$%").lower() for i in range(50) for w in test.draw(i)[1].split()}
    assert test_seen & set(test_words)


def test_text_and_plain_text():
    rng = random.Random(0)
    lines = [random_text(rng, ["alpha", "beta"], target_chars=20) for _ in range(50)]
    assert all(set(line) <= set(CHARSET) for line in lines)
    assert any(c.isdigit() for line in lines for c in line) and any(c in ".,;:!?" for line in lines for c in line)
    plain = [random_text(rng, ["alpha", "beta"], plain=True) for _ in range(50)]
    assert all(set(line.split()) <= {"alpha", "beta"} for line in plain)


def test_rendered_line_has_fixed_height_and_wider_for_longer_text():
    font = find_fonts()[0]
    short = render_line("ab", font, random.Random(1), height=32)
    long = render_line("ab" * 20, font, random.Random(1), height=32)
    assert short.shape[:2] == (1, 32) and long.shape[1] == 32 and long.shape[2] > 3 * short.shape[2]
    assert long.min() < long.max() - 0.3  # ink differs from paper


def test_clean_lines_are_black_on_white_and_the_training_look_is_not():
    """--clean: the born-digital look (no noise, blur or tint); the default look never gives a clean page."""
    font = find_fonts()[0]
    clean = render_clean_line("Clean 42, lines.", font, random.Random(3), height=32)
    assert clean.shape[:2] == (1, 32) and clean.shape[2] > 4 * 32
    assert float(clean.max()) == 1.0 and float(clean.min()) < 0.1  # white paper, black ink
    assert float((clean == 1.0).float().mean()) > 0.5  # most of a clean line is untouched paper
    assert torch.equal(clean, render_clean_line("Clean 42, lines.", font, random.Random(3), height=32))
    varied = [render_line("Clean 42, lines.", font, random.Random(k), height=32, degrade=True) for k in range(20)]
    assert max(float((v == 1.0).float().mean()) for v in varied) < 0.5
    ds = TextLinesDataset(6, seed=1, config=TextLinesConfig("train", clean=True))
    assert all(float((ds[i]["signal"] == 1.0).float().mean()) > 0.3 for i in range(6))


def test_items_are_reproducible_fresh_per_epoch_and_their_lengths_follow_the_text():
    ds = TextLinesDataset(40, seed=1, config=TextLinesConfig("train", height=24))
    a, b = ds[5], ds[5]
    assert a["text"] == b["text"] and torch.equal(a["signal"], b["signal"]) and a["signal"].shape[1] == 24
    assert ds.tokenizer.decode(a["tokens"].tolist()) == a["text"]
    ds.set_epoch(1)
    assert ds[5]["text"] != a["text"]
    lengths, widths = ds.lengths(), [ds[i]["signal"].shape[-1] for i in range(40)]
    assert torch.corrcoef(torch.tensor([lengths, widths], dtype=torch.float))[0, 1] > 0.7


def test_written_lines_read_back_through_the_manifest_and_image_dataset(tmp_path):
    from crnn.data.build import make_dataset, read_rows
    from crnn.data.collate import collate
    from crnn.data.media import modality_of_rows

    manifest = write_textlines(tmp_path / "test", 12, seed=2, config=TextLinesConfig("test"))
    rows = read_rows(str(manifest))
    assert len(rows) == 12 and modality_of_rows(rows) == "image"
    raw = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert all(any(k.lower() in r["font"].lower() for k in DEFAULT_HELD_OUT) for r in raw)
    assert (tmp_path / "test" / "words.txt").read_text().split() == word_split()[1]
    ds = make_dataset(rows, textlines_tokenizer(), "image", {"height": 32, "channels": 1}, train=False)
    assert ds.lengths() == [r["width"] for r in raw]
    batch = collate([ds[i] for i in range(12)])
    assert batch.x.shape[:3] == (12, 1, 32) and batch.x.shape[3] == max(r["width"] for r in raw)
    assert batch.x_lens.tolist() == [r["width"] for r in raw]
    assert batch.texts == [r["text"] for r in raw]
    for i, w in enumerate(batch.x_lens.tolist()):  # padded on the right with zeros
        assert float(batch.x[i, ..., w:].abs().sum()) == 0.0

"""Text-line images from manifests: read at the model's height, bad files skipped and named, augmentation
that keeps the height, and the trainer's pre-scan using the rows' sizes."""
from __future__ import annotations

import torch
from PIL import Image, ImageDraw

from crnn.data.collate import BadSample, collate
from crnn.data.image.augment import LineAugment
from crnn.data.image.dataset import LineImageDataset, scaled_width
from crnn.tokenizer import Tokenizer

TOK = Tokenizer(sorted(set("Hello, World!42 ")), kind="char", text_norm="none")


def _line(path, text="Hello", size=(120, 40)):
    im = Image.new("L", size, 255)
    ImageDraw.Draw(im).text((4, 8), text, fill=0)
    im.save(path)
    return str(path)


def test_lines_are_read_at_the_model_height_and_bad_items_are_named(tmp_path):
    rows = [{"path": _line(tmp_path / "a.png"), "text": "Hello, World!"},
            {"path": _line(tmp_path / "b.jpg", size=(60, 40)), "text": "42"},
            {"path": str(tmp_path / "missing.png"), "text": "Hello"},
            {"path": _line(tmp_path / "c.png"), "text": "Hello?"}]  # '?' is not in the vocabulary
    ds = LineImageDataset(rows, TOK, {"height": 32, "channels": 1})
    a, b, missing, unknown = (ds[i] for i in range(4))
    assert a["signal"].shape == (1, 32, 96) and b["signal"].shape == (1, 32, 48)
    assert a["text"] == "Hello, World!"  # case and punctuation kept
    assert isinstance(missing, BadSample) and "missing.png" in missing.path and "no such image file" in missing.reason
    assert isinstance(unknown, BadSample) and "?" in unknown.reason
    batch = collate([a, b, missing, unknown])
    assert len(batch) == 2 and len(batch.skipped) == 2 and batch.x.shape == (2, 1, 32, 96)
    assert batch.x_lens.tolist() == [96, 48]
    assert ds.lengths() == [96, 48, 0, 96]


def test_row_sizes_scale_to_the_model_height():
    assert scaled_width({"width": 300, "height": 64}, 32) == 150
    assert scaled_width({"width": 300}, 32) is None


def test_augmentation_keeps_height_range_and_is_reproducible():
    x = torch.ones(1, 32, 200)
    x[:, 10:22, 20:180] = 0.1
    aug = LineAugment()
    outs = [aug(x, torch.Generator().manual_seed(s)) for s in range(8)]
    assert all(o.shape[:2] == (1, 32) and 0.0 <= float(o.min()) and float(o.max()) <= 1.0 for o in outs)
    assert len({o.shape[-1] for o in outs}) > 1  # widths stretch
    assert torch.equal(aug(x, torch.Generator().manual_seed(3)), outs[3])
    assert not torch.equal(outs[0][..., :150], outs[1][..., :150])


def test_prescan_drops_lines_too_narrow_for_their_transcript(tmp_path):
    import crnn
    from crnn.data.build import prescan

    model = crnn.create_model("image_tiny", vocab_size=len(TOK))
    wide = {"path": _line(tmp_path / "w.png"), "text": "Hello", "width": 120, "height": 40}
    narrow = {"path": _line(tmp_path / "n.png", size=(12, 40)), "text": "Hello, World!", "width": 12, "height": 40}
    keep, skipped = prescan([wide, narrow], TOK, model)
    assert keep == [wide] and len(skipped) == 1 and "needs 14 frames" in skipped[0]  # 13 characters, one repeat (ll)

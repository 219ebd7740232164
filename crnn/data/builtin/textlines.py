"""Built-in text lines: words, numbers and punctuation rendered with TrueType fonts (Pillow).

The fonts are a choice: :func:`find_fonts` takes folders, files or globs (e.g. Debian's fonts-dejavu,
fonts-liberation, fonts-freefont-ttf under ``/usr/share/fonts/truetype``); by default it takes the
system's font folders and the fonts matplotlib ships (DejaVu and STIX General), keeping only text fonts
that cover :data:`CHARSET`. :func:`split_fonts` holds font families out for testing (by default STIX
General, a Times-like serif no DejaVu font resembles), and :mod:`crnn.data.builtin.english_words` holds
words out, so the ``test`` split reads fonts and words that training never shows.

Splits (:func:`write_textlines`, :class:`TextLinesDataset`):

* ``train`` / ``valid``: training fonts, training words, pseudo-words, numbers and random strings;
* ``test``: held-out fonts and held-out words (numbers and punctuation as in training).

``plain`` lines hold words only (lower case, no numbers or punctuation), for lexicon-constrained decoding.
"""
from __future__ import annotations

import glob
import io
import json
import random
import re
import string
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from crnn.data.builtin.english_words import word_split
from crnn.data.builtin.text_corpus import corpus_window, load_corpus

# Debian's font packages install under /usr/share/fonts; TeX Gyre and Latin Modern under texmf
SYSTEM_FONT_DIRS = ("/usr/share/fonts", "/usr/share/texmf/fonts/opentype")
PUNCT = ".,;:!?-'\"()/&%$"
CHARSET = string.ascii_letters + string.digits + PUNCT + " "
# Held-out families, one per kind of face: a Times-like serif, a book serif, a humanist sans, a monospace.
# None of them is drawn for training, so the test split measures fonts the model never saw.
DEFAULT_HELD_OUT = ("STIXGeneral", "CharisSIL", "Lato", "Inconsolata")
# File-name parts of fonts that are not for running text (math, symbols, glyph fallbacks, display cuts), and
# Computer Modern Text Italic as matplotlib ships it (its '$' is a pound sign); cmr10, cmss10, cmtt10 and cmb10
# (Computer Modern roman, sans, typewriter, bold) are kept.
NOT_TEXT_FONTS = ("math", "display", "lastresort", "stixnonuni", "stixsiz", "cmex", "cmsy", "cmmi", "cmti",
                  "d050000l", "standardsymbols", "z003", "notosanssymbols", "notomusic", "notoserifdisplay",
                  "lmmono", "lmroman", "lmsans", "texgyrechorus", "linbiolinum_k")
# style words at the end of a font file's name, so a family's cuts group together (FreeSansBoldOblique -> FreeSans)
_STYLE_SUFFIX = re.compile(r"(?:_[A-Z]+|(?:Bol|Bold|Ita|Italic|Oblique|Book|Medium|Light|Regular)+)$")
SPLITS = ("train", "valid", "test")


def _matplotlib_fonts() -> list[Path]:
    try:
        import matplotlib
    except ImportError:
        return []
    return sorted((Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf").glob("*.ttf"))


def missing_glyphs(font: str | Path, charset: str = CHARSET) -> str:
    """The characters of ``charset`` (space aside) that ``font``'s character map lacks ("" when it covers them)."""
    from matplotlib.ft2font import FT2Font

    try:
        cmap = FT2Font(str(font)).get_charmap()
    except (OSError, RuntimeError, ValueError):
        return charset.replace(" ", "")
    return "".join(c for c in charset if c != " " and ord(c) not in cmap)


def find_fonts(sources: Sequence[str] | None = None, charset: str = CHARSET) -> list[Path]:
    """Text fonts (``.ttf``/``.otf``) that cover ``charset``.

    Args:
        sources: folders (searched recursively), files or globs. None: the system's font folders and
            matplotlib's fonts, less math/symbol/display fonts. (Default: None)
        charset: characters every font must have. (Default: CHARSET)

    Returns:
        Sorted paths, one per file name (a font installed twice counts once).

    Raises:
        FileNotFoundError: no usable font in ``sources``.
    """
    found: list[Path] = []
    for src in (sources if sources else SYSTEM_FONT_DIRS):
        p = Path(src)
        paths = p.rglob("*") if p.is_dir() else (Path(g) for g in glob.glob(src, recursive=True))
        found += [f for f in paths if f.is_file() and f.suffix.lower() in (".ttf", ".otf")]
    if not sources:
        found += _matplotlib_fonts()
        found = [f for f in found if not any(k in f.name.lower() for k in NOT_TEXT_FONTS)]
    by_name: dict[str, Path] = {}
    for f in sorted(found):
        if f.name not in by_name and not missing_glyphs(f, charset):
            by_name[f.name] = f
    if not by_name:
        where = ", ".join(sources or SYSTEM_FONT_DIRS)
        raise FileNotFoundError(f"no .ttf/.otf font covering the text-line characters in {where}")
    return sorted(by_name.values())


def font_family(font: str | Path) -> str:
    """The family of a font file: its name before the first '-', less trailing style words."""
    return _STYLE_SUFFIX.sub("", Path(font).stem.split("-")[0]) or Path(font).stem


def split_fonts(fonts: Sequence[Path], held_out: Sequence[str] = DEFAULT_HELD_OUT) -> tuple[list[Path], list[Path]]:
    """(train, test): a font goes to test when its file name contains any of ``held_out`` (case-insensitive)."""
    keys = [k.lower() for k in held_out]
    test = [f for f in fonts if any(k in f.name.lower() for k in keys)]
    return [f for f in fonts if f not in test], test


def fonts_for_split(split: str, fonts: Sequence[str] | None = None,
                    held_out: Sequence[str] = DEFAULT_HELD_OUT) -> list[Path]:
    """The fonts a split draws: held-out families for ``test``, the others for ``train``/``valid``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    train, test = split_fonts(find_fonts(fonts), held_out)
    chosen = test if split == "test" else train
    if not chosen:
        raise FileNotFoundError(f"no {split} font: the held-out families {', '.join(held_out)} "
                                f"{'match none' if split == 'test' else 'match every font'} of the fonts found")
    return chosen


def textlines_tokenizer():
    """The built-in task's characters (plus blank), case and punctuation kept."""
    from crnn.tokenizer import Tokenizer

    return Tokenizer(sorted(CHARSET), kind="char", text_norm="none")


# -- text -------------------------------------------------------------------------------------------
def _pseudo_word(rng: random.Random) -> str:
    """A pronounceable non-word (consonant-vowel syllables), so letters are learnt apart from a word list."""
    onsets, vowels, codas = "bcdfghjklmnprstvwz", "aeiouy", ["", "", "n", "r", "s", "t", "l", "ck", "ng"]
    return "".join(rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas) for _ in range(rng.randint(1, 3)))


def _number(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.4:
        return str(rng.randint(0, 99999))
    if r < 0.6:
        return f"{rng.randint(0, 999)}.{rng.randint(0, 99):02d}"
    if r < 0.8:
        return f"{rng.randint(1, 28)}/{rng.randint(1, 12)}/{rng.randint(1950, 2030)}"
    return rng.choice(["$", ""]) + f"{rng.randint(1, 999)}" + rng.choice(["%", "", ".00"])


def random_text(rng: random.Random, words: Sequence[str], max_words: int = 6, pseudo: float = 0.15,
                numbers: float = 0.15, noise_strings: float = 0.05, target_chars: int | None = None,
                plain: bool = False, avoid: frozenset[str] = frozenset()) -> str:
    """A line of words, numbers and punctuation, e.g. ``'Market 1984, (fine) tova!'``.

    Args:
        rng: randomness.
        words: the word list to draw from.
        max_words: tokens per line at most.
        pseudo: share of pronounceable non-words. numbers: share of numbers, dates and prices.
        noise_strings: share of random strings of any characters (every symbol gets seen in any context).
        target_chars: stop adding tokens once the line is this long (None: 1 to ``max_words`` tokens).
        plain: words of ``words`` only, lower case, no punctuation (a closed vocabulary, as a lexicon
            expects).
        avoid: words a pseudo-word must not be (the held-out words, when drawing training lines).
    """
    if plain:
        pseudo = numbers = noise_strings = 0.0
    out: list[str] = []
    n_tokens = max_words if target_chars else rng.randint(1, max_words)
    for _ in range(n_tokens):
        if target_chars and out and len(" ".join(out)) >= target_chars:
            break
        r = rng.random()
        if r < numbers:
            tok = _number(rng)
        elif r < numbers + noise_strings:
            tok = "".join(rng.choice(string.ascii_letters + string.digits + PUNCT) for _ in range(rng.randint(1, 8)))
        elif r < numbers + noise_strings + pseudo:
            tok = _pseudo_word(rng)
            while tok in avoid:
                tok = _pseudo_word(rng)
        else:
            tok = rng.choice(words)
        if plain:
            out.append(tok)
            continue
        case = rng.random()
        tok = tok.capitalize() if case < 0.2 else tok.upper() if case < 0.27 else tok
        p = rng.random()
        if p < 0.2:
            tok += rng.choice(".,;:!?")
        elif p < 0.25:
            left, right = rng.choice([("(", ")"), ('"', '"'), ("'", "'")])
            tok = left + tok + right
        elif p < 0.28:
            tok += rng.choice(["-", "'s", "/", " &"])
        out.append(tok)
    return " ".join(out).strip()


# -- rendering --------------------------------------------------------------------------------------
def render_line(text: str, font_path: str | Path, rng: random.Random, height: int = 32,
                degrade: bool = False) -> torch.Tensor:
    """Render ``text`` in the font at a random size, letter spacing, stroke weight, ink/paper, tilt,
    perspective, blur, noise and JPEG compression; with ``degrade``, also the faults of scanned documents
    and line segmenters: binarisation, low resolution (a small font scaled up), tight and loose crops
    (the neighbouring lines' edges showing) and specks.

    Returns float32 (1, height, W) in [0, 1], width scaled with the aspect kept.
    """
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    low_res = degrade and rng.random() < 0.15
    font = ImageFont.truetype(str(font_path), rng.randint(9, 16) if low_res else rng.randint(22, 44))
    spacing = rng.choice([0, 0, 0, 1, 2, 4]) if rng.random() < 0.3 else 0
    left, top, right, bottom = font.getbbox(text)
    if spacing:
        right += spacing * len(text)
    crop = rng.random() if degrade else 1.0
    if crop < 0.15:  # a tight box: the segmenter cut at (or just into) the glyphs
        pad_x, pad_y = rng.randint(0, 2), rng.randint(-1, 1)
    elif crop < 0.3:  # a loose box: margins, and the next lines' edges above and below
        pad_x, pad_y = rng.randint(4, 30), rng.randint(4, max(5, font.size // 2))
    else:
        pad_x, pad_y = rng.randint(2, 10), rng.randint(1, 8)
    w, h = right - left + 2 * pad_x, bottom - top + 2 * pad_y
    paper, ink = rng.randint(160, 255), rng.randint(0, 100)
    im = Image.new("L", (max(w, 1), max(h, 1)), paper)
    draw = ImageDraw.Draw(im)
    if spacing:
        x = pad_x - left
        for ch in text:
            draw.text((x, pad_y - top), ch, font=font, fill=ink)
            x += font.getlength(ch) + spacing
    else:
        draw.text((pad_x - left, pad_y - top), text, font=font, fill=ink)
    if 0.15 <= crop < 0.3 and rng.random() < 0.6:
        _neighbour_lines(draw, font, rng, pad_x - left, pad_y - top, w, ink)
    weight = rng.random()  # heavier or lighter strokes than the font's own (ink is darker than paper)
    if weight < 0.15:
        im = im.filter(ImageFilter.MinFilter(3))
    elif weight < 0.25 and font.size >= 30:
        im = im.filter(ImageFilter.MaxFilter(3))
    if rng.random() < 0.5:
        im = im.rotate(rng.uniform(-2, 2), resample=Image.BILINEAR, expand=True, fillcolor=paper)
    if rng.random() < 0.3:  # a slanted camera: one end of the line taller than the other
        d = rng.uniform(0, 0.12) * im.height
        top_l, top_r = (d, 0) if rng.random() < 0.5 else (0, d)
        coeffs = _perspective_coeffs(im.width, im.height, top_l, top_r)
        im = im.transform(im.size, Image.PERSPECTIVE, coeffs, Image.BILINEAR, fillcolor=paper)
    if rng.random() < 0.4:
        im = im.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    binarise = degrade and rng.random() < 0.15  # a bilevel scan: ink black, paper white
    if binarise and rng.random() < 0.5:  # at the scan's resolution (jagged edges once resized) ...
        im = _binarised(im, (paper + ink) / 2)
    im = im.resize((max(4, round(im.width * height / im.height)), height), Image.BILINEAR)
    if binarise and im.mode == "L" and rng.random() < 0.5:  # ... or at the line's (hard edges)
        im = _binarised(im, (paper + ink) / 2)
    x = np.asarray(im, dtype=np.float32) / 255.0
    noise_rng = np.random.default_rng(rng.randrange(2**32))
    x = x + noise_rng.normal(0, rng.uniform(0, 0.05), x.shape)
    if degrade and rng.random() < 0.1:  # dust and toner specks
        specks = noise_rng.random(x.shape) < rng.uniform(0.002, 0.01)
        x[specks] = noise_rng.choice([0.0, 1.0], size=int(specks.sum()))
    im = Image.fromarray((np.clip(x, 0, 1) * 255).round().astype(np.uint8))
    if rng.random() < 0.3:
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=rng.randint(25, 90))
        im = Image.open(buf).convert("L")
    return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0)[None]


def render_clean_line(text: str, font_path: str | Path, rng: random.Random, height: int = 32) -> torch.Tensor:
    """Render ``text`` as a document renderer prints it: black on white, upright, a small even margin, no
    blur, noise or compression; only the font size varies. The look of a born-digital page cut into lines.

    Returns float32 (1, height, W) in [0, 1], width scaled with the aspect kept.
    """
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(font_path), rng.randint(24, 40))
    left, top, right, bottom = font.getbbox(text)
    pad_x, pad_y = font.size // 6, font.size // 8
    im = Image.new("L", (max(right - left + 2 * pad_x, 1), max(bottom - top + 2 * pad_y, 1)), 255)
    ImageDraw.Draw(im).text((pad_x - left, pad_y - top), text, font=font, fill=0)
    im = im.resize((max(4, round(im.width * height / im.height)), height), Image.LANCZOS)
    return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0)[None]


def _binarised(im, threshold: float):
    return im.point(lambda v: 0 if v < threshold else 255)


def _neighbour_lines(draw, font, rng: random.Random, x: float, y: float, width: int, ink: int) -> None:
    """Draw the bottom of a line above and the top of a line below (a segmenter's loose box shows them)."""
    line_gap = font.size * rng.uniform(1.1, 1.5)
    for dy in (-line_gap, line_gap):
        if rng.random() < 0.7:
            n = max(1, round(width / (font.size * 0.5)))
            junk = "".join(rng.choice(string.ascii_letters + "  ") for _ in range(n))
            draw.text((x + rng.uniform(-20, 20), y + dy), junk, font=font, fill=ink)


def _perspective_coeffs(w: int, h: int, shrink_left: float, shrink_right: float) -> list[float]:
    """PIL PERSPECTIVE coefficients mapping the output rectangle onto a quad whose left/right edges are
    ``shrink_*`` pixels shorter at each end."""
    src = [(0, -shrink_left), (w, -shrink_right), (w, h + shrink_right), (0, h + shrink_left)]
    dst = [(0, 0), (w, 0), (w, h), (0, h)]
    a = []
    for (x, y), (u, v) in zip(dst, src):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    b = [c for pt in src for c in pt]
    return np.linalg.solve(np.array(a, dtype=np.float64), np.array(b, dtype=np.float64)).tolist()


# -- datasets ---------------------------------------------------------------------------------------
@dataclass
class TextLinesConfig:
    split: str = "train"                   # train | valid | test (which fonts and words)
    fonts: tuple[str, ...] | None = None   # font folders/files/globs (None: system + matplotlib fonts)
    held_out: tuple[str, ...] = DEFAULT_HELD_OUT  # font families kept for the test split
    height: int = 32                       # rendered line height (the image frontend's)
    max_words: int = 8                     # tokens per line at most
    min_chars: int = 1                     # each item's target length is drawn from [min_chars, max_chars]
    max_chars: int = 36
    plain: bool = False                    # words only: lower case, no numbers or punctuation (lexicon tests)
    corpus: str | None = None              # a text file of real sentences, one per line (None: word lists only)
    corpus_share: float = 0.5              # share of lines taken from the corpus when there is one
    degrade: bool = True                   # document degradations: binarised, low-res, tight/loose crops, specks
    clean: bool = False                    # born-digital lines instead: black on white, no distortion (render_clean_line)


def split_words(split: str) -> list[str]:
    train, test = word_split()
    return test if split == "test" else train


class TextLinesDataset(Dataset):
    """On-the-fly text lines; item ``i`` is a pure function of (seed, epoch, i), so workers need no state.

    Items ``{signal float32 (1, H, W), tokens (L,), text, path}``.

    Args:
        n: lines per epoch.
        seed: base seed; splits use different seeds.
        config: split, fonts, held-out families, height.
        fresh_each_epoch: new lines every epoch (training). (Default: True)
        augment: a training transform on the (C, H, W) line (``crnn.data.image.augment.LineAugment``). (Default: None)
    """

    def __init__(self, n: int, seed: int, config: TextLinesConfig = TextLinesConfig(), fresh_each_epoch: bool = True,
                 augment: Any = None):
        self.n, self.seed, self.config = n, seed, config
        self.fresh_each_epoch, self.augment = fresh_each_epoch, augment
        self.fonts = fonts_for_split(config.split, config.fonts, config.held_out)
        # a family is drawn first, then one of its cuts: a family with many cuts does not crowd out the rest
        self.families: dict[str, list[Path]] = {}
        for f in self.fonts:
            self.families.setdefault(font_family(f), []).append(f)
        self.words = split_words(config.split)
        self._held_out = frozenset(split_words("test"))
        self.sentences: tuple[str, ...] = ()
        if config.corpus:
            train_s, test_s = load_corpus(str(config.corpus), CHARSET)
            self.sentences = test_s if config.split == "test" else train_s
        self.tokenizer = textlines_tokenizer()
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def target_chars(self, i: int) -> int:
        """Item ``i``'s line length in characters: the same every epoch, so batches can group similar widths."""
        c = self.config
        return c.min_chars + zlib.crc32(f"{self.seed}:{i}".encode()) % (c.max_chars - c.min_chars + 1)

    def lengths(self) -> list[int]:
        """Approximate width in pixels per item (a glyph is about half the line height wide), for bucketing."""
        return [round(self.target_chars(i) * self.config.height * 0.5) for i in range(self.n)]

    def text(self, i: int, rng: random.Random | None = None) -> str:
        """Item ``i``'s transcript (what :meth:`draw` renders)."""
        rng = rng or self._rng(i)
        c = self.config
        if self.sentences and not c.plain and rng.random() < c.corpus_share:
            return corpus_window(rng, self.sentences, self.target_chars(i))
        # held-out lines are real words and numbers: pseudo-words and random strings are training material
        mix = dict(pseudo=0.0, noise_strings=0.0) if self.config.split == "test" else dict(avoid=self._held_out)
        return random_text(rng, self.words, self.config.max_words, target_chars=self.target_chars(i),
                           plain=self.config.plain, **mix)

    def _rng(self, i: int) -> random.Random:
        epoch = self.epoch if self.fresh_each_epoch else 0
        return random.Random(f"{self.config.split}:{self.seed}:{epoch}:{i}")

    def draw(self, i: int) -> tuple[torch.Tensor, str, Path]:
        rng = self._rng(i)
        text = self.text(i, rng)
        font = rng.choice(self.families[rng.choice(sorted(self.families))])
        if self.config.clean:
            return render_clean_line(text, font, rng, self.config.height), text, font
        return render_line(text, font, rng, self.config.height, self.config.degrade), text, font

    def __getitem__(self, i: int) -> dict:
        image, text, _ = self.draw(i)
        if self.augment is not None:
            image = self.augment(image, torch.Generator().manual_seed(hash((self.seed, self.epoch, i)) % 2**62))
        return {"signal": image, "tokens": torch.tensor(self.tokenizer.encode(text)), "text": text,
                "path": f"textlines:{self.config.split}:{self.seed}:{i}"}


def write_textlines(out_dir: str | Path, n: int, seed: int, config: TextLinesConfig = TextLinesConfig()) -> Path:
    """Write ``n`` lines as PNG files plus ``manifest.jsonl`` (relative paths, the font of each line) and
    ``words.txt`` (the split's word list, a lexicon for beam search). Returns the manifest's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ds = TextLinesDataset(n, seed, config, fresh_each_epoch=False)
    manifest = out / "manifest.jsonl"
    tmp = manifest.with_suffix(".jsonl.tmp")
    from PIL import Image

    with open(tmp, "w", encoding="utf-8") as f:
        for i in range(n):
            image, text, font = ds.draw(i)
            name = f"line_{i:05d}.png"
            Image.fromarray((image[0].numpy() * 255).round().astype(np.uint8)).save(out / name)
            f.write(json.dumps({"path": name, "text": text, "font": font.name, "width": image.shape[-1],
                                "height": image.shape[-2]}) + "\n")
    tmp.replace(manifest)
    (out / "words.txt").write_text("\n".join(ds.words) + "\n", encoding="utf-8")
    return manifest


def write_textlines_text(path: str | Path, n: int, seed: int, config: TextLinesConfig = TextLinesConfig()) -> Path:
    """Write the transcripts of ``n`` lines of a split, one per line (text for ``crnn lm build``), no images."""
    ds = TextLinesDataset(n, seed, config, fresh_each_epoch=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(ds.text(i) + "\n" for i in range(n)), encoding="utf-8")
    tmp.replace(path)
    return path

"""Printed text lines: the fonts and the real English text the shipped line model trains on.

    python datasets/textlines/prepare.py --install --out data/textlines

``--install`` installs the Debian packages below with apt-get (fonts, WordNet, fortunes); without it the
script uses what is installed and says what is missing. It then writes

- ``<out>/corpus.txt``: real English sentences, one per line: WordNet 3.0's glosses and their example
  sentences (``wordnet-base``) and the prose fortune files (``fortunes``: literature, science, wisdom, ...);
  the built-in task keeps one sentence in five for its test split (a stable hash);
- ``<out>/fonts.txt``: every font the task can draw, its family and its split (train, or test: held out).

The held-out families (``--held-out``) are never drawn for training: the test lines are in fonts and
sentences the model never saw.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

FONT_PACKAGES = (
    "fonts-dejavu-core", "fonts-dejavu-extra", "fonts-liberation", "fonts-freefont-ttf", "fonts-texgyre",
    "fonts-linuxlibertine", "fonts-ebgaramond", "fonts-urw-base35", "fonts-crosextra-carlito",
    "fonts-crosextra-caladea", "fonts-croscore", "fonts-open-sans", "fonts-roboto", "fonts-lato", "fonts-noto-core",
    "fonts-cantarell", "fonts-go", "fonts-hack", "fonts-inconsolata", "fonts-oldstandard",
    "fonts-sil-gentium", "fonts-sil-charis",
)
TEXT_PACKAGES = ("wordnet-base", "fortunes")
WORDNET = Path("/usr/share/wordnet")
FORTUNES = Path("/usr/share/games/fortunes")
# prose fortune files (the others hold verse, ASCII art, dialogue or code)
FORTUNE_FILES = ("literature", "science", "wisdom", "work", "education", "politics", "people", "law",
                 "medicine", "miscellaneous", "definitions", "computers", "food", "goedel", "linux", "magic")


def install(packages: tuple[str, ...]) -> None:
    if shutil.which("apt-get") is None:
        sys.exit("error: --install needs apt-get (Debian or Ubuntu); install the packages listed in this script")
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-q", *packages], check=True,
                   env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})


def wordnet_sentences(root: Path = WORDNET) -> list[str]:
    """Each gloss of data.{noun,verb,adj,adv}: its definition and its quoted example sentences."""
    out: list[str] = []
    for part in ("noun", "verb", "adj", "adv"):
        path = root / f"data.{part}"
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("  ") or "|" not in line:
                continue  # the licence header
            for piece in line.split("|", 1)[1].split(";"):
                piece = piece.strip().strip('"').strip()
                if len(piece) > 3:
                    out.append(piece)
    return out


def fortune_sentences(root: Path = FORTUNES) -> list[str]:
    """The prose fortunes, each joined to one line and cut into sentences."""
    out: list[str] = []
    for name in FORTUNE_FILES:
        path = root / name
        if not path.is_file():
            continue
        for entry in path.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            prose = " ".join(entry.split())
            if not prose or "--" in prose[:2]:
                continue
            out += [s.strip() for s in re.split(r"(?<=[.!?])\s+", prose) if len(s.strip()) > 3]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="data/textlines", help="output folder (default: %(default)s)")
    ap.add_argument("--install", action="store_true", help="apt-get install the fonts and text packages first")
    ap.add_argument("--held-out", default=None,
                    help="comma-separated font families kept for the test split (default: the task's own)")
    args = ap.parse_args()
    if args.install:
        install(FONT_PACKAGES + TEXT_PACKAGES)
    from crnn.data.builtin.textlines import CHARSET, DEFAULT_HELD_OUT, find_fonts, font_family, split_fonts

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not (WORDNET / "data.noun").is_file():
        sys.exit(f"error: {WORDNET}/data.noun not found: run with --install (Debian package wordnet-base)")
    sentences = wordnet_sentences() + fortune_sentences()
    seen: set[str] = set()
    kept = [s for s in sentences if not (s in seen or seen.add(s))]
    (out / "corpus.txt").write_text("\n".join(kept) + "\n", encoding="utf-8")
    held_out = tuple(h.strip() for h in args.held_out.split(",")) if args.held_out else DEFAULT_HELD_OUT
    train, test = split_fonts(find_fonts(None, CHARSET), held_out)
    rows = [f"{font_family(f)}\t{'test' if f in test else 'train'}\t{f}" for f in sorted(train + test)]
    (out / "fonts.txt").write_text("family\tsplit\tpath\n" + "\n".join(rows) + "\n", encoding="utf-8")
    families = {f.stem.split("-")[0] for f in train}
    print(f"{out / 'corpus.txt'}: {len(kept)} sentences")
    print(f"{out / 'fonts.txt'}: {len(train)} training fonts in {len(families)} families, {len(test)} held out "
          f"({', '.join(held_out)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

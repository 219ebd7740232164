"""Free Spoken Digit Dataset (FSDD) layout: ``recordings/{digit}_{speaker}_{index}.wav``.

The dataset's repository holds one folder of 8 kHz WAV files, one spoken digit each, named by digit,
speaker and take. Rows are ``{path, text, id, speaker, digit, index}`` with the digit as its English
word (``"7"`` -> ``"seven"``), the transcript convention of the spoken-digit recipes. Either the
repository root (holding ``recordings/``) or the ``recordings`` folder itself is accepted.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from crnn.data.manifest import Layout, ManifestError, register_layout

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
FSDD_NAME = re.compile(r"^(?P<digit>[0-9])_(?P<speaker>[A-Za-z][A-Za-z0-9-]*)_(?P<index>[0-9]+)\.wav$")


def recordings_folder(path: str | os.PathLike) -> Path:
    """The folder holding the recordings: ``path/recordings`` when there is one, else ``path``."""
    path = Path(path)
    return path / "recordings" if (path / "recordings").is_dir() else path


def is_fsdd_dir(path: str | os.PathLike) -> bool:
    """True for a folder (or a folder's ``recordings/``) whose WAV files are named like FSDD's."""
    folder = recordings_folder(path)
    if not folder.is_dir():
        return False
    names = [p.name for p in folder.iterdir() if p.suffix.lower() == ".wav"][:20]
    return bool(names) and all(FSDD_NAME.match(n) for n in names)


def read_fsdd(root: str | os.PathLike, speakers: set[str] | None = None) -> list[dict[str, Any]]:
    """Rows for every recording (of ``speakers`` only, when given), sorted by speaker, digit and take.

    Raises:
        ManifestError: no recordings, a WAV file whose name is not ``digit_speaker_index.wav``, or a
            requested speaker with no recordings.
    """
    folder = recordings_folder(root)
    if not folder.is_dir():
        raise ManifestError(f"{root}: no such FSDD folder")
    rows = []
    for p in folder.iterdir():
        if p.suffix.lower() != ".wav":
            continue
        m = FSDD_NAME.match(p.name)
        if m is None:
            raise ManifestError(f"{p}: not an FSDD recording name (expected digit_speaker_index.wav)")
        if speakers is not None and m["speaker"] not in speakers:
            continue
        digit = int(m["digit"])
        rows.append({"path": str(p.resolve()), "text": DIGIT_WORDS[digit], "id": p.stem,
                     "speaker": m["speaker"], "digit": digit, "index": int(m["index"])})
    if not rows:
        raise ManifestError(f"{folder}: no FSDD recordings (digit_speaker_index.wav)"
                            + (f" of speakers {sorted(speakers)}" if speakers else ""))
    if speakers is not None:
        missing = speakers - {r["speaker"] for r in rows}
        if missing:
            raise ManifestError(f"{folder}: no recordings of speaker(s) {sorted(missing)}")
    return sorted(rows, key=lambda r: (r["speaker"], r["digit"], r["index"]))


def fsdd_speakers(root: str | os.PathLike) -> list[str]:
    """The speakers present, sorted."""
    return sorted({r["speaker"] for r in read_fsdd(root)})


register_layout(Layout("fsdd", read_fsdd, is_fsdd_dir, folder=True,
                       what="Free Spoken Digit Dataset (recordings/digit_speaker_index.wav)"))

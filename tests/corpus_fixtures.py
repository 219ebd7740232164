"""Tiny copies of real corpus layouts (Kaldi, Common Voice, Hugging Face audiofolder, WeNet) written
to a folder, with DTMF audio standing in for speech."""
import json
from pathlib import Path

import numpy as np
import soundfile as sf

from crnn.data.builtin.dtmf import generate_utterance

SR = 16000
TEXTS = ["one two", "three four", "five six", "seven", "eight nine", "ten", "two three", "four five"]


def utterances(n: int, seed: int = 0, texts=TEXTS) -> list[tuple[np.ndarray, str]]:
    """``n`` (waveform (S,) at 16 kHz, transcript) pairs; about 1 s each."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        wave, _, _ = generate_utterance(rng, sample_rate=SR, keys="".join(rng.choice(list("0123456789"), size=4)))
        wave = np.pad(wave, (0, max(SR, -(-wave.size // 16) * 16) - wave.size))  # whole ms: exact segment times
        out.append((wave, texts[i % len(texts)]))
    return out


def kaldi_dir(folder: Path, items, segments: bool = False) -> Path:
    """A Kaldi data dir. ``segments=True``: items are stretches of two long recordings (WAV and FLAC)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "audio").mkdir(exist_ok=True)
    scp, text, seg, dur, spk = [], [], [], [], []
    if segments:
        halves = [items[: len(items) // 2], items[len(items) // 2:]]
        for r, (part, ext) in enumerate(zip(halves, ("wav", "flac"))):
            rec = f"rec{r}"
            gap = np.zeros(SR // 4, np.float32)
            t, pieces = 0.25, [gap]
            for i, (wave, words) in enumerate(part):
                utt = f"{rec}-{i:03d}"
                seg.append(f"{utt} {rec} {t:.3f} {t + wave.size / SR:.3f}")
                text.append(f"{utt} {words}")
                spk.append(f"{utt} spk{r}")
                pieces += [wave, gap]
                t += wave.size / SR + 0.25
            sf.write(folder / "audio" / f"{rec}.{ext}", np.concatenate(pieces), SR)
            scp.append(f"{rec} audio/{rec}.{ext}")
    else:
        for i, (wave, words) in enumerate(items):
            utt = f"utt{i:03d}"
            sf.write(folder / "audio" / f"{utt}.flac", wave, SR)
            scp.append(f"{utt} {folder / 'audio' / f'{utt}.flac'}")
            text.append(f"{utt} {words}")
            dur.append(f"{utt} {wave.size / SR:.3f}")
    for name, lines in (("wav.scp", scp), ("text", text), ("segments", seg), ("utt2dur", dur), ("utt2spk", spk)):
        if lines:
            (folder / name).write_text("\n".join(lines) + "\n")
    return folder


def commonvoice(folder: Path, items_by_split: dict) -> Path:
    """``folder/clips/*.mp3`` and one ``<split>.tsv`` per split (extra columns as in the releases)."""
    (folder / "clips").mkdir(parents=True, exist_ok=True)
    n = 0
    for split, items in items_by_split.items():
        lines = ["client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccent\tlocale"]
        for wave, words in items:
            name = f"common_voice_en_{n:05d}.mp3"
            sf.write(folder / "clips" / name, wave, SR)
            lines.append(f"c{n % 3}\t{name}\t\"{words.capitalize()}!\"\t2\t0\ttwenties\t\t\ten")
            n += 1
        (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return folder


def audiofolder(folder: Path, items, metadata: str = "csv") -> Path:
    """Audio under ``folder/data/`` and ``metadata.csv`` / ``metadata.jsonl`` with a transcription column."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (wave, words) in enumerate(items):
        sf.write(folder / "data" / f"{i:03d}.wav", wave, SR)
        rows.append({"file_name": f"data/{i:03d}.wav", "transcription": words, "speaker_id": f"s{i % 2}"})
    if metadata == "csv":
        lines = ["file_name,transcription,speaker_id"] + [f"{r['file_name']},{r['transcription']},{r['speaker_id']}"
                                                           for r in rows]
        (folder / "metadata.csv").write_text("\n".join(lines) + "\n")
    else:
        (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def wenet_list(path: Path, items) -> Path:
    """A WeNet raw ``data.list`` with FLAC files beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, (wave, words) in enumerate(items):
        name = f"{path.stem}_{i:03d}.flac"
        sf.write(path.parent / name, wave, SR)
        lines.append(json.dumps({"key": f"{path.stem}_{i:03d}", "wav": name, "txt": words}))
    path.write_text("\n".join(lines) + "\n")
    return path

"""Fuzzing every reader with damaged copies of valid files: a clean error of the reader's documented type
or a valid result, never another exception, a crash or a hang.

Cases (seeded random truncations and/or byte flips of a valid file) run in a forked worker with a
time limit per case, so a reader stuck in C code (libsndfile, FFmpeg) or killing the process shows up as a
failure of that case instead of stopping the suite.

To fuzz a new reader, add a ``Reader`` to ``READERS`` (or a manifest layout to ``MANIFEST_KINDS``).
"""
from __future__ import annotations

import multiprocessing
import os
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import av  # noqa: F401 - imported once here, not in every forked case
import numpy as np
import pytest
import soundfile as sf
import torch

import crnn
from crnn.checkpoint import CheckpointError, model_from_checkpoint, read_checkpoint, save_checkpoint
from crnn.data.audio import AudioReadError, read_audio
from crnn.data.corpora.breakfast import breakfast_rows
from crnn.data.corpora.librispeech import read_transcripts
from crnn.data.manifest import ManifestError, read_manifest
from crnn.data.corpora.phoenix import phoenix_rows
from crnn.data.video import VideoReadError, read_features, read_video, write_video
from crnn.decoding.constraints import Grammar, Hotwords, Lexicon
from crnn.decoding.lm import ArpaFormatError, read_arpa
from crnn.tokenizer import Tokenizer

CASES = 40  # damaged copies per reader
TIMEOUT_S = 30.0  # per case; generous, the machine may be busy (a healthy case takes well under a second)


@dataclass
class Reader:
    """How to make a valid file, read one, and what a clean outcome is.

    Attributes:
        name: test id.
        make: writes a valid file into the folder and returns its path.
        read: the reader under test; returns something ``check`` can judge.
        errors: the documented exception types: any other one is a failure.
        check: asserts a returned result is valid (raises AssertionError otherwise).
        cut_is_error: every truncated copy must be refused (the format states its own length).
    """

    name: str
    make: Callable[[Path], Path]
    read: Callable[[Path], Any]
    errors: tuple[type[BaseException], ...]
    check: Callable[[Any], None] = lambda result: None
    cut_is_error: bool = False


# -- valid inputs ------------------------------------------------------------------------------------
def _tone(sr: int = 8000, seconds: float = 0.4) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (0.4 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 1209 * t)).astype(np.float32)


def _audio(ext: str, subtype: str | None = None) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / f"valid.{ext}"
        sf.write(path, _tone(), 8000, subtype=subtype)
        return path
    return make


def _check_audio(wav: torch.Tensor) -> None:
    assert wav.ndim == 1 and wav.numel() > 0 and wav.dtype == torch.float32, (wav.dtype, wav.shape)
    assert bool(torch.isfinite(wav).all()), "non-finite samples returned"


def _make_mp4(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    frames = torch.from_numpy(rng.integers(0, 255, (8, 3, 32, 32), dtype=np.uint8))
    return write_video(folder / "valid.mp4", frames, fps=10)


def _check_video(frames: torch.Tensor) -> None:
    assert frames.ndim == 4 and frames.shape[0] > 0 and frames.shape[1] == 3 and frames.dtype == torch.uint8


def _make_npy(folder: Path) -> Path:
    np.save(folder / "valid.npy", np.random.default_rng(0).normal(size=(20, 6)).astype(np.float32))
    return folder / "valid.npy"


def _check_features(feats: torch.Tensor) -> None:
    assert feats.ndim == 2 and feats.dtype == torch.float32 and bool(torch.isfinite(feats).all())


TEXT_ROWS = [("a.wav", "one two", 1.25), ("sub/b.wav", "three", 0.5), ("c.wav", "four five six", 2.0)]


def _jsonl(folder: Path) -> Path:
    import json

    path = folder / "valid.jsonl"
    path.write_text("".join(json.dumps({"path": p, "text": t, "duration": d}) + "\n" for p, t, d in TEXT_ROWS))
    return path


def _nemo(folder: Path) -> Path:
    import json

    path = folder / "valid.json"
    path.write_text("".join(json.dumps({"audio_filepath": p, "text": t, "duration": d}) + "\n"
                            for p, t, d in TEXT_ROWS))
    return path


def _delimited(sep: str, ext: str) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / f"valid.{ext}"
        path.write_text(sep.join(["path", "text", "duration"]) + "\n"
                        + "".join(sep.join([p, t, str(d)]) + "\n" for p, t, d in TEXT_ROWS))
        return path
    return make


def _check_manifest(rows: list) -> None:
    for row in rows:
        assert isinstance(row["path"], str) and isinstance(row["text"], str), row
        if row.get("duration") is not None:
            assert isinstance(row["duration"], float), row


def _librispeech(folder: Path) -> Path:
    path = folder / "valid.trans.txt"
    path.write_text("19-198-0000 ONE TWO\n19-198-0001 THREE FOUR FIVE\n")
    return path


def _phoenix(folder: Path) -> Path:
    path = folder / "valid.corpus.csv"
    path.write_text("id|folder|signer|annotation\n"
                    "01April_2010_heute-0|01April_2010_heute-0/1/*.png|Signer04|REGEN SONNE\n"
                    "02April_2010_heute-1|02April_2010_heute-1/1/*.png|Signer01|WIND\n")
    return path


def _read_phoenix(corpus: Path) -> list:
    """phoenix_rows over a corpus copy with this file as its train split."""
    root = corpus.parent / f"{corpus.name}.phoenix"
    (root / "annotations/manual").mkdir(parents=True, exist_ok=True)
    (root / "annotations/manual/train.corpus.csv").write_bytes(corpus.read_bytes())
    return phoenix_rows(root, "train")


def _breakfast_transcript(folder: Path) -> Path:
    path = folder / "valid.txt"
    path.write_text("SIL\ntake_bowl\npour_milk\nSIL\n")
    return path


def _read_breakfast(transcript: Path) -> list:
    """breakfast_rows over a copy holding one feature file with this transcript."""
    root = transcript.parent / f"{transcript.name}.breakfast"
    for sub in ("features", "transcripts"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    np.save(root / "features/P01_cereals.npy", np.zeros((12, 4), np.float32))
    (root / "transcripts/P01_cereals.txt").write_bytes(transcript.read_bytes())
    return breakfast_rows(root)


def _kaldi_text(folder: Path) -> Path:
    path = folder / "valid.text"
    path.write_text("u1 one two\nu2 three four five\n")
    return path


def _read_kaldi(text: Path) -> list:
    """A Kaldi data dir whose ``text`` is this file (``wav.scp`` valid)."""
    root = text.parent / f"{text.name}.kaldi"
    root.mkdir(exist_ok=True)
    (root / "wav.scp").write_text("u1 a.wav\nu2 b.wav\n")
    (root / "text").write_bytes(text.read_bytes())
    return read_manifest(root, "kaldi")


def _kaldi_segments(folder: Path) -> Path:
    path = folder / "valid.segments"
    path.write_text("u1 rec1 0.00 1.25\nu2 rec1 1.40 2.10\n")
    return path


def _read_kaldi_segments(segments: Path) -> list:
    root = segments.parent / f"{segments.name}.kaldi"
    root.mkdir(exist_ok=True)
    (root / "wav.scp").write_text("rec1 long.wav\n")
    (root / "text").write_text("u1 one two\nu2 three\n")
    (root / "segments").write_bytes(segments.read_bytes())
    return read_manifest(root, "kaldi")


def _commonvoice(folder: Path) -> Path:
    path = folder / "valid.tsv"
    path.write_text("client_id\tpath\tsentence\tup_votes\nc1\ta.mp3\tOne two.\t2\nc2\tb.mp3\tThree\t1\n")
    return path


def _audiofolder(folder: Path) -> Path:
    path = folder / "valid.metadata.csv"
    path.write_text("file_name,transcription\na.wav,one two\nb.wav,three\n")
    return path


def _read_audiofolder(metadata: Path) -> list:
    root = metadata.parent / f"{metadata.name}.audiofolder"
    root.mkdir(exist_ok=True)
    (root / "metadata.csv").write_bytes(metadata.read_bytes())
    return read_manifest(root, "audiofolder")


def _wenet(folder: Path) -> Path:
    path = folder / "valid.data.list"
    path.write_text('{"key": "u1", "wav": "a.wav", "txt": "one two"}\n'
                    '{"key": "u2", "wav": "b.wav", "txt": "three", "start": 0.5, "end": 1.5}\n')
    return path


# Manifest layouts: (name, writer of a valid file, its reader). More corpus layouts go here.
MANIFEST_KINDS: list[tuple[str, Callable[[Path], Path], Callable[[Path], list]]] = [
    ("jsonl", _jsonl, read_manifest),
    ("nemo", _nemo, read_manifest),
    ("csv", _delimited(",", "csv"), read_manifest),
    ("tsv", _delimited("\t", "tsv"), read_manifest),
    ("librispeech", _librispeech, read_transcripts),
    ("phoenix", _phoenix, _read_phoenix),
    ("breakfast", _breakfast_transcript, _read_breakfast),
    ("kaldi_text", _kaldi_text, _read_kaldi),
    ("kaldi_segments", _kaldi_segments, _read_kaldi_segments),
    ("commonvoice", _commonvoice, lambda p: read_manifest(p, "commonvoice")),
    ("audiofolder", _audiofolder, _read_audiofolder),
    ("wenet", _wenet, lambda p: read_manifest(p, "wenet")),
]

CHARS = Tokenizer(list("abcdefghijklmnopqrstuvwxyz' "), kind="char")
LABELS = Tokenizer(["walk", "run", "jump", "sit"], kind="label")


def _arpa(folder: Path) -> Path:
    from crnn.decoding.lm import write_arpa
    from crnn.decoding.lm_build import build_kneser_ney

    lm = build_kneser_ney([s.split() for s in ["one two three", "two three four", "one three"]], order=3)
    path = folder / "valid.arpa"
    with open(path, "w", encoding="utf-8") as f:
        write_arpa(lm, f)
    return path


def _words(text: str, name: str) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / name
        path.write_text(text, encoding="utf-8")
        return path
    return make


def _checkpoint(folder: Path) -> Path:
    model = crnn.create_model("tiny", vocab_size=len(CHARS), hidden_size=8, num_layers=1, conv_channels=2, n_mels=8)
    model.tokenizer = CHARS
    return save_checkpoint(folder / "valid.pt", model, {"epoch": 1})


def _load_checkpoint(path: Path):
    return model_from_checkpoint(read_checkpoint(path), source=str(path))


def _check_model(model) -> None:
    assert isinstance(model, crnn.CRNN)


def _line_image(ext: str, mode: str) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        from PIL import Image

        grey = np.full((24, 96), 230, np.uint8)
        grey[6:18, 8:88:6] = 20  # strokes of ink
        im = Image.fromarray(grey).convert(mode) if mode != "I;16" else Image.fromarray(grey.astype(np.uint16) * 257)
        path = folder / f"valid.{ext}"
        im.save(path)
        return path
    return make


def _check_line(x: torch.Tensor) -> None:
    assert x.ndim == 3 and x.shape[0] == 1 and x.shape[1] == 32 and x.dtype == torch.float32, (x.dtype, x.shape)
    assert float(x.min()) >= 0 and float(x.max()) <= 1 and bool(torch.isfinite(x).all())


def _make_mp4_faststart(folder: Path) -> Path:
    import av as _av

    path = folder / "valid.mp4"
    rng = np.random.default_rng(0)
    with _av.open(str(path), "w", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for _ in range(12):
            img = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
            container.mux(stream.encode(_av.VideoFrame.from_ndarray(img, format="rgb24")))
        container.mux(stream.encode())
    return path


def _read_line(path: Path):
    from crnn.data.image import read_line_image

    return read_line_image(path)


def _image_error():
    from crnn.data.image import ImageReadError

    return ImageReadError


READERS: list[Reader] = [
    Reader("wav-pcm16", _audio("wav", "PCM_16"), lambda p: read_audio(p, 8000), (AudioReadError,), _check_audio,
           cut_is_error=True),
    Reader("wav-float", _audio("wav", "FLOAT"), lambda p: read_audio(p, 8000), (AudioReadError,), _check_audio,
           cut_is_error=True),
    Reader("flac", _audio("flac"), lambda p: read_audio(p, 8000), (AudioReadError,), _check_audio,
           cut_is_error=True),
    Reader("ogg", _audio("ogg"), lambda p: read_audio(p, 8000), (AudioReadError,), _check_audio),
    Reader("mp3", _audio("mp3"), lambda p: read_audio(p, 8000), (AudioReadError,), _check_audio),
    Reader("mp4", _make_mp4, read_video, (VideoReadError,), _check_video),
    # the index first (+faststart): a cut copy still opens and declares every frame; it must be refused
    Reader("mp4-faststart", _make_mp4_faststart, read_video, (VideoReadError,), _check_video),
    *[Reader(f"line-{ext}-{mode.replace(';', '')}", _line_image(ext, mode), _read_line, (_image_error(),), _check_line)
      for ext, mode in (("png", "L"), ("png", "I;16"), ("png", "RGBA"), ("png", "P"), ("jpg", "L"), ("tif", "RGB"),
                        ("bmp", "L"), ("webp", "RGB"))],
    Reader("npy-features", _make_npy, read_features, (VideoReadError,), _check_features, cut_is_error=True),
    *[Reader(f"manifest-{kind}", make, read, (ManifestError,), _check_manifest) for kind, make, read in MANIFEST_KINDS],
    Reader("arpa", _arpa, read_arpa, (ArpaFormatError,)),
    Reader("lexicon", _words("one\ntwo\nthree\n# comment\nfour\n", "valid.lex"),
           lambda p: Lexicon.from_file(p, CHARS), (ValueError,)),
    Reader("hotwords", _words("one two\nthree\n", "valid.hot"),
           lambda p: Hotwords.parse(str(p), CHARS, 1.5), (ValueError,)),
    Reader("grammar", _words("<s> walk run\nwalk run jump </s>\nrun sit </s>\n", "valid.grammar"),
           lambda p: Grammar.from_file(p, LABELS), (ValueError,)),
    Reader("checkpoint", _checkpoint, _load_checkpoint, (CheckpointError,), _check_model, cut_is_error=True),
]


# -- damage ----------------------------------------------------------------------------------------
def damaged_copies(data: bytes, seed: int, n: int = CASES) -> list[tuple[str, bytes]]:
    """``n`` seeded variants: truncations, byte flips (half of them in the first 256 bytes, where
    headers are), and both; each with a label saying what was done."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        buf = bytearray(data)
        what = []
        if i % 3 in (0, 2):
            cut = int(rng.integers(1, len(buf)))
            del buf[cut:]
            what.append(f"cut at {cut}/{len(data)}")
        if i % 3 in (1, 2):
            span = min(len(buf), 256) if rng.random() < 0.5 else len(buf)
            for pos in rng.integers(0, span, size=int(rng.integers(1, 17))):
                buf[pos] ^= int(rng.integers(1, 256))
            what.append(f"flipped bytes in the first {span}")
        out.append((", ".join(what), bytes(buf)))
    return out


def _outcome(reader: Reader, path: Path) -> tuple[str, str]:
    try:
        reader.check(reader.read(path))
        return "ok", ""
    except reader.errors as e:
        return "clean error", str(e)[:200]
    except BaseException as e:  # noqa: BLE001 - exactly what the test is looking for
        return "FAILED", f"{type(e).__module__}.{type(e).__qualname__}: {e}\n{traceback.format_exc()[-1500:]}"


def _worker(reader: Reader, paths: list[Path], conn) -> None:
    torch.set_num_threads(1)
    try:
        for path in paths:
            conn.send(_outcome(reader, path))
    finally:
        conn.close()
        os._exit(0)


def run_cases(reader: Reader, paths: list[Path], timeout: float = TIMEOUT_S) -> list[tuple[str, str]]:
    """Read each path in a forked worker: (outcome, detail) per path; outcome is 'ok', 'clean error',
    'FAILED', 'HANG' or 'CRASH'. A worker that hangs or dies is replaced for the remaining paths."""
    ctx = multiprocessing.get_context("fork")
    results: list[tuple[str, str]] = []
    while len(results) < len(paths):
        recv, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_worker, args=(reader, paths[len(results):], send))
        proc.start()
        send.close()
        try:
            while len(results) < len(paths):
                if not recv.poll(timeout):
                    results.append(("HANG", f"no answer within {timeout:.0f} s"))
                    break
                try:
                    results.append(recv.recv())
                except EOFError:
                    proc.join(5)
                    results.append(("CRASH", f"the reader killed the process (exit code {proc.exitcode})"))
                    break
        finally:
            if proc.is_alive():
                proc.kill()
            proc.join(5)
            recv.close()
    return results


@pytest.mark.parametrize("reader", READERS, ids=[r.name for r in READERS])
def test_damaged_files_give_a_clean_error_or_a_valid_result(reader, tmp_path):
    valid = reader.make(tmp_path)
    cases = damaged_copies(valid.read_bytes(), seed=len(reader.name) * 1000 + 7)
    paths = []
    for i, (_, data) in enumerate(cases):
        paths.append(tmp_path / f"case{i}{valid.suffix}")
        paths[-1].write_bytes(data)
    results = run_cases(reader, [valid, *paths])
    assert results[0][0] == "ok", f"the valid file itself: {results[0]}"
    failures = [f"case {i} ({what}): {outcome}: {detail}"
                for i, ((what, _), (outcome, detail)) in enumerate(zip(cases, results[1:]))
                if outcome not in ("ok", "clean error")]
    if reader.cut_is_error:
        failures += [f"case {i} ({what}): a truncated file was read as valid"
                     for i, ((what, _), (outcome, _)) in enumerate(zip(cases, results[1:]))
                     if what.startswith("cut") and outcome == "ok"]
    assert not failures, "\n\n".join(failures)
    assert any(outcome == "clean error" for outcome, _ in results)  # the damage is real: some are refused


def test_harness_reports_hangs_crashes_and_foreign_errors(tmp_path):
    import time

    def read(path: Path):
        kind = path.read_text()
        if kind == "hang":
            time.sleep(60)
        if kind == "crash":
            os._exit(3)
        if kind == "foreign":
            raise KeyError("x")
        if kind == "clean":
            raise ValueError("bad")
        return kind

    paths = []
    for kind in ["ok", "hang", "clean", "crash", "foreign", "ok"]:
        paths.append(tmp_path / f"{len(paths)}.txt")
        paths[-1].write_text(kind)
    outcomes = [o for o, _ in run_cases(Reader("toy", None, read, (ValueError,)), paths, timeout=2)]
    assert outcomes == ["ok", "HANG", "clean error", "CRASH", "FAILED", "ok"]

"""Manifests (JSONL, NeMo, CSV/TSV), the LibriSpeech layout and its prepare script."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from crnn.data.manifest import ManifestError, read_manifest, write_manifest

ROOT = Path(__file__).resolve().parents[1]


def test_jsonl_text_labels_and_relative_paths(tmp_path):
    (tmp_path / "m").mkdir()
    lines = [
        {"path": "audio/a.wav", "text": "hello there", "id": "u1"},
        {"path": "/abs/b.wav", "labels": ["pour", "stir"], "speaker": "s2"},
    ]
    (tmp_path / "m" / "x.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    rows = read_manifest(tmp_path / "m" / "x.jsonl")
    assert rows[0]["path"] == str((tmp_path / "m" / "audio" / "a.wav").resolve())
    assert rows[0]["text"] == "hello there" and rows[0]["id"] == "u1"
    assert rows[1]["path"] == "/abs/b.wav" and rows[1]["text"] == "pour stir" and rows[1]["speaker"] == "s2"


def test_nemo_rows_as_they_are(tmp_path):
    rows = [{"audio_filepath": "w/1.flac", "duration": 1.25, "text": "one two"},
            {"audio_filepath": "w/2.flac", "duration": "0.5", "text": ""}]
    (tmp_path / "nemo.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = read_manifest(tmp_path / "nemo.json")
    assert [r["path"] for r in out] == [str(tmp_path / "w" / "1.flac"), str(tmp_path / "w" / "2.flac")]
    assert [r["duration"] for r in out] == [1.25, 0.5] and out[1]["text"] == ""
    assert "audio_filepath" not in out[0]


def public(rows):
    """Rows without the reader's bookkeeping (``_where``: file and line for reports)."""
    return [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]


@pytest.mark.parametrize("ext,sep", [("csv", ","), ("tsv", "\t")])
def test_delimited_with_header(tmp_path, ext, sep):
    (tmp_path / f"m.{ext}").write_text(
        sep.join(["path", "text", "duration"]) + "\n" + sep.join(["a.wav", "hi, you" if sep == "\t" else '"hi, you"',
                                                                  "2.0"]) + "\n")
    rows = read_manifest(tmp_path / f"m.{ext}")
    assert public(rows) == [{"path": str(tmp_path / "a.wav"), "text": "hi, you", "duration": 2.0}]
    assert rows[0]["_where"] == f"{tmp_path / f'm.{ext}'}:2"  # reports name the file and line


@pytest.mark.parametrize("content,line,what", [
    ('{"path": "a.wav", "text": "x"}\n{"path": "b.wav", "text": \n', 2, "not valid JSON"),
    ('{"path": "a.wav", "text": "x"}\n\n{"text": "y"}\n', 3, "missing 'path'"),
    ('{"path": "a.wav"}\n', 1, "missing 'text'"),
    ('{"path": "a.wav", "text": "x", "duration": "long"}\n', 1, "'duration' must be a number"),
    ('["a.wav", "x"]\n', 1, "expected an object"),
])
def test_malformed_line_names_file_and_line(tmp_path, content, line, what):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(ManifestError, match=what) as e:
        read_manifest(path)
    assert f"{path}:{line}:" in str(e.value)


def test_bad_csv_header_and_row(tmp_path):
    (tmp_path / "h.csv").write_text("file,words\na.wav,x\n")
    with pytest.raises(ManifestError, match="header"):
        read_manifest(tmp_path / "h.csv")
    (tmp_path / "r.csv").write_text("path,text\na.wav,x\nb.wav\n")
    with pytest.raises(ManifestError, match=r"r\.csv:3:"):
        read_manifest(tmp_path / "r.csv")
    with pytest.raises(ManifestError, match="no such manifest"):
        read_manifest(tmp_path / "none.jsonl")
    with pytest.raises(ManifestError, match="not a .*LibriSpeech"):
        read_manifest(tmp_path)


def test_write_then_read_roundtrip(tmp_path):
    rows = [{"path": str(tmp_path / "data" / "a.flac"), "text": "x y", "duration": 1.5, "id": "a"},
            {"path": "/elsewhere/b.wav", "text": "z"}]
    write_manifest(tmp_path / "data" / "m.jsonl", rows)
    stored = [json.loads(line) for line in (tmp_path / "data" / "m.jsonl").read_text().splitlines()]
    assert stored[0]["path"] == "a.flac"  # relative: the folder can move as a whole
    assert public(read_manifest(tmp_path / "data" / "m.jsonl")) == rows


def make_librispeech(root: Path) -> dict[str, list[str]]:
    """A tiny LibriSpeech tree: two splits, two speakers; returns utterance ids per split."""
    layout = {"train-clean-100": [("19", "198", 2), ("26", "495", 1)], "dev-clean": [("84", "121", 2)]}
    ids: dict[str, list[str]] = {}
    rng = np.random.default_rng(0)
    for split, chapters in layout.items():
        for spk, chap, n in chapters:
            folder = root / split / spk / chap
            folder.mkdir(parents=True)
            lines = []
            for k in range(n):
                utt = f"{spk}-{chap}-{k:04d}"
                sf.write(folder / f"{utt}.flac", (0.1 * rng.standard_normal(1600 * (k + 1))).astype(np.float32), 16000)
                lines.append(f"{utt} WORD NUMBER {k} OF {spk.upper()}'S CHAPTER")
                ids.setdefault(split, []).append(utt)
            (folder / f"{spk}-{chap}.trans.txt").write_text("\n".join(lines) + "\n")
    return ids


def test_librispeech_dir_is_a_manifest(tmp_path):
    ids = make_librispeech(tmp_path / "LibriSpeech")
    rows = read_manifest(tmp_path / "LibriSpeech")
    assert sorted(r["id"] for r in rows) == sorted(ids["train-clean-100"] + ids["dev-clean"])
    assert all(Path(r["path"]).is_file() and r["path"].endswith(r["id"] + ".flac") for r in rows)
    split_rows = read_manifest(tmp_path / "LibriSpeech" / "dev-clean")
    assert [r["id"] for r in split_rows] == ids["dev-clean"]
    assert split_rows[1]["text"] == "WORD NUMBER 1 OF 84'S CHAPTER" and split_rows[1]["speaker"] == "84"


def test_librispeech_bad_transcript_line(tmp_path):
    folder = tmp_path / "s" / "1" / "2"
    folder.mkdir(parents=True)
    (folder / "1-2.trans.txt").write_text("1-2-0000 HELLO\n1-2-0001\n")
    with pytest.raises(ManifestError, match=r"1-2\.trans\.txt:2:"):
        read_manifest(tmp_path / "s")


@pytest.mark.slow
def test_librispeech_prepare_script(tmp_path):
    ids = make_librispeech(tmp_path / "LS")
    (tmp_path / "LS" / "dev-clean" / "84" / "121" / "84-121-0001.flac").unlink()  # a missing file is reported
    r = subprocess.run([sys.executable, str(ROOT / "datasets" / "librispeech" / "prepare.py"),
                        "--root", str(tmp_path / "LS"), "--out", str(tmp_path / "manifests")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "84-121-0001.flac" in r.stderr
    train = read_manifest(tmp_path / "manifests" / "train-clean-100.jsonl")
    dev = read_manifest(tmp_path / "manifests" / "dev-clean.jsonl")
    assert [x["id"] for x in train] == ids["train-clean-100"] and [x["id"] for x in dev] == ["84-121-0000"]
    assert [x["duration"] for x in train] == [0.1, 0.2, 0.1]
    assert all(Path(x["path"]).is_file() for x in train + dev)


def test_write_manifest_takes_relative_paths_from_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "audio").mkdir(parents=True)
    (tmp_path / "data" / "audio" / "a.wav").write_bytes(b"x")
    write_manifest("data/train.jsonl", [{"path": "data/audio/a.wav", "text": "one"}])
    assert json.loads((tmp_path / "data" / "train.jsonl").read_text())["path"] == "audio/a.wav"
    row = read_manifest("data/train.jsonl")[0]
    assert row["path"] == str(tmp_path / "data" / "audio" / "a.wav") and "_where" not in json.dumps(
        json.loads((tmp_path / "data" / "train.jsonl").read_text()))


def test_prescan_names_file_and_line_reports_duplicates_and_rare_symbols(tmp_path):
    from cli_helpers import tiny_model
    from crnn.data.build import make_tokenizer, prescan, rare_symbols

    (tmp_path / "a.wav").write_bytes(b"RIFF0000")
    lines = [{"path": "a.wav", "text": "one two"}, {"path": "gone.wav", "text": "one"},
             {"path": "a.wav", "text": "one two"}, {"path": "a.wav", "text": "two one"}]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    rows = read_manifest(tmp_path / "m.jsonl")
    tok = make_tokenizer([r["text"] for r in rows], "audio")
    kept, skipped = prescan(rows, tok, tiny_model(len(tok)))
    assert len(kept) == 2
    assert skipped[0] == f"{tmp_path / 'm.jsonl'}:2: {tmp_path / 'gone.wav'}: no such file"
    assert skipped[1] == f"{tmp_path / 'm.jsonl'}:3: duplicate of {tmp_path / 'm.jsonl'}:1"
    counts = rare_symbols(tok, ["one one one", "two"])
    assert counts["t"] == 1 and counts["w"] == 1 and "o" not in counts and "n" not in counts


def test_rare_symbols_leave_out_the_subword_unknown_piece():
    from crnn.data.build import rare_symbols
    from crnn.tokenizer import build_tokenizer

    texts = ["the cat sat on the mat", "a dog and a cat", "the mat is flat"] * 20
    tok = build_tokenizer(texts, text_norm="english", units="bpe", bpe_size=30)
    assert tok.reserved_ids and all(i not in tok.reserved_ids for t in texts for i in tok.encode(t))
    counts = rare_symbols(tok, texts)
    assert all(tok.decode([i]) not in counts for i in tok.reserved_ids)
    assert rare_symbols(tok, texts[:1])  # pieces of the other sentences are rare in this one

"""Corpus layouts (Kaldi, Common Voice, Hugging Face audiofolder, WeNet) read into manifest rows, stretches
of long files read by offset/duration, and each layout trained and evaluated through the CLI."""
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from cli_helpers import TINY, run_cli
from corpus_fixtures import SR, audiofolder, commonvoice, kaldi_dir, utterances, wenet_list

from crnn.data.audio import AudioReadError, read_audio
from crnn.data.audio.dataset import AudioDataset, speech_tokenizer
from crnn.data.errors import ManifestError
from crnn.data.manifest import detect_format, read_manifest


def test_kaldi_dir_whole_recordings(tmp_path):
    items = utterances(3)
    d = kaldi_dir(tmp_path / "train", items)
    assert detect_format(d) == "kaldi" and detect_format(d / "wav.scp") == "kaldi"
    rows = read_manifest(d)
    assert [r["id"] for r in rows] == ["utt000", "utt001", "utt002"]
    assert [r["text"] for r in rows] == [t for _, t in items]
    assert rows[0]["duration"] == pytest.approx(items[0][0].size / SR, abs=1e-3) and "offset" not in rows[0]
    assert read_manifest(d / "wav.scp") == rows


def test_kaldi_segments_read_only_their_stretch(tmp_path):
    items = utterances(4, seed=1)
    d = kaldi_dir(tmp_path / "seg", items, segments=True)
    rows = read_manifest(d)
    assert [r["recording"] for r in rows] == ["rec0", "rec0", "rec1", "rec1"]
    assert rows[1]["offset"] == pytest.approx(0.25 + items[0][0].size / SR + 0.25, abs=1e-3)
    assert rows[2]["path"].endswith("rec1.flac") and rows[2]["speaker"] == "spk1"
    ds = AudioDataset(rows, speech_tokenizer([r["text"] for r in rows]), SR)
    for i, (wave, text) in enumerate(items):
        item = ds[i]
        assert item["text"] == text
        assert item["signal"].numel() == wave.size
        assert np.abs(item["signal"].numpy() - wave).max() < 1e-3  # FLAC/WAV 16-bit rounding only
    assert ds.durations() == pytest.approx([w.size / SR for w, _ in items], abs=1e-3)


@pytest.mark.parametrize("entry, what", [
    ("rec0 sox audio/rec0.flac -t wav - |", "piped command"),
    ("rec0 /data/feats.ark:1234", "Kaldi archive"),
])
def test_kaldi_pipes_and_archives_are_refused_naming_the_line(tmp_path, entry, what):
    d = kaldi_dir(tmp_path / "k", utterances(2))
    (d / "wav.scp").write_text((d / "wav.scp").read_text() + entry + "\n")
    with pytest.raises(ManifestError, match=what) as e:
        read_manifest(d)
    assert f"{d / 'wav.scp'}:3:" in str(e.value) and ("convert" in str(e.value) or "extract" in str(e.value))


def test_kaldi_inconsistent_tables_name_file_and_line(tmp_path):
    d = kaldi_dir(tmp_path / "k", utterances(2))
    (d / "text").write_text((d / "text").read_text() + "utt999 hello\n")
    with pytest.raises(ManifestError, match=r"text:3: utterance 'utt999' is not in"):
        read_manifest(d)
    d2 = kaldi_dir(tmp_path / "s", utterances(2), segments=True)
    (d2 / "segments").write_text("rec0-000 nope 0.0 1.0\n")
    with pytest.raises(ManifestError, match=r"segments:1: recording 'nope'"):
        read_manifest(d2)
    (d2 / "segments").write_text("rec0-000 rec0 2.0 1.0\n")
    with pytest.raises(ManifestError, match=r"segments:1: bad segment times"):
        read_manifest(d2)


def test_commonvoice_tsv_keeps_other_columns_and_quotes(tmp_path):
    cv = commonvoice(tmp_path / "en", {"train": utterances(2), "dev": utterances(1, seed=3)})
    assert detect_format(cv / "train.tsv") == "commonvoice"
    rows = read_manifest(cv / "train.tsv")
    assert rows[0]["path"] == str((cv / "clips" / "common_voice_en_00000.mp3").resolve())
    assert rows[0]["text"] == '"One two!"'
    assert rows[0]["client_id"] == "c0" and rows[0]["age"] == "twenties" and rows[0]["locale"] == "en"
    assert read_audio(rows[0]["path"], SR).numel() > SR // 2  # the clip itself decodes
    (cv / "bad.tsv").write_text("client_id\tpath\tsentence\nc1\tx.mp3\n")
    with pytest.raises(ManifestError, match=r"bad\.tsv:2: expected 3 tab-separated fields"):
        read_manifest(cv / "bad.tsv")


@pytest.mark.parametrize("metadata", ["csv", "jsonl"])
def test_audiofolder(tmp_path, metadata):
    af = audiofolder(tmp_path / "af", utterances(3), metadata=metadata)
    assert detect_format(af) == "audiofolder"
    rows = read_manifest(af)
    assert [r["text"] for r in rows] == [t for _, t in utterances(3)]
    assert rows[1]["path"] == str((af / "data" / "001.wav").resolve()) and rows[1]["speaker_id"] == "s1"


def test_audiofolder_without_text_column_names_the_line(tmp_path):
    af = tmp_path / "af"
    af.mkdir()
    (af / "metadata.jsonl").write_text('{"file_name": "a.wav", "text": "x"}\n{"file_name": "b.wav", "label": 3}\n')
    with pytest.raises(ManifestError, match=r"metadata\.jsonl:2: no text column"):
        read_manifest(af)


def test_wenet_data_list(tmp_path):
    lst = wenet_list(tmp_path / "train" / "data.list", utterances(2))
    assert detect_format(lst) == "wenet"
    rows = read_manifest(lst)
    assert {k: v for k, v in rows[0].items() if k != "_where"} == {
        "path": str((lst.parent / "data_000.flac").resolve()), "text": "one two", "id": "data_000"}
    (tmp_path / "bad.list").write_text('{"key": "a", "wav": "a.wav", "txt": "x"}\n{"key": "b", "wav": "b.wav"}\n')
    with pytest.raises(ManifestError, match=r"bad\.list:2: .*'key', 'wav' and 'txt'"):
        read_manifest(tmp_path / "bad.list")


def test_forced_format_and_unknown_format(tmp_path):
    lst = wenet_list(tmp_path / "w" / "data.list", utterances(1))
    with pytest.raises(ManifestError, match=r"data\.list:1: missing 'path'"):
        read_manifest(lst, format="jsonl")  # forced: read as plain JSON lines, which it is not
    with pytest.raises(ManifestError, match="unknown manifest format"):
        read_manifest(lst, format="parquet")
    with pytest.raises(ManifestError, match="reads a folder"):
        read_manifest(lst, format="audiofolder")


def test_manifest_rows_with_offset_and_bad_numbers(tmp_path):
    wave = np.sin(np.arange(3 * SR) / 7.0).astype(np.float32) * 0.5
    sf.write(tmp_path / "long.wav", wave, SR, subtype="FLOAT")
    (tmp_path / "m.jsonl").write_text(json.dumps({"path": "long.wav", "text": "a", "offset": 1.5, "duration": 0.5}) + "\n"
                                      + json.dumps({"path": "long.wav", "text": "b", "offset": 2.0}) + "\n")
    rows = read_manifest(tmp_path / "m.jsonl")
    ds = AudioDataset(rows, speech_tokenizer(["a", "b"]), SR)
    assert torch.equal(ds[0]["signal"], torch.from_numpy(wave[int(1.5 * SR): 2 * SR]))
    assert torch.equal(ds[1]["signal"], torch.from_numpy(wave[2 * SR:]))  # no duration: to the end
    assert ds.durations() == pytest.approx([0.5, 1.0])
    (tmp_path / "bad.jsonl").write_text(json.dumps({"path": "long.wav", "text": "a", "offset": "soon"}) + "\n")
    with pytest.raises(ManifestError, match=r"bad\.jsonl:1: 'offset' must be a number"):
        read_manifest(tmp_path / "bad.jsonl")


@pytest.mark.parametrize("ext", ["wav", "flac", "mp3", "ogg"])
def test_read_audio_stretch_matches_the_slice_of_the_whole_file(tmp_path, ext):
    wave = (np.sin(np.arange(3 * SR) * 2 * np.pi * 440 / SR) * 0.3).astype(np.float32)
    path = tmp_path / f"a.{ext}"
    sf.write(path, wave, SR)
    whole = read_audio(path, SR)
    part = read_audio(path, SR, offset=1.25, duration=0.5)
    assert part.numel() == SR // 2
    assert torch.allclose(part, whole[int(1.25 * SR): int(1.75 * SR)], atol=1e-4)
    with pytest.raises(AudioReadError, match="past the end of the file"):
        read_audio(path, SR, offset=4.0)
    with pytest.raises(AudioReadError, match="ends past the end"):
        read_audio(path, SR, offset=2.5, duration=2.0)
    with pytest.raises(AudioReadError, match="bad stretch"):
        read_audio(path, SR, offset=-1.0)


# -- through the CLI: train a few steps on one layout, validate on another, then `crnn eval` ---------------------
def _layout(kind, root, items):
    if kind == "kaldi":
        return kaldi_dir(root / "kaldi", items)
    if kind == "kaldi_segments":
        return kaldi_dir(root / "kaldi_seg", items, segments=True)
    if kind == "commonvoice":
        return commonvoice(root / "en", {"train": items}) / "train.tsv"
    if kind.startswith("audiofolder"):
        return audiofolder(root / kind, items, kind.split("_")[1])
    if kind == "wenet":
        return wenet_list(root / "wenet" / "data.list", items)
    raise ValueError(kind)


@pytest.mark.slow
@pytest.mark.parametrize("train_kind, val_kind", [("kaldi", "kaldi_segments"), ("commonvoice", "wenet"),
                                                  ("audiofolder_csv", "audiofolder_jsonl"),
                                                  ("wenet", "commonvoice")])
def test_layouts_train_and_evaluate_through_the_cli(tmp_path, train_kind, val_kind):
    train = _layout(train_kind, tmp_path / "train", utterances(8, seed=11))
    dev = _layout(val_kind, tmp_path / "dev", utterances(4, seed=12))
    out = tmp_path / "run"
    r = run_cli("train", "--train-manifest", train, "--val-manifest", dev, "--out", out, "--epochs", "1",
                "--model", "tiny", "--batch-size", "4", "--warmup-steps", "1", *TINY)
    assert r.returncode == 0, r.stderr
    assert "epoch 1:" in r.stderr and "skipping" not in r.stderr
    r = run_cli("eval", dev, "--checkpoint", out / "best.pt", "-o", tmp_path / "hyps.jsonl")
    assert r.returncode == 0, r.stderr
    assert "4 utterances" in r.stdout and "skipped" not in r.stdout
    refs = [json.loads(line)["reference"] for line in open(tmp_path / "hyps.jsonl")]
    expected = [t for _, t in utterances(4, seed=12)]
    assert sorted(refs) == sorted(expected)  # Common Voice's '"One two!"' scored as "one two" (english policy)


@pytest.mark.slow
def test_cli_manifest_format_flag(tmp_path):
    train = _layout("kaldi", tmp_path / "train", utterances(8, seed=11))
    dev = _layout("kaldi", tmp_path / "dev", utterances(4, seed=12))
    out = tmp_path / "run"
    r = run_cli("train", "--train-manifest", train, "--val-manifest", dev, "--manifest-format", "kaldi",
                "--out", out, "--epochs", "1", "--model", "tiny", "--batch-size", "4", *TINY)
    assert r.returncode == 0, r.stderr
    r = run_cli("eval", dev, "--checkpoint", out / "best.pt", "--manifest-format", "audiofolder")
    assert r.returncode == 1 and "error:" in r.stderr and "metadata" in r.stderr and "Traceback" not in r.stderr
    (dev / "wav.scp").write_text("utt000 flac -d -c audio/utt000.flac |\n")
    r = run_cli("eval", dev, "--checkpoint", out / "best.pt")
    assert r.returncode == 1 and "piped command" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("train", "--train-manifest", dev, "--out", out / "x", "--epochs", "1", *TINY)
    assert r.returncode == 1 and r.stderr.startswith("error:") and "wav.scp:1:" in r.stderr

"""PHOENIX-2014 and Breakfast-style layouts -> manifests -> a few training steps -> label WER, frame accuracy."""
import json

import numpy as np
import pytest
import torch
from torchvision.io import encode_png

import crnn
from train_helpers import fit_batch
from crnn.data.corpora.breakfast import breakfast_rows
from crnn.data.collate import BadSample, collate
from crnn.data.manifest import ManifestError, read_manifest, write_manifest
from crnn.data.corpora.phoenix import phoenix_rows
from crnn.data.build import make_tokenizer
from crnn.data.video.dataset import VideoDataset
from crnn.decoding import ctc_greedy
from crnn.video_metrics import FrameAccuracy, frame_accuracy, frame_predictions, label_error_rate, segment_from_spans

pytestmark = pytest.mark.usefixtures("one_thread")


GLOSS_COLOURS = {"REGEN": (220, 30, 30), "SONNE": (30, 220, 30), "WIND": (30, 30, 220)}


def make_phoenix(root, rng):
    """A tiny RWTH-PHOENIX-Weather 2014 copy: 16x16 PNG frame folders, one colour per gloss."""
    glosses = list(GLOSS_COLOURS)
    for split, n in (("train", 6), ("dev", 2)):
        lines = ["id|folder|signer|annotation"]
        for i in range(n):
            sid = f"{split}_{i:02d}April_2010_heute_default-{i}"
            ann = [glosses[i % 3], glosses[(i + 1 + i // 3) % 3]]
            folder = root / "features" / "fullFrame-210x260px" / split / sid / "1"
            folder.mkdir(parents=True)
            frames = [c for g in ann for c in [GLOSS_COLOURS[g]] * int(rng.integers(6, 9))]
            for k, colour in enumerate(frames):
                img = torch.tensor(colour, dtype=torch.float32)[:, None, None] + torch.from_numpy(
                    rng.normal(0, 15, (3, 16, 16))).float()
                png = encode_png(img.clamp(0, 255).to(torch.uint8))
                (folder / f"{sid}.avi_pid0_fn{k:06d}-0.png").write_bytes(png.numpy().tobytes())
            lines.append(f"{sid}|{sid}/1/*.png|Signer0{i % 2 + 1}|{' '.join(ann)}")
        corpus = root / "annotations" / "manual" / f"{split}.corpus.csv"
        corpus.parent.mkdir(parents=True, exist_ok=True)
        corpus.write_text("\n".join(lines) + "\n")


BREAKFAST_LABELS = ["SIL", "take_bowl", "pour_milk", "stir"]


def make_breakfast(root, rng, n=6, dim=8):
    """A tiny Breakfast-style copy: per-frame features hinting at the action, transcripts, ground truth."""
    for d in ("features", "transcripts", "groundTruth", "splits"):
        (root / d).mkdir(parents=True)
    names = []
    for i in range(n):
        name = f"P{i:02d}_cam01_P{i:02d}_cereals"
        order = ["SIL"] + list(rng.permutation(BREAKFAST_LABELS[1:])[: 2 + i % 2]) + ["SIL"]
        frames = [a for a in order for _ in range(int(rng.integers(6, 10)))]
        feats = rng.normal(0, 0.3, (len(frames), dim)).astype(np.float32)
        for t, a in enumerate(frames):
            feats[t, BREAKFAST_LABELS.index(a)] += 2.0
        np.save(root / "features" / f"{name}.npy", feats)
        (root / "groundTruth" / f"{name}.txt").write_text("\n".join(frames) + "\n")
        if i % 2 == 0:  # the others derive their transcript from the ground truth
            (root / "transcripts" / f"{name}.txt").write_text("\n".join(order) + "\n")
        names.append(name)
    (root / "splits" / "train.bundle").write_text("\n".join(f"{n}.txt" for n in names) + "\n")
    return names


def test_segment_and_frame_predictions_on_hand_built_log_probs():
    # Output frames: tok1 tok1 blank blank tok2 blank; stride 2 -> 12 input frames.
    best = [1, 1, 0, 0, 2, 0]
    lp = torch.full((6, 3), -10.0)
    lp[torch.arange(6), torch.tensor(best)] = 0.0
    assert segment_from_spans([(0, 1), (4, 4)], [1, 2], 6).tolist() == [1, 1, 1, 2, 2, 2]
    pred = frame_predictions(lp, [1, 2], n_input=12, stride=2)
    assert pred.tolist() == [1] * 6 + [2] * 6
    gt = torch.tensor([1] * 5 + [2] * 5 + [-1, -1])  # last two frames unlabelled: ignored
    acc = frame_accuracy(lp[None], torch.tensor([6]), [[1, 2]], [gt], stride=2)
    assert (acc.correct, acc.total) == (9, 10) and acc.accuracy == pytest.approx(0.9)
    # A label that cannot fit the frames counts every labelled frame as wrong.
    bad = frame_accuracy(lp[None, :2], torch.tensor([2]), [[1, 2, 1]], [gt[:4]], stride=2)
    assert (bad.correct, bad.total) == (0, 4)
    assert label_error_rate(["a b c", "d"], ["a c", "d e"]) == pytest.approx(2 / 4)


def test_phoenix_layout_rows_and_errors(tmp_path):
    make_phoenix(tmp_path, np.random.default_rng(0))
    rows = phoenix_rows(tmp_path, "train")
    assert len(rows) == 6
    assert rows[0]["path"].endswith("train/train_00April_2010_heute_default-0/1")
    assert rows[0]["labels"] == rows[0]["text"].split() and rows[0]["signer"] == "Signer01"
    # Written as a manifest and read back: relative paths resolve to the same folders.
    write_manifest(tmp_path / "train.jsonl", rows)
    back = read_manifest(tmp_path / "train.jsonl")
    assert [r["path"] for r in back] == [r["path"] for r in rows]
    with pytest.raises(ManifestError, match="test.corpus.csv"):
        phoenix_rows(tmp_path, "test")
    bad = tmp_path / "annotations" / "manual" / "dev.corpus.csv"
    bad.write_text("id|folder|signer|annotation\nx|x/1/*.png|Signer01\n")
    with pytest.raises(ManifestError, match=r"dev.corpus.csv:2"):
        phoenix_rows(tmp_path, "dev")
    # A missing frame folder is a skipped sample naming it.
    missing = dict(rows[0], path=str(tmp_path / "gone"))
    tok = make_tokenizer([r["text"] for r in rows], "video")
    item = VideoDataset([missing], tok, {"fps": 25})[0]
    assert isinstance(item, BadSample) and "gone" in item.reason


def test_phoenix_tiny_training_and_wer(tmp_path):
    torch.manual_seed(0)
    make_phoenix(tmp_path, np.random.default_rng(1))
    train_rows, dev_rows = phoenix_rows(tmp_path, "train"), phoenix_rows(tmp_path, "dev")
    tok = make_tokenizer([r["text"] for r in train_rows], "video")
    assert tok.symbols == sorted(GLOSS_COLOURS)
    model = crnn.create_model("video_tiny", vocab_size=len(tok), height=16, width=16, fps=25.0, cnn_grid=1,
                              cnn_dim=32, temporal_channels=32, temporal_pools=1, hidden_size=32, num_layers=1)
    ds = VideoDataset(train_rows, tok, model.cfg.frontend_args, train=True, speed=0.1)
    batch = collate([ds[i] for i in range(len(ds))])
    assert batch.x.dtype == torch.uint8 and batch.x.shape[2:] == (3, 16, 16) and not batch.skipped
    losses = fit_batch(model, batch, 30)
    assert losses[-1] < 0.5 * losses[0], losses
    dev = collate([VideoDataset(dev_rows, tok, model.cfg.frontend_args)[i] for i in range(len(dev_rows))])
    with torch.no_grad():
        lp, ol = model(dev.x, dev.x_lens)
    hyps = [tok.decode(h.tokens) for h in ctc_greedy(lp, ol)]
    assert label_error_rate(dev.texts, hyps) <= 0.5  # colour-coded glosses: learnt in a few steps


def test_breakfast_layout_training_and_frame_accuracy(tmp_path):
    torch.manual_seed(0)
    names = make_breakfast(tmp_path, np.random.default_rng(2))
    rows = breakfast_rows(tmp_path, split="train")
    assert [r["id"] for r in rows] == names
    gt0 = (tmp_path / "groundTruth" / f"{names[1]}.txt").read_text().split()
    assert rows[1]["labels"] == [a for i, a in enumerate(gt0) if i == 0 or gt0[i - 1] != a]  # runs of the truth
    assert all(r["frame_labels"].endswith(".txt") for r in rows)
    assert len(breakfast_rows(tmp_path)) == len(names)  # no split: every feature file
    with pytest.raises(ManifestError, match="nope.bundle"):
        breakfast_rows(tmp_path, split="nope")

    # The manifest route: rows written as JSONL (frame_labels kept) and read back.
    write_manifest(tmp_path / "bf.jsonl", rows)
    rows = read_manifest(tmp_path / "bf.jsonl")
    assert json.loads((tmp_path / "bf.jsonl").read_text().splitlines()[0])["path"].startswith("features/")

    tok = make_tokenizer([r["text"] for r in rows], "video")
    model = crnn.create_model("features_tiny", vocab_size=len(tok), input_dim=8, temporal_pools=1,
                              temporal_channels=32, hidden_size=32, num_layers=1)
    ds = VideoDataset(rows, tok, model.cfg.frontend_args, train=False)
    items = [ds[i] for i in range(len(ds))]
    assert all(it["signal"].dtype == torch.float32 and it["signal"].shape[1] == 8 for it in items)
    assert all(len(it["frame_labels"]) == len(it["signal"]) for it in items)
    batch = collate(items)

    def accuracy() -> float:
        with torch.no_grad():
            lp, ol = model(batch.x, batch.x_lens)
        acc = frame_accuracy(lp, ol, [it["tokens"].tolist() for it in items], [it["frame_labels"] for it in items],
                             stride=model.frontend.time_stride)
        assert acc.total == sum(len(it["signal"]) for it in items)
        return acc.accuracy

    before = accuracy()
    losses = fit_batch(model, batch, 40)
    after = accuracy()
    assert losses[-1] < 0.5 * losses[0], losses
    assert after > 0.8 and after > before, (before, after)


def test_frame_accuracy_accumulates():
    acc = FrameAccuracy()
    acc.update(torch.tensor([1, 2, 2]), torch.tensor([1, 2, 3]))
    acc.update(torch.tensor([4, 4]), torch.tensor([-1, 4]))
    assert (acc.correct, acc.total) == (3, 4)


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["phoenix", "breakfast"])
def test_layouts_train_and_evaluate_through_the_cli(tmp_path, layout):
    """The user's route: layout -> manifest -> `crnn train` -> `crnn eval` (label WER, frame accuracy)."""
    from cli_helpers import run_cli

    rng = np.random.default_rng(3)
    if layout == "phoenix":
        make_phoenix(tmp_path, rng)
        write_manifest(tmp_path / "train.jsonl", phoenix_rows(tmp_path, "train"))
        write_manifest(tmp_path / "dev.jsonl", phoenix_rows(tmp_path, "dev"))
        model = ["--model", "video_tiny", "--frontend-arg", "height=16", "--frontend-arg", "width=16",
                 "--frontend-arg", "fps=25", "--frontend-arg", "cnn_grid=1", "--frontend-arg", "cnn_dim=32",
                 "--frontend-arg", "temporal_channels=32", "--frontend-arg", "temporal_pools=1"]
    else:
        make_breakfast(tmp_path, rng)
        write_manifest(tmp_path / "train.jsonl", breakfast_rows(tmp_path, split="train"))
        write_manifest(tmp_path / "dev.jsonl", breakfast_rows(tmp_path, split="train")[:3])
        model = ["--model", "features_tiny", "--frontend-arg", "input_dim=8", "--frontend-arg", "temporal_pools=1",
                 "--frontend-arg", "temporal_channels=32"]
    out = tmp_path / "run"
    r = run_cli("train", "--train-manifest", tmp_path / "train.jsonl", "--val-manifest", tmp_path / "dev.jsonl",
                "--out", out, *model, "--hidden-size", "32", "--num-layers", "1", "--epochs", "3",
                "--batch-size", "3", "--lr", "3e-3", "--warmup-steps", "2", "--no-progress", "--no-tensorboard",
                "--workers", "0", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert (out / "best.pt").is_file() and (out / "last.pt").is_file()
    log = (out / "log.csv").read_text().splitlines()
    assert len(log) == 4  # header + one row per epoch

    r = run_cli("eval", "--checkpoint", out / "best.pt", tmp_path / "dev.jsonl", "-o", tmp_path / "hyps.jsonl")
    assert r.returncode == 0, r.stderr
    assert "label WER" in r.stdout
    assert ("frame accuracy" in r.stdout) == (layout == "breakfast")  # only Breakfast has frame ground truth
    rows = [json.loads(line) for line in (tmp_path / "hyps.jsonl").read_text().splitlines()]
    refs = [r["text"] for r in read_manifest(tmp_path / "dev.jsonl")]
    assert sorted(r["reference"] for r in rows) == sorted(refs)

    # An audio manifest given to a video model is refused, naming both.
    (tmp_path / "a.jsonl").write_text(json.dumps({"path": "x.wav", "text": "a"}) + "\n")
    r = run_cli("eval", "--checkpoint", out / "best.pt", tmp_path / "a.jsonl")
    assert r.returncode != 0 and "a.jsonl" in r.stderr and "audio" in r.stderr

"""Training on manifests: bad files are skipped and counted, impossible labels reported before training,
and the loss really falls."""
import csv
import json

import pytest
import torch

from crnn.data.builtin.dtmf import write_dtmf_dataset
from crnn.training import train

from cli_helpers import TINY_MODEL, tiny_train_config as quiet

pytestmark = pytest.mark.slow  # every test here trains


@pytest.fixture(scope="module")
def dtmf_manifest(tmp_path_factory):
    root = tmp_path_factory.mktemp("dtmf")
    manifest = write_dtmf_dataset(root, n=12, seed=1, sample_rate=8000)
    return root, manifest


def test_bad_files_and_impossible_labels_are_skipped_not_fatal(dtmf_manifest, tmp_path, capsys):
    root, manifest = dtmf_manifest
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    (root / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    rows.append({"path": "corrupt.wav", "text": "123"})          # unreadable: skipped while training
    rows.append({"path": rows[0]["path"], "text": "1" * 400, "duration": rows[0]["duration"]})  # cannot fit
    bad_manifest = root / "with_bad.jsonl"
    bad_manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = train(quiet(out=str(tmp_path), train_manifest=str(bad_manifest), val_manifest=str(manifest),
                          epochs=1))
    err = capsys.readouterr().err
    assert "label needs 799 frames under CTC" in err and "with_bad.jsonl:14:" in err   # reported before training, by file and line
    assert "corrupt.wav" in err and "skipped 1 unreadable" in err
    assert (tmp_path / "best.pt").is_file()
    row = next(csv.DictReader(open(tmp_path / "log.csv")))
    assert int(row["skipped_items"]) == 1
    assert summary["best_cer"] >= 0


def test_no_usable_items_is_a_clear_error(dtmf_manifest, tmp_path):
    root, _ = dtmf_manifest
    m = root / "only_bad.jsonl"
    m.write_text(json.dumps({"path": "dtmf_00000.wav", "text": "1" * 500, "duration": 0.5}) + "\n")
    with pytest.raises(ValueError, match="no usable item"):
        train(quiet(out=str(tmp_path), train_manifest=str(m), epochs=1))


def test_loss_falls_on_real_training_steps():
    """Overfit one batch of DTMF for a few dozen AdamW steps: the CTC loss must drop clearly."""
    import crnn
    from train_helpers import fit_batch
    from crnn.data.collate import collate
    from crnn.data.builtin.dtmf import DTMFDataset

    torch.manual_seed(0)
    ds = DTMFDataset(8, seed=2, sample_rate=8000)
    batch = collate([ds[i] for i in range(8)])
    model = crnn.create_model("tiny", vocab_size=len(ds.tokenizer), **TINY_MODEL)
    losses = fit_batch(model, batch, 40, lr=1e-2, optimizer=torch.optim.AdamW)
    assert losses[-1] < 0.5 * losses[0], losses

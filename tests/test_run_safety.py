"""Never lose a model, never succeed silently: run folders, locks, resume, checkpoints, bad data in training."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from cli_helpers import TINY_MODEL, tiny_model, tiny_train_config
from crnn.checkpoint import CheckpointError, load_model, read_checkpoint, save_checkpoint
from crnn.data.build import DataError
from crnn.data.collate import collate
from crnn.data.builtin.dtmf import DTMFDataset, write_dtmf_dataset
from crnn.training import TrainConfig, train
from crnn.training.run_dir import RunDirError
from crnn.training.step import make_optimizer, train_step

pytestmark = pytest.mark.slow  # every test here trains (a few seconds each)

def quiet(out, **kw) -> TrainConfig:
    return tiny_train_config(**{**dict(out=str(out), train_size=16, val_size=8, epochs=1), **kw})


@pytest.fixture(scope="module")
def dtmf_manifest(tmp_path_factory):
    root = tmp_path_factory.mktemp("dtmf")
    return root, write_dtmf_dataset(root, n=12, seed=1, sample_rate=8000)


def _rows(manifest):
    return [json.loads(line) for line in manifest.read_text().splitlines()]


def _write_rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# -- one folder, one run --------------------------------------------------------------------------
def test_new_run_refuses_a_folder_holding_another_run(tmp_path):
    first = train(quiet(tmp_path))
    before = (tmp_path / "best.pt").read_bytes()
    with pytest.raises(RunDirError, match="holds another run"):
        train(quiet(tmp_path, seed=1))
    assert (tmp_path / "best.pt").read_bytes() == before  # nothing was touched
    again = train(quiet(tmp_path, seed=1, overwrite=True))
    assert again["history"][0]["epoch"] == 1 and first["best"] == again["best"]
    assert not (tmp_path / ".lock").exists()


def test_lock_refuses_a_live_run_and_takes_over_a_dead_one(tmp_path):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        tmp_path.mkdir(exist_ok=True)
        (tmp_path / ".lock").write_text(f"{live.pid}\n")
        with pytest.raises(RunDirError, match=f"another run \\(pid {live.pid}\\)"):
            train(quiet(tmp_path))
    finally:
        live.kill()
        live.wait()
    # the same pid is now dead: its lock is stale and taken over
    (tmp_path / "best.pt.x1y2.tmp").write_bytes(b"half a checkpoint")
    summary = train(quiet(tmp_path))
    assert summary["best"] and not (tmp_path / ".lock").exists()
    assert not list(tmp_path.glob("*.tmp"))  # leftovers of interrupted writes are removed on start


def test_default_out_is_named_after_the_data(tmp_path, monkeypatch, dtmf_manifest):
    from crnn.training.trainer import default_out

    _, manifest = dtmf_manifest
    assert default_out(TrainConfig(task="actions")) == "runs/actions"
    assert default_out(TrainConfig(train_manifest=str(manifest))) == f"runs/{manifest.parent.name}-manifest"
    assert default_out(TrainConfig()) == "runs/dtmf"


# -- resume ---------------------------------------------------------------------------------------
def test_resume_rejects_flags_that_change_the_model(tmp_path):
    train(quiet(tmp_path))
    with pytest.raises(ValueError, match=r"hidden_size=32 \(checkpoint: 16\)"):
        train(quiet(tmp_path, resume="auto", epochs=2, model_args=dict(TINY_MODEL, hidden_size=32)))


def test_resume_warns_without_optimizer_state_and_says_when_done(tmp_path, capsys):
    train(quiet(tmp_path))
    capsys.readouterr()
    done = train(quiet(tmp_path, resume="auto", epochs=1))
    err = capsys.readouterr().err
    assert "already trained 1 epoch(s)" in err and done["best"] == str(tmp_path / "best.pt")
    train(quiet(tmp_path, resume=str(tmp_path / "best.pt"), epochs=2))
    assert "holds no optimizer state" in capsys.readouterr().err


def test_init_from_starts_a_new_run_from_a_trained_model(tmp_path):
    source = tmp_path / "source"
    train(quiet(source, epochs=2, lr=1e-2))
    trained = read_checkpoint(source / "best.pt")["state_dict"]
    # lr 0: the new run changes nothing, so its model must be the source's trained one, not the seed's init
    summary = train(quiet(tmp_path / "next", init_from=str(source / "best.pt"), lr=0.0))
    assert summary["best"] == str(tmp_path / "next" / "best.pt")
    state = read_checkpoint(tmp_path / "next" / "best.pt")
    moved = [k for k, v in state["state_dict"].items()
             if v.is_floating_point() and "running" not in k and not torch.equal(v, trained[k])]
    assert not moved
    fresh = train(quiet(tmp_path / "fresh", lr=0.0))
    fresh_w = read_checkpoint(fresh["best"])["state_dict"]
    assert any(not torch.equal(fresh_w[k], trained[k]) for k in trained if trained[k].is_floating_point())
    assert state["train_state"]["epoch"] == 1  # epochs and schedule start afresh
    with pytest.raises(ValueError, match=r"hidden_size=32 \(checkpoint: 16\)"):
        train(quiet(tmp_path / "other", init_from=str(source / "best.pt"),
                    model_args=dict(TINY_MODEL, hidden_size=32)))
    with pytest.raises(ValueError, match="--init-from starts a new run"):
        train(quiet(tmp_path / "both", init_from=str(source / "best.pt"), resume="auto"))
    with pytest.raises(CheckpointError, match="missing.pt"):
        train(quiet(tmp_path / "none", init_from=str(tmp_path / "missing.pt")))


def test_best_is_only_ever_a_validated_model(tmp_path, dtmf_manifest):
    _, manifest = dtmf_manifest
    summary = train(quiet(tmp_path, train_manifest=str(manifest), epochs=2))  # no validation data
    assert summary["best"] is None and not (tmp_path / "best.pt").exists() and (tmp_path / "last.pt").exists()


# -- checkpoints ----------------------------------------------------------------------------------
def _tiny_model():
    model = tiny_model(17)
    model.tokenizer = DTMFDataset(1, seed=0, sample_rate=8000).tokenizer
    return model


def test_checkpoint_mode_follows_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = save_checkpoint(tmp_path / "a.pt", _tiny_model())
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_failed_checkpoint_write_names_the_file_and_keeps_the_previous(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "best.pt", _tiny_model())
    before = path.read_bytes()

    def disk_full(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(CheckpointError, match="best.pt: cannot write checkpoint \\(No space left on device\\)"):
        save_checkpoint(path, _tiny_model())
    assert path.read_bytes() == before and not list(tmp_path.glob("*.tmp"))


def test_a_failed_clean_up_never_hides_the_error_that_ended_the_run(tmp_path, dtmf_manifest, monkeypatch, capsys):
    """The folder turns read-only mid-run: the checkpoint write fails, and so does removing the lock. The
    error the user sees names the checkpoint and the reason; the lock's failure is a note beside it."""
    from pathlib import Path

    root, manifest = dtmf_manifest

    def read_only(obj, f, *a, **k):
        raise OSError(30, "Read-only file system")

    real_unlink = Path.unlink

    def unlink(self, *a, **k):
        if self.name == ".lock":
            raise PermissionError(13, "Permission denied")
        return real_unlink(self, *a, **k)

    monkeypatch.setattr(torch, "save", read_only)
    monkeypatch.setattr(Path, "unlink", unlink)
    with pytest.raises(CheckpointError, match=r"(best|last)\.pt: cannot write checkpoint \(Read-only file system\)"):
        train(quiet(tmp_path, train_manifest=str(manifest), val_manifest=str(manifest), epochs=1))
    assert ".lock: cannot remove the run lock (Permission denied)" in capsys.readouterr().err


@pytest.mark.parametrize("damage, message", [
    (lambda c: c["tokenizer"].update(symbols=c["tokenizer"]["symbols"][:-2]), "output layer has 17"),
    (lambda c: c.pop("state_dict"), "missing 'state_dict'"),
    (lambda c: c.__setitem__("config", [1, 2]), "'config' should be a dict"),
    (lambda c: c.__setitem__("version", 99), "version 99 is newer"),
    (lambda c: c["state_dict"].pop("head.bias"), "weights do not match"),
    (lambda c: c["config"].__setitem__("hidden_size", 8), "weights do not match"),
])
def test_inconsistent_checkpoints_name_the_file_and_the_problem(tmp_path, damage, message):
    path = save_checkpoint(tmp_path / "m.pt", _tiny_model())
    ckpt = torch.load(path, weights_only=True)
    damage(ckpt)
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=message) as e:
        load_model(path)
    assert str(path) in str(e.value)


# -- bad data -------------------------------------------------------------------------------------
def test_nonfinite_step_leaves_parameters_and_buffers_untouched():
    model = _tiny_model().train()
    batch = collate([DTMFDataset(4, seed=3, sample_rate=8000)[i] for i in range(4)])
    batch.x[1, 100:200] = math.nan
    optimizer = make_optimizer(model, 1e-2, 0.0)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loss, finite = train_step(model, batch, optimizer, scaler, None, 5.0)
    assert not bool(finite)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0, msg=k)  # running stats included


def test_nonfinite_file_is_skipped_and_named_never_fed(tmp_path, dtmf_manifest, capsys):
    root, manifest = dtmf_manifest
    rows = _rows(manifest)
    wav = np.zeros(8000, dtype=np.float32)
    wav[100] = np.nan
    sf.write(root / "nan.wav", wav, 8000, subtype="FLOAT")
    bad = _write_rows(root / "with_nan.jsonl", rows + [{"path": "nan.wav", "text": "123"}])
    summary = train(quiet(tmp_path, train_manifest=str(bad), val_manifest=str(manifest), epochs=1))
    err = capsys.readouterr().err
    assert "nan.wav" in err and "non-finite" in err
    state = read_checkpoint(summary["best"])["state_dict"]
    assert all(torch.isfinite(v.float()).all() for v in state.values())
    assert int(summary["history"][0]["nonfinite_steps"]) == 0  # the item never reached a step


def test_missing_files_are_reported_before_training_and_mostly_bad_data_stops(tmp_path, dtmf_manifest):
    root, manifest = dtmf_manifest
    rows = _rows(manifest)
    missing = [{"path": f"gone_{i}.wav", "text": "1"} for i in range(len(rows) + 1)]
    bad = _write_rows(root / "mostly_missing.jsonl", rows + missing)
    with pytest.raises(DataError, match=r"13 of 25 items unusable .*\n.*gone_0.wav: no such file"):
        train(quiet(tmp_path, train_manifest=str(bad), val_manifest=str(manifest)))
    assert not (tmp_path / "best.pt").exists()
    # at most half bad: the run goes on with the good half
    ok = _write_rows(root / "some_missing.jsonl", rows + missing[:3])
    assert train(quiet(tmp_path / "b", train_manifest=str(ok), val_manifest=str(manifest)))["best"]


def test_mostly_unreadable_files_stop_after_the_first_epoch(tmp_path, dtmf_manifest):
    root, manifest = dtmf_manifest
    rows = _rows(manifest)
    for i in range(len(rows) + 2):
        (root / f"junk_{i}.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 4)
    junk = [{"path": f"junk_{i}.wav", "text": "1"} for i in range(len(rows) + 2)]
    bad = _write_rows(root / "mostly_junk.jsonl", rows + junk)
    with pytest.raises(DataError, match=r"epoch 1: 14 of 26 items unusable"):
        train(quiet(tmp_path, train_manifest=str(bad), val_manifest=str(manifest)))


def test_bad_data_split_between_the_pre_scan_and_loading_counts_as_a_whole(tmp_path, dtmf_manifest):
    """Missing files (pre-scan) and unreadable ones (loading), each under half, together most of the data."""
    root, manifest = dtmf_manifest
    rows = _rows(manifest)  # 12 good rows
    missing = [{"path": f"gone_{i}.wav", "text": "1"} for i in range(10)]
    for i in range(8):
        (root / f"junk_{i}.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 4)
    junk = [{"path": f"junk_{i}.wav", "text": "1"} for i in range(8)]
    bad = _write_rows(root / "split_bad.jsonl", rows + missing + junk)  # 30 rows: 10 + 8 = 60 % unusable
    with pytest.raises(DataError, match=r"epoch 1: 8 of 20 items unusable while loading, after the pre-scan left "
                                        r"out 33% of the rows: 60% of the training data in all"):
        train(quiet(tmp_path, train_manifest=str(bad), val_manifest=str(manifest)))
    assert not (tmp_path / "best.pt").exists()


def test_unusable_validation_set_is_an_error_before_training(tmp_path, dtmf_manifest):
    root, manifest = dtmf_manifest
    val = _write_rows(root / "bad_val.jsonl", [{"path": "nope.wav", "text": "1"}])
    with pytest.raises(DataError, match="no usable validation item"):
        train(quiet(tmp_path, train_manifest=str(manifest), val_manifest=str(val)))
    assert not (tmp_path / "last.pt").exists()


# -- kill -9 at any moment --------------------------------------------------------------------------
KILL_PLUGIN = '''
import os, signal, torch
import crnn.training.trainer as trainer

# KILL_AT="save:N" dies during the N-th checkpoint write (temp file written, not renamed),
# "partial:N" half-way through writing it, "step:N" in the middle of the N-th training step.
kind, _, n = os.environ.get("KILL_AT", "").partition(":")
n = int(n or 0)
count = {"save": 0, "step": 0}
_save, _step = torch.save, trainer.train_step

def die():
    os.kill(os.getpid(), signal.SIGKILL)  # what kill -9 does: no cleanup of any kind runs

def save(obj, f, *a, **k):
    count["save"] += 1
    if kind == "partial" and count["save"] == n:
        f.write(b"half a checkpoint")
        f.flush()
        die()
    _save(obj, f, *a, **k)
    if kind == "save" and count["save"] == n:
        die()

def step(*a, **k):
    count["step"] += 1
    if kind == "step" and count["step"] == n:
        die()
    return _step(*a, **k)

torch.save, trainer.train_step = save, step
'''


def test_kill_at_random_moments_never_loses_the_model(tmp_path):
    from cli_helpers import TINY, run_cli

    plugin = tmp_path / "killer.py"
    plugin.write_text(KILL_PLUGIN)

    def run(out, kill_at=""):
        cmd = [sys.executable, "-m", "crnn", "train", "--out", str(out), "--train-size", "32", "--val-size", "8",
               "--epochs", "4", "--batch-size", "8", "--warmup-steps", "2", "--resume", "auto", "--plugin",
               str(plugin), *TINY]
        env = dict(os.environ, OMP_NUM_THREADS="1", KILL_AT=kill_at)
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)

    ref = run(tmp_path / "ref")  # uninterrupted: the step count to match
    assert ref.returncode == 0, ref.stderr
    ref_steps = read_checkpoint(tmp_path / "ref" / "last.pt")["train_state"]["step"]

    out = tmp_path / "run"
    rng = np.random.default_rng(0)
    kinds = ["save", "partial", "step", "save", "partial", "step"]
    rng.shuffle(kinds)
    kills = 0
    for kind in kinds:  # each run dies at a random moment of its own; the next resumes
        n = int(rng.integers(1, 3)) if kind != "step" else int(rng.integers(1, 7))
        r = run(out, f"{kind}:{n}")
        if r.returncode == 0:  # it finished before that moment came
            break
        assert r.returncode == -9, (kind, n, r.returncode, r.stderr[-2000:])
        kills += 1
        for p in out.glob("*.pt"):
            read_checkpoint(p)  # never torn
        if (out / "last.pt").exists():
            assert (out / "best.pt").exists()  # last.pt never names a best.pt that is not there
    else:
        r = run(out)  # the last one is left to finish
    assert r.returncode == 0, r.stderr
    assert kills >= 3
    last = read_checkpoint(out / "last.pt")["train_state"]
    assert last["epoch"] == 4 and last["step"] == ref_steps == 4 * 4  # as many steps as uninterrupted
    rows = (out / "log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4"]
    assert read_checkpoint(out / "best.pt") and not list(out.glob("*.tmp")) and not (out / ".lock").exists()
    r = run_cli("info", str(out / "best.pt"))
    info = json.loads(r.stdout)
    best_row = min(rows[1:], key=lambda r: float(r.split(",")[4]))
    assert info["best"]["epoch"] == int(best_row.split(",")[0])  # the log's numbering

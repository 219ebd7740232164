"""End to end through the real command line: train, resume, decode, synth, info, custom cells."""
import csv
import math
import json

import pytest
import torch

from cli_helpers import TINY, run_cli

import crnn
from crnn.checkpoint import read_checkpoint

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    r = run_cli("train", "--out", out, "--train-size", "48", "--val-size", "16", "--epochs", "2",
                "--batch-size", "16", "--warmup-steps", "2", *TINY)
    assert r.returncode == 0, r.stderr
    return out, r


def test_train_writes_best_last_and_logs(trained):
    out, r = trained
    assert (out / "best.pt").is_file() and (out / "last.pt").is_file()
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert all(float(row["val_cer"]) >= 0.0 for row in rows)
    assert "epoch 2:" in r.stderr and "CER" in r.stderr
    ckpt = read_checkpoint(out / "last.pt")
    assert ckpt["train_state"]["epoch"] == 2 and "optimizer" in ckpt["train_state"]
    assert crnn.load_model(out / "best.pt").tokenizer.symbols == list("0123456789*#ABCD")


def test_resume_continues_from_last_epoch(trained, tmp_path):
    out, _ = trained
    import shutil

    run_dir = tmp_path / "resumed"
    shutil.copytree(out, run_dir)
    r = run_cli("train", "--out", run_dir, "--train-size", "48", "--val-size", "16", "--epochs", "3",
                "--batch-size", "16", "--warmup-steps", "2", "--resume", "auto", *TINY)
    assert r.returncode == 0, r.stderr
    assert "resuming from" in r.stderr and "epoch 3:" in r.stderr and "epoch 1:" not in r.stderr
    rows = list(csv.DictReader(open(run_dir / "log.csv")))
    assert [row["epoch"] for row in rows] == ["1", "2", "3"]
    assert read_checkpoint(run_dir / "last.pt")["train_state"]["step"] == 9


def test_decode_reports_bad_files_and_goes_on(trained, tmp_path):
    out, _ = trained
    r = run_cli("synth", "dtmf", "--out", tmp_path / "wavs", "--n", "3", "--seed", "5")
    assert r.returncode == 0, r.stderr
    wavs = sorted((tmp_path / "wavs").glob("*.wav"))
    (tmp_path / "notes.wav").write_text("this is not audio")
    missing = tmp_path / "missing.wav"
    r = run_cli("decode", "--checkpoint", out / "best.pt", wavs[0], missing, tmp_path / "notes.wav", *wavs[1:],
                "--device", "cpu")
    assert r.returncode == 1
    assert "missing.wav" in r.stderr and "notes.wav" in r.stderr and "2 of 5 file(s) failed" in r.stderr
    lines = r.stdout.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(w) for w in wavs]

    r = run_cli("decode", "--checkpoint", out / "best.pt", "--json", *wavs, "--device", "cpu")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["path"] for row in rows] == [str(w) for w in wavs]
    assert all(set(row) >= {"path", "text", "score"} and row["score"] <= 0 for row in rows)


def test_decode_refuses_a_foreign_checkpoint(tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    r = run_cli("decode", "--checkpoint", tmp_path / "foreign.pt", tmp_path / "a.wav")
    assert r.returncode == 1 and "foreign.pt" in r.stderr and "not a crnn checkpoint" in r.stderr


def test_info_and_python_m(trained):
    out, _ = trained
    r = run_cli("info")
    assert r.returncode == 0 and "gru_ref" in r.stdout and "tiny" in r.stdout
    r = run_cli("info", out / "best.pt")
    info = json.loads(r.stdout)
    assert info["config"]["hidden_size"] == 16 and len(info["vocabulary"]) == 16


PLUGIN = '''
import torch
import torch.nn as nn
from crnn import register_cell
from crnn.cells.base import StepLayer


@register_cell("leaky")
class LeakyLayer(StepLayer):
    """h_t = (1 - a) h_{t-1} + a tanh(W x_t + U h_{t-1})"""

    def __init__(self, input_size, hidden_size, bidirectional=True):
        super().__init__(input_size, hidden_size, bidirectional)
        self.inp = nn.ModuleList(nn.Linear(input_size, hidden_size) for _ in range(self.num_directions))
        self.rec = nn.ModuleList(nn.Linear(hidden_size, hidden_size, bias=False) for _ in range(self.num_directions))

    def project(self, x, direction):
        return self.inp[direction](x)

    def step(self, x_t, h, direction):
        return 0.5 * h + 0.5 * torch.tanh(x_t + self.rec[direction](h))
'''


def test_user_registered_cell_trains_and_decodes_through_the_cli(tmp_path):
    plugin = tmp_path / "leaky_cell.py"
    plugin.write_text(PLUGIN)
    r = run_cli("train", "--out", tmp_path / "run", "--cell", "leaky", "--plugin", plugin, "--train-size", "32",
                "--val-size", "8", "--epochs", "1", "--batch-size", "16", *TINY)
    assert r.returncode == 0, r.stderr
    ckpt = read_checkpoint(tmp_path / "run" / "best.pt")
    assert ckpt["config"]["cell"] == "leaky"
    run_cli("synth", "dtmf", "--out", tmp_path / "wavs", "--n", "1")
    wav = next((tmp_path / "wavs").glob("*.wav"))
    r = run_cli("decode", "--checkpoint", tmp_path / "run" / "best.pt", wav)
    assert r.returncode == 1 and "leaky" in r.stderr and "registered" in r.stderr
    r = run_cli("decode", "--checkpoint", tmp_path / "run" / "best.pt", wav, "--plugin", plugin)
    assert r.returncode == 0, r.stderr


def test_train_py_entry_point(tmp_path):
    import subprocess
    import sys

    from cli_helpers import ROOT

    r = subprocess.run([sys.executable, str(ROOT / "train.py"), "--out", str(tmp_path), "--train-size", "16",
                        "--val-size", "8", "--epochs", "1", "--batch-size", "8", *TINY],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "best.pt").is_file()


NAN_PLUGIN = '''
import math
from crnn import get_cell, register_cell

GRU = get_cell("gru")


@register_cell("gru_nan_once")
class NanOnceGRU(GRU):
    """A GRU whose second training forward returns NaN: a stand-in for one numerically bad batch."""

    calls = 0

    def forward(self, x, lengths, state=None):
        y, lengths, state = super().forward(x, lengths, state)
        if self.training:
            type(self).calls += 1
            if type(self).calls == 2:
                y = y * math.nan
        return y, lengths, state
'''


def test_a_non_finite_step_is_skipped_counted_and_never_reaches_the_weights(tmp_path):
    plugin = tmp_path / "nan_cell.py"
    plugin.write_text(NAN_PLUGIN)
    out = tmp_path / "run"
    r = run_cli("train", "--out", out, "--cell", "gru_nan_once", "--plugin", plugin, "--train-size", "64",
                "--val-size", "8", "--epochs", "2", "--batch-size", "16", *TINY)
    assert r.returncode == 0, r.stderr
    assert "1 non-finite" in r.stderr  # the epoch summary says what was skipped
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert [int(row["nonfinite_steps"]) for row in rows] == [1, 0]
    assert all(math.isfinite(float(row["train_loss"])) for row in rows)
    ckpt = read_checkpoint(out / "last.pt")
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())
    # Adam's step counter skipped the bad update too: 4 batches per epoch, one skipped.
    steps = {int(s["step"]) for s in ckpt["train_state"]["optimizer"]["state"].values()}
    assert steps == {7}


def test_init_from_and_resume_are_exclusive(tmp_path):
    r = run_cli("train", "--out", tmp_path / "run", "--resume", "auto", "--init-from", tmp_path / "a.pt")
    assert r.returncode == 2 and "not allowed with argument" in r.stderr and "Traceback" not in r.stderr


def test_speed_factors_and_vtlp_flags_reach_the_config():
    from crnn.cli.train import config_from_args, get_args_parser as build_parser

    args = build_parser().parse_args(["--speed-factors", "0.8,1.0,1.2", "--vtlp", "0.1", "--out", "x"])
    cfg = config_from_args(args)
    assert cfg.augment["speed_perturb"] and cfg.augment["speed_factors"] == (0.8, 1.0, 1.2)
    assert cfg.model_args["vtlp"] == 0.1
    for bad in (["--speed-factors", "0.8,fast"], ["--speed-factors", "3"], ["--vtlp", "0.7"]):
        with pytest.raises(SystemExit) as e:
            build_parser().parse_args([*bad, "--out", "x"])
        assert e.value.code == 2


def test_the_action_task_trains_on_its_own_budget_unless_told_otherwise():
    from crnn.cli.train import config_from_args, get_args_parser as build_parser

    def budget(*argv):
        cfg = config_from_args(build_parser().parse_args([*argv, "--out", "x"]))
        return cfg.epochs, cfg.max_minutes, cfg.time_schedule

    assert budget() == (10, None, False)  # dtmf
    assert budget("--task", "textlines") == (10, None, False)
    assert budget("--task", "actions") == (30, 30.0, True)
    assert budget("--task", "actions", "--epochs", "4") == (4, 30.0, True)
    assert budget("--task", "actions", "--max-minutes", "5", "--no-time-schedule") == (30, 5.0, False)
    assert budget("--task", "actions", "--train-manifest", "m.jsonl") == (10, None, False)  # not the built-in data
    assert budget("--max-minutes", "3", "--time-schedule") == (10, 3.0, True)


def test_every_augmentation_range_is_checked_at_parse_time():
    from crnn.cli.train import get_args_parser as build_parser

    for bad in (["--reverb", "2"], ["--babble", "-0.1"], ["--eq", "1.5"], ["--codec", "x"], ["--narrowband", "3"],
                ["--noise-snr", "20", "5"], ["--babble-snr", "10", "0"], ["--reverb-rt60", "0.6", "0.1"],
                ["--gain", "6", "-6"], ["--reverb-rt60", "0", "1"]):
        with pytest.raises(SystemExit) as e:
            build_parser().parse_args([*bad, "--out", "x"])
        assert e.value.code == 2, bad


def test_waveform_augmentation_on_a_built_in_task_is_refused_not_ignored(tmp_path):
    r = run_cli("train", "--out", tmp_path / "run", "--reverb", "0.5", "--speed-perturb")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--reverb" in r.stderr and "--speed-perturb" in r.stderr and "--train-manifest" in r.stderr
    assert not (tmp_path / "run").exists()  # refused before anything was written

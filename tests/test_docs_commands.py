"""The README's quick starts run as written: each row of "Pick your task" (manifest -> train with validation
-> decode) and the shipped-model commands, as real CLI subprocesses in a fresh folder holding tiny files
with the names the commands use.

Built-in tasks draw 4,000 fresh items an epoch; their train command gets ``--train-size 32 --val-size 16
--epochs 1`` appended so the test takes seconds (the only change to any command).
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
pytestmark = pytest.mark.slow


def section(title: str) -> str:
    start = README.index(f"## {title}")
    end = README.find("\n## ", start + 1)
    return README[start:end if end > 0 else None]


def task_rows() -> list[tuple[str, str, str]]:
    """(task, train command, decode command) of each row of the "Pick your task" table."""
    rows = []
    for line in section("Pick your task").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[1].startswith("`crnn train"):
            commands = [re.match(r"`([^`]+)`", c).group(1) for c in cells[1:3]]
            rows.append((cells[0], *commands))
    return rows


def shipped_commands() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", section("Shipped models"), flags=re.S).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]


def run(command: str, cwd: Path) -> subprocess.CompletedProcess:
    argv = shlex.split(command)
    assert argv[0] == "crnn", command
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "crnn", *argv[1:]], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def write_rows(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def speech_files(folder: Path) -> None:
    import crnn.data.builtin.dtmf as dtmf  # tones stand in for speech: any audio with a transcript will do

    rng = np.random.default_rng(0)
    words = ["one two", "three", "four five", "six"]
    for i, text in enumerate(words):
        wave, sr, _ = dtmf.generate_utterance(rng, sample_rate=16000)
        sf.write(folder / f"u{i}.wav", wave, sr)
    write_rows(folder / "train.jsonl", [{"path": f"u{i}.wav", "text": t} for i, t in enumerate(words)])
    write_rows(folder / "dev.jsonl", [{"path": "u0.wav", "text": words[0]}])
    sf.write(folder / "talk.wav", sf.read(folder / "u1.wav")[0], 16000)


def line_files(folder: Path, names=("lines.jsonl", "dev.jsonl"), test_name="line.png") -> None:
    from PIL import Image

    from crnn.data.builtin.textlines import TextLinesConfig, TextLinesDataset

    ds = TextLinesDataset(6, 3, TextLinesConfig("train", max_chars=12), fresh_each_epoch=False)
    rows = []
    for i in range(6):
        image, text, _ = ds.draw(i)
        Image.fromarray((image[0].numpy() * 255).astype(np.uint8)).save(folder / f"l{i}.png")
        rows.append({"path": f"l{i}.png", "text": text})
    write_rows(folder / names[0], rows[:4])
    write_rows(folder / names[1], rows[4:])
    Image.open(folder / "l5.png").save(folder / test_name)


def clip_files(folder: Path) -> None:
    from crnn.data.builtin.actions import write_action_clips

    manifest = write_action_clips(folder / "clips", 4, seed=1)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    for row in rows:
        row["path"] = f"clips/{row['path']}"
    write_rows(folder / "clips.jsonl", rows[:3])
    write_rows(folder / "dev.jsonl", rows[3:])
    (folder / "clip.mp4").write_bytes((folder / rows[0]["path"]).read_bytes())


def feature_files(folder: Path) -> None:
    rng = np.random.default_rng(0)
    labels = [["take_cup", "pour_milk"], ["take_cup"], ["pour_milk", "stir"], ["stir"]]
    for i in range(4):
        np.save(folder / f"f{i}.npy", rng.normal(size=(60, 2048)).astype(np.float32))
    write_rows(folder / "feats.jsonl", [{"path": f"f{i}.npy", "labels": lab} for i, lab in enumerate(labels)])
    write_rows(folder / "dev.jsonl", [{"path": "f0.npy", "labels": labels[0]}])
    np.save(folder / "clip.npy", rng.normal(size=(60, 2048)).astype(np.float32))


def builtin_files(folder: Path) -> None:
    import crnn.data.builtin.dtmf as dtmf

    wave, sr, _ = dtmf.generate_utterance(np.random.default_rng(5), sample_rate=8000)
    sf.write(folder / "keys.wav", wave, sr)


FILES = {"speech": speech_files, "printed text lines": line_files, "actions": clip_files,
         "precomputed features": feature_files, "a built-in task": builtin_files}


def files_for(task: str):
    return next(make for key, make in FILES.items() if task.startswith(key))


@pytest.mark.parametrize("task, train, decode", task_rows(), ids=[row[0] for row in task_rows()])
def test_pick_your_task_row_runs_as_written(tmp_path, task, train, decode):
    files_for(task)(tmp_path)
    if "--task" in train:
        train += " --train-size 32 --val-size 16 --epochs 1"  # a built-in task: tiny sizes (see the docstring)
    r = run(train, tmp_path)
    assert r.returncode == 0, f"{train}\n{r.stderr[-2000:]}"
    r = run(decode, tmp_path)
    assert r.returncode == 0, f"{decode}\n{r.stderr[-2000:]}"
    path = shlex.split(decode)[-1]
    assert r.stdout.startswith(f"{path}\t"), r.stdout  # one transcript line for the decoded file


def test_the_table_covers_every_modality():
    tasks = " ".join(row[0] for row in task_rows())
    for what in ("speech", "text lines", "actions", "features", "built-in"):
        assert what in tasks


def test_shipped_model_commands_run_as_written(tmp_path):
    commands = shipped_commands()
    assert any(c.startswith("crnn decode --model") for c in commands)
    line_files(tmp_path, names=("my_lines.jsonl", "my_dev.jsonl"))
    for command in commands:
        if command.startswith("crnn train"):
            command += " --epochs 1"  # fine-tuning for one epoch is enough to show it runs
        r = run(command, tmp_path)
        assert r.returncode == 0, f"{command}\n{r.stderr[-2000:]}"
    assert (tmp_path / "runs/mine/best.pt").is_file()
    assert torch.load(tmp_path / "runs/mine/best.pt", weights_only=True)["config"]["frontend"] == "image"

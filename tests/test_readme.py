"""README.md and docs/ as documentation that runs: every ```python block, as written, in a folder holding
tiny versions of the files it names; the figures against the code; the CLI reference against the parsers."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import crnn
from crnn.checkpoint import save_checkpoint
from crnn.data.builtin.actions import actions_tokenizer
from crnn.data.audio.dataset import speech_tokenizer
from crnn.data.builtin.dtmf import dtmf_tokenizer
from test_video_layouts import make_breakfast, make_phoenix

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "datasets").glob("*/*.md"))]
DOCS = {p.relative_to(ROOT).as_posix(): p.read_text(encoding="utf-8") for p in DOC_FILES}
README = "\n".join(DOCS.values())  # every page, for the figures checked against the code
BLOCKS = [(f"{name}:{text.count(chr(10), 0, m.start()) + 2}", m.group(1)) for name, text in DOCS.items()
          for m in re.finditer(r"^```python\n(.*?)^```", text, flags=re.S | re.M)]
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def _save(path: Path, preset: str, tokenizer, **overrides) -> None:
    model = crnn.create_model(preset, vocab_size=len(tokenizer), **overrides)
    model.tokenizer = tokenizer
    save_checkpoint(path, model)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """What the README's snippets expect to find in the working directory (untrained, tiny models)."""
    root = tmp_path_factory.mktemp("readme")
    _save(root / "runs/demo/best.pt", "tiny", dtmf_tokenizer())  # what `crnn demo` writes
    _save(root / "runs/digits/best.pt", "tiny", speech_tokenizer([" ".join(DIGITS)]), sample_rate=16000,
          hidden_size=16, num_layers=1)
    _save(root / "runs/actions/best.pt", "video_tiny", actions_tokenizer())
    from crnn.cli.demo import write_samples
    from crnn.export import export_onnx

    write_samples(root / "runs/demo/samples", 2, seed=1)  # what `crnn demo` writes beside its model
    export_onnx(crnn.load_model(root / "runs/demo/best.pt"), root / "model.onnx")  # `crnn export`
    from crnn.streaming_graph import export_streaming_model_onnx

    uni = crnn.create_model("tiny", vocab_size=len(dtmf_tokenizer()), bidirectional=False, normalize="global")
    uni.tokenizer = dtmf_tokenizer()
    export_streaming_model_onnx(uni, root / "model.streaming.onnx")  # `crnn export` of a --unidirectional model
    rng = np.random.default_rng(0)
    pause = np.zeros(8000, np.float32)
    keys = [sf.read(p, dtype="float32")[0] for p in sorted((root / "runs/demo/samples").glob("*_8k.wav"))]
    sf.write(root / "long.wav", np.concatenate([pause] + [k for _ in range(12) for k in (keys[0], pause)]), 8000)
    sf.write(root / "a.wav", (0.1 * rng.standard_normal(16000)).astype(np.float32), 16000)
    sf.write(root / "b.flac", (0.1 * rng.standard_normal(12000)).astype(np.float32), 16000)
    (root / "words.txt").write_text("\n".join(DIGITS) + "\n")
    from test_trained_model import plain_dialer

    calls = ["5551234", "0800", "911", "42"]  # `crnn.align_long`: a recording and its transcript, a line a call
    sf.write(root / "talk.wav", np.concatenate([np.concatenate([pause, plain_dialer(c, 8000)]) for c in calls]), 8000)
    (root / "talk.txt").write_text("\n".join(calls) + "\n")
    from crnn.decoding.lm import write_arpa
    from crnn.decoding.lm_build import build_kneser_ney

    with open(root / "lm.arpa", "w", encoding="utf-8") as f:
        write_arpa(build_kneser_ney([["one", "two", "three"], ["seven", "eight", "nine"]], order=2), f)
    phoenix = root / "data/phoenix2014-release/phoenix-2014-multisigner"
    make_phoenix(phoenix, rng)  # train and dev; the test split is a copy of dev
    shutil.copytree(phoenix / "features/fullFrame-210x260px/dev", phoenix / "features/fullFrame-210x260px/test")
    shutil.copy(phoenix / "annotations/manual/dev.corpus.csv", phoenix / "annotations/manual/test.corpus.csv")
    breakfast = root / "data/breakfast"
    make_breakfast(breakfast, rng)
    for f in (breakfast / "features").glob("*.npy"):  # MS-TCN ships features (D, T)
        np.save(f, np.load(f).T)
    (breakfast / "splits/train.bundle").rename(breakfast / "splits/train.split1.bundle")
    return root


@pytest.mark.slow
@pytest.mark.parametrize("line,code", BLOCKS, ids=[line for line, _ in BLOCKS])
def test_python_block_runs_as_written(workdir, line, code):
    script = workdir / f"readme_block_{re.sub(r'[^A-Za-z0-9]', '_', line)}.py"
    script.write_text(code)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, script.name], cwd=workdir, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, f"{line} failed:\n{code}\n{r.stderr[-3000:]}"


def test_readme_has_python_blocks():
    assert len(BLOCKS) >= 5


def _millions(model) -> str:
    return f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}"


def test_parameter_counts_match_the_code():
    demo = re.search(r"linear CTC head, ([\d.]+) M parameters", README).group(1)
    assert demo == _millions(crnn.create_model("tiny", vocab_size=len(dtmf_tokenizer())))
    actions = re.search(r"`video_tiny`, ([\d.]+) M parameters", README).group(1)
    assert actions == _millions(crnn.create_model("video_tiny", vocab_size=len(actions_tokenizer())))


def test_cli_reference_is_generated_from_the_parsers():
    from crnn.cli.reference import render_reference

    written = (ROOT / "docs/cli.md").read_text(encoding="utf-8")
    assert written == render_reference(), "docs/cli.md is stale: python -m crnn.cli.reference > docs/cli.md"


def test_every_relative_link_of_the_docs_exists():
    for name, text in DOCS.items():
        base = (ROOT / name).parent
        prose = re.sub(r"`[^`\n]*`", "", re.sub(r"^```.*?^```", "", text, flags=re.S | re.M))  # code is not a link
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", prose):
            assert (base / target).exists(), f"{name} links to {target}, which does not exist"

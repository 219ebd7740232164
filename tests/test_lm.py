"""N-gram LMs: Kneser-Ney building, ARPA round trip and normalisation, the tensor form, `crnn lm build`."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from crnn.decoding.lm import BOS, EOS, SPACE, UNK, ArpaFormatError, TensorLM, read_arpa, write_arpa
from crnn.decoding.lm_build import build_kneser_ney, sentences_from_text

TEXT = [
    "the cat sat on the mat", "the dog sat on the log", "a cat and a dog", "the cat ate the rat",
    "on the mat the cat sat", "a dog and a cat sat", "the rat ran", "the dog ran on the log",
]


def _write(lm, path):
    with open(path, "w", encoding="utf-8") as f:
        write_arpa(lm, f)
    return path


def _contexts(lm):
    """Every context the model holds, plus unseen ones that must back off."""
    ctxs = [(BOS,), ("zebra",), ("the", "zebra"), ("zebra", "the")]
    ctxs += [g for g in lm.probs if len(g) < lm.order and g != (BOS,) or g == (BOS,)]
    return ctxs


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_arpa_round_trip_normalises(tmp_path, order):
    lm = build_kneser_ney([t.split() for t in TEXT], order=order)
    back = read_arpa(_write(lm, tmp_path / "lm.arpa"))
    assert back.order == order and set(back.probs) == set(lm.probs)
    for g, p in lm.probs.items():
        assert back.probs[g] == pytest.approx(p, abs=1e-5)
    vocab = [w for w in back.vocab if w != BOS]
    assert UNK in vocab and EOS in vocab
    for ctx in _contexts(back):
        total = sum(10 ** back.log10_prob(ctx, w) for w in vocab)
        assert total == pytest.approx(1.0, abs=1e-4), ctx
    # Seen continuations are likelier than unseen ones.
    if order >= 2:
        assert back.log10_prob(("the",), "cat") > back.log10_prob(("the",), "and")


def test_a_gzip_compressed_arpa_reads_as_the_plain_file(tmp_path):
    import gzip

    plain = _write(build_kneser_ney([t.split() for t in TEXT], order=3), tmp_path / "lm.arpa")
    packed = tmp_path / "lm.arpa.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    a, b = read_arpa(plain), read_arpa(packed)
    assert a.order == b.order == 3 and a.probs == b.probs and a.bows == b.bows
    (tmp_path / "torn.arpa.gz").write_bytes(packed.read_bytes()[: packed.stat().st_size // 2])
    with pytest.raises(ArpaFormatError, match="torn.arpa.gz: unreadable compressed"):
        read_arpa(tmp_path / "torn.arpa.gz")
    (tmp_path / "plain.arpa.gz").write_bytes(plain.read_bytes())  # named .gz, not compressed
    with pytest.raises(ArpaFormatError, match="plain.arpa.gz: unreadable compressed"):
        read_arpa(tmp_path / "plain.arpa.gz")


def test_tensor_lm_matches_backoff_lookup(tmp_path):
    lm = read_arpa(_write(build_kneser_ney([t.split() for t in TEXT], order=3), tmp_path / "lm.arpa"))
    t = TensorLM(lm)
    sentences = [["the", "cat", "sat", "on", "the", "log"], ["a", "zebra", "ran"], ["the", "the", "the"]]
    for sent in sentences:
        state = torch.tensor([t.bos_state])
        total = 0.0
        for w in sent + [EOS]:
            lp, state = t.score(state, torch.tensor([t.word_id.get(w, t.unk)]))
            total += float(lp)
        assert total == pytest.approx(lm.sentence_log10_prob(sent) * 2.302585093, abs=1e-3)
    # Batched: every (state, word) pair at once equals the one-at-a-time scores.
    states = torch.tensor([t.bos_state, 0, t.bos_state])
    words = torch.tensor([t.word_id["the"], t.word_id["cat"], t.unk])
    lp, _ = t.score(states, words)
    for i in range(3):
        one, _ = t.score(states[i : i + 1], words[i : i + 1])
        assert float(lp[i]) == pytest.approx(float(one))


def test_char_unit_and_bad_files(tmp_path):
    sents = sentences_from_text(["ab  ba", "", "b"], unit="char")
    assert sents == [["a", "b", SPACE, "b", "a"], ["b"]]
    bad = tmp_path / "bad.arpa"
    bad.write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-1.0\ta\n\\end\\\n")
    with pytest.raises(ArpaFormatError, match="bad.arpa"):
        read_arpa(bad)
    with pytest.raises(ArpaFormatError, match="not an ARPA file"):
        read_arpa(_write_text(tmp_path / "text.arpa", "hello world\n"))
    with pytest.raises(ArpaFormatError, match="missing.arpa"):
        read_arpa(tmp_path / "missing.arpa")


def _write_text(path, text):
    path.write_text(text)
    return path


@pytest.mark.slow
def test_cli_lm_build_subprocess(tmp_path):
    corpus = tmp_path / "text.txt"
    corpus.write_text("\n".join(TEXT) + "\n")
    out = subprocess.run(
        [sys.executable, "-m", "crnn", "lm", "build", "--order", "3", str(corpus)],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    arpa = _write_text(tmp_path / "lm.arpa", out.stdout)
    lm = read_arpa(arpa)
    assert lm.order == 3
    vocab = [w for w in lm.vocab if w != BOS]
    assert sum(10 ** lm.log10_prob(("on", "the"), w) for w in vocab) == pytest.approx(1.0, abs=1e-4)
    chars = subprocess.run(
        [sys.executable, "-m", "crnn", "lm", "build", "--order", "4", "--unit", "char", str(corpus),
         "-o", str(tmp_path / "chars.arpa")],
        capture_output=True, text=True, timeout=120,
    )
    assert chars.returncode == 0, chars.stderr
    assert SPACE in read_arpa(tmp_path / "chars.arpa").vocab
    missing = subprocess.run(
        [sys.executable, "-m", "crnn", "lm", "build", str(tmp_path / "nope.txt")], capture_output=True, text=True,
        timeout=120,
    )
    assert missing.returncode != 0 and "nope.txt" in missing.stderr


def test_lm_build_failures_are_error_lines(tmp_path):
    from cli_helpers import run_cli

    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    (tmp_path / "empty.txt").write_text("\n\n")
    (tmp_path / "ok.txt").write_text("one two\n")
    for argv, code, message in (
        (["missing.txt"], 1, "error: missing.txt: cannot read"),
        (["latin1.txt"], 1, "error: latin1.txt: not UTF-8 text"),
        (["empty.txt"], 1, "error: empty.txt: no text"),
        (["ok.txt", "--order", "0"], 2, "--order: expected an integer >= 1"),
        (["ok.txt", "-o", "no/such/dir/lm.arpa"], 1, "error: no/such/dir/lm.arpa: cannot write"),
    ):
        r = run_cli("lm", "build", *argv, cwd=tmp_path)
        assert r.returncode == code and message in r.stderr and "Traceback" not in r.stderr, (argv, r.stderr)

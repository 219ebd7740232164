"""Transcript policies for any language (--text-norm) and SentencePiece subword units (--units bpe):
normalisation, exact round trips, storage in the checkpoint, and decoding with word boundaries from ``▁``."""
import io
import json

import numpy as np
import pytest
import torch

from cli_helpers import TINY, run_cli
from corpus_fixtures import audiofolder, utterances

from crnn.decoding import Decoder, DecodeOptions
from crnn.decoding.lm import write_arpa
from crnn.decoding.lm_build import build_kneser_ney
from crnn.tokenizer import SubwordTokenizer, Tokenizer, UnknownSymbolError, build_tokenizer, normalize_text

GERMAN = ["Grüße aus München!", "Der Fuß ist groß.", "Äpfel, Öl und Übermut"]
RUSSIAN = ["Привет, мир!", "Ёжик в тумане.", "Москва — столица России"]
CHINESE = ["你好，世界！", "我们今天学习中文。", "北京欢迎你"]
SPOKEN = ["the cat sat on the mat", "the dog sat on the log", "a cat and a dog met on the mat",
          "the dog ran to the cat", "on the mat sat a cat", "the cat ran to the dog", "a dog sat on a log",
          "the cat and the dog ran"]


def test_text_policies():
    assert normalize_text("Don't STOP, 2 go!", "english") == "don't stop go"
    assert [normalize_text(t, "basic") for t in GERMAN] == ["grüße aus münchen", "der fuß ist groß",
                                                             "äpfel öl und übermut"]
    assert [normalize_text(t, "basic") for t in RUSSIAN] == ["привет мир", "ёжик в тумане", "москва столица россии"]
    assert [normalize_text(t, "basic") for t in CHINESE] == ["你好 世界", "我们今天学习中文", "北京欢迎你"]
    assert normalize_text("l’homme 'cité' Ｆｕｌｌ", "basic") == "l'homme cité full"  # NFKC folds full-width
    assert normalize_text("  As  Written, Ünïcode! ", "none") == "As Written, Ünïcode!"
    with pytest.raises(ValueError, match="text_norm must be one of"):
        normalize_text("x", "french")


def test_english_policy_drops_other_scripts_while_basic_keeps_them():
    assert build_tokenizer(GERMAN, text_norm="english").encode("Grüße") != []
    assert "ü" not in build_tokenizer(GERMAN, text_norm="english").symbols
    tok = build_tokenizer(GERMAN + RUSSIAN + CHINESE, text_norm="basic")
    assert {"ü", "ß", "ё", "ж", "你", "京"} <= set(tok.symbols)
    for text in GERMAN + RUSSIAN + CHINESE:
        assert tok.decode(tok.encode(text)) == normalize_text(text, "basic")
    assert tok.split("北京欢迎你") == list("北京欢迎你")  # no spaces: every character is a unit
    with pytest.raises(UnknownSymbolError, match="'ж'"):
        build_tokenizer(GERMAN, text_norm="basic").encode("жук")


def test_auto_policy_and_older_checkpoints():
    assert build_tokenizer(["Hello there."]).text_norm == "english"
    assert build_tokenizer(["0123*#"]).text_norm == "none"
    assert build_tokenizer(RUSSIAN).text_norm == "none"  # other scripts are not forced into a-z
    old = {"kind": "char", "symbols": list(" 'ab"), "lowercase": True, "keep": "a-z' "}  # before text_norm
    assert Tokenizer.from_dict(old).text_norm == "english"
    assert Tokenizer.from_dict(old).normalize("Ab, Ä!") == "ab"


@pytest.mark.parametrize("units", ["bpe", "unigram"])
def test_subword_round_trip_is_exact_and_survives_a_checkpoint(units):
    texts = SPOKEN + GERMAN + RUSSIAN + CHINESE
    tok = build_tokenizer(texts, text_norm="basic", units=units, bpe_size=120)
    assert isinstance(tok, SubwordTokenizer) and tok.units == units
    for text in texts:
        ids = tok.encode(text)
        assert 0 not in ids and max(ids) < len(tok)
        assert tok.decode(ids) == normalize_text(text, "basic")
    assert tok.decode(tok.encode("the dog and the cat")) == "the dog and the cat"  # unseen sentence
    buf = io.BytesIO()
    torch.save({"tokenizer": tok.to_dict()}, buf)
    buf.seek(0)
    restored = Tokenizer.from_dict(torch.load(buf, weights_only=True)["tokenizer"])
    assert restored.symbols == tok.symbols and restored.encode(texts[3]) == tok.encode(texts[3])
    with pytest.raises(UnknownSymbolError, match="'ω'"):
        tok.encode("the ω cat")


def test_bpe_size_too_small_is_explained():
    with pytest.raises(ValueError, match="smaller than the .* distinct characters"):
        build_tokenizer(RUSSIAN, text_norm="basic", units="bpe", bpe_size=5)


# -- decoding with subword units --------------------------------------------------------------------------
def _spell(tok, pieces_per_frame, T_extra=1):
    """Log-posteriors (1, T, V) that emit each entry of ``pieces_per_frame`` (dict id -> prob) for two
    frames followed by a blank frame."""
    V = len(tok)
    frames = []
    for probs in pieces_per_frame:
        row = np.full(V, 1e-4)
        for i, p in probs.items():
            row[i] = p
        row[0] = max(1e-4, 1.0 - sum(probs.values()))
        frames += [row, row, np.eye(V)[0] * 0.99 + 1e-4]
    lp = torch.log(torch.tensor(np.array(frames), dtype=torch.float32))
    return lp.log_softmax(-1)[None], torch.tensor([lp.size(0)])


@pytest.fixture(scope="module")
def spoken_tok():
    return build_tokenizer(SPOKEN, text_norm="basic", units="bpe", bpe_size=60)


@pytest.fixture(scope="module")
def spoken_lm(tmp_path_factory):
    path = tmp_path_factory.mktemp("lm") / "words.arpa"
    with open(path, "w") as f:
        write_arpa(build_kneser_ney([s.split() for s in SPOKEN], order=3), f)
    return path


def test_subword_words_come_from_word_start_pieces(spoken_tok):
    tok = spoken_tok
    ids = tok.encode("the cat sat on the mat")
    lp, lens = _spell(tok, [{i: 0.9} for i in ids])
    hyp = Decoder(tok, DecodeOptions(), frame_shift=0.04)(lp, lens)[0][0]
    assert hyp.text == "the cat sat on the mat"
    assert [w["word"] for w in hyp.words] == ["the", "cat", "sat", "on", "the", "mat"]
    starts = [w["start"] for w in hyp.words]
    assert starts == sorted(starts) and all(w["end"] > w["start"] for w in hyp.words)
    assert all(0 < w["confidence"] <= 1 for w in hyp.words)


def test_subword_lm_lexicon_and_hotwords_decide_an_ambiguous_word(spoken_tok, spoken_lm, tmp_path):
    tok = spoken_tok
    cat, dog = tok.encode("cat"), tok.encode("dog")
    assert len(cat) == 1 and len(dog) == 1  # whole-word pieces in this vocabulary
    frames = [{i: 0.9} for i in tok.encode("the")]
    frames.append({dog[0]: 0.5, cat[0]: 0.4})  # acoustics lean to "dog" ...
    frames += [{i: 0.9} for i in tok.encode("sat on the mat")]
    lp, lens = _spell(tok, frames)
    assert Decoder(tok, DecodeOptions())(lp, lens)[0][0].text == "the dog sat on the mat"
    # ... the word LM ("the dog sat" is as likely as "the cat sat" there) plus a hotword, or a lexicon
    # without "dog", each decide for "cat"; words are split at the pieces' ▁ marks.
    lexicon = tmp_path / "lexicon.txt"
    lexicon.write_text("\n".join(w for w in sorted({w for s in SPOKEN for w in s.split()}) if w != "dog") + "\n")
    for opts in (DecodeOptions(beam_size=8, lexicon=str(lexicon)),
                 DecodeOptions(beam_size=8, lm=str(spoken_lm), lexicon=str(lexicon), alpha=0.5, beta=1.0),
                 DecodeOptions(beam_size=8, lm=str(spoken_lm), hotwords=("cat",), hotword_weight=2.0)):
        hyp = Decoder(tok, opts, frame_shift=0.04)(lp, lens)[0][0]
        assert hyp.text == "the cat sat on the mat", opts
        assert [w["word"] for w in hyp.words] == "the cat sat on the mat".split()


def test_lexicon_holds_every_sampled_spelling(spoken_tok):
    from crnn.decoding.constraints import Lexicon

    lex = Lexicon(["mat", "dog"], spoken_tok)
    for word in ("mat", "dog"):
        for ids in spoken_tok.spellings(word):
            node = 0
            for t in ids:
                node = int(lex.next_node(node, t))
                assert node > 0
            assert lex.words[int(lex.word[node])] == word


def test_large_lexicon_is_sparse_and_spells_every_word(spoken_tok):
    import random

    from crnn.decoding.constraints import Lexicon

    letters = sorted({c for s in SPOKEN for c in s if c.isalpha()})
    rng = random.Random(0)
    words = sorted({"".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(3000)})
    lex = Lexicon(words, spoken_tok)
    assert lex.words == words
    # A trie: every node but the root has exactly one incoming edge, kept sparsely (not nodes x V).
    assert lex.edge_keys.numel() == lex.num_nodes - 1 and bool((lex.edge_keys[1:] > lex.edge_keys[:-1]).all())
    many = spoken_tok.spellings_many(words[:50])
    for word, found in zip(words[:50], many):
        assert found == spoken_tok.spellings(word)  # a word's spellings do not depend on its neighbours
        for ids in found:
            node = 0
            for t in ids:
                node = int(lex.next_node(node, t))
                assert node > 0
            assert lex.words[int(lex.word[node])] == word
    assert int(lex.next_node(0, 0)) == -1  # the blank leads nowhere


# -- through the CLI --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_cli_trains_and_evaluates_german_russian_chinese(tmp_path):
    texts = GERMAN + RUSSIAN + CHINESE
    train = audiofolder(tmp_path / "train", utterances(9, seed=5, texts=texts), "jsonl")
    out = tmp_path / "run"
    r = run_cli("train", "--train-manifest", train, "--val-manifest", train, "--text-norm", "basic", "--out", out,
                "--epochs", "1", "--model", "tiny", "--batch-size", "3", "--warmup-steps", "1", *TINY)
    assert r.returncode == 0, r.stderr
    info = json.loads(run_cli("info", out / "best.pt").stdout)
    assert info["tokenizer"] == {"units": "char", "text_norm": "basic", "size": info["tokenizer"]["size"]}
    assert {"ü", "ж", "你"} <= set(info["vocabulary"])
    r = run_cli("eval", train, "--checkpoint", out / "best.pt", "-o", tmp_path / "hyps.jsonl")
    assert r.returncode == 0, r.stderr and "CER" in r.stdout
    refs = {json.loads(line)["reference"] for line in open(tmp_path / "hyps.jsonl")}
    assert refs == {normalize_text(t, "basic") for t in texts}


@pytest.mark.slow
def test_cli_bpe_model_trains_stores_its_units_and_decodes_with_lm_and_lexicon(tmp_path, spoken_lm):
    train = audiofolder(tmp_path / "train", utterances(8, seed=6, texts=SPOKEN), "csv")
    out = tmp_path / "run"
    r = run_cli("train", "--train-manifest", train, "--val-manifest", train, "--units", "bpe", "--bpe-size", "40",
                "--out", out, "--epochs", "1", "--model", "tiny", "--batch-size", "4", "--warmup-steps", "1", *TINY)
    assert r.returncode == 0, r.stderr
    assert not list(out.glob("*.model")) and not list(out.glob("*.vocab"))  # no side files
    info = json.loads(run_cli("info", out / "best.pt").stdout)
    assert info["tokenizer"]["units"] == "bpe" and info["tokenizer"]["text_norm"] == "english"
    assert any(s.startswith("\u2581") for s in info["vocabulary"])
    lexicon = tmp_path / "lexicon.txt"
    lexicon.write_text("\n".join(sorted({w for s in SPOKEN for w in s.split()})) + "\n")
    r = run_cli("eval", train, "--checkpoint", out / "best.pt", "--beam", "4", "--lm", spoken_lm,
                "--lexicon", lexicon, "-o", tmp_path / "hyps.jsonl")
    assert r.returncode == 0, r.stderr
    allowed = set(lexicon.read_text().split())
    for line in open(tmp_path / "hyps.jsonl"):
        row = json.loads(line)
        assert set(row["hypothesis"].split()) <= allowed  # every decoded word is a lexicon word
        assert row["reference"] in SPOKEN


def test_word_units_make_each_normalised_word_one_token_and_survive_a_checkpoint():
    tok = build_tokenizer(["Three seven, nine.", "one TWO"], "char", "auto", "word")
    assert tok.units == "word" and tok.text_norm == "english"
    assert tok.symbols == ["nine", "one", "seven", "three", "two"]
    ids = tok.encode("Nine, one!")
    assert ids == [1, 2] and tok.decode(ids) == "nine one"
    with pytest.raises(UnknownSymbolError, match="eight"):
        tok.encode("eight")
    again = Tokenizer.from_dict(tok.to_dict())
    assert again.units == "word" and again.encode("three two") == tok.encode("three two")
    # Label vocabularies (actions, glosses) stay labels: taken as written, no normalisation.
    labels = build_tokenizer(["Wave_Left clap"], "label")
    assert labels.units == "label" and labels.encode("Wave_Left") == [1]


def test_word_units_refuse_a_lexicon_with_the_reason():
    from crnn.decoding.constraints import Lexicon

    tok = build_tokenizer(["one two"], "char", "english", "word")
    with pytest.raises(ValueError, match="whole words"):
        Lexicon(["one"], tok)


def test_cli_word_model_trains_stores_its_units_and_decodes_only_vocabulary_words(tmp_path):
    train = audiofolder(tmp_path / "train", utterances(8, seed=7, texts=SPOKEN), "csv")
    out = tmp_path / "run"
    r = run_cli("train", "--train-manifest", train, "--val-manifest", train, "--units", "word", "--out", out,
                "--epochs", "1", "--model", "tiny", "--batch-size", "4", "--warmup-steps", "1", *TINY)
    assert r.returncode == 0, r.stderr
    info = json.loads(run_cli("info", out / "best.pt").stdout)
    assert info["tokenizer"]["units"] == "word"
    assert set(info["vocabulary"]) == {w for s in SPOKEN for w in normalize_text(s, "english").split()}
    r = run_cli("eval", train, "--checkpoint", out / "best.pt", "-o", tmp_path / "hyps.jsonl")
    assert r.returncode == 0, r.stderr
    for line in open(tmp_path / "hyps.jsonl"):
        row = json.loads(line)
        assert set(row["hypothesis"].split()) <= set(info["vocabulary"])
        assert row["reference"] == normalize_text(row["reference"], "english")
    lexicon = tmp_path / "words.txt"
    lexicon.write_text("cat\ndog\n")
    r = run_cli("eval", train, "--checkpoint", out / "best.pt", "--beam", "2", "--lexicon", lexicon)
    assert r.returncode == 1 and "whole words" in r.stderr and "Traceback" not in r.stderr

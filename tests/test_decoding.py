"""Batched CTC prefix beam search: exactness against brute force, padding, pruning, LM fusion,
lexicon, hotwords, grammar, timestamps, CTM, the Decoder interface and agreement with peers."""
from __future__ import annotations

import argparse
import dataclasses
import math
import warnings
import importlib.util
import itertools

import pytest
import torch

from crnn.tokenizer import Tokenizer
from crnn.cli.decode_args import add_decode_args, options_from_args
from crnn.decoding import DecodeOptions, Decoder, ctc_beam_search, ctc_greedy, format_ctm
from crnn.decoding.lm import write_arpa
from crnn.decoding.lm_build import build_kneser_ney


# -- helpers -----------------------------------------------------------------------------------
def brute_force(lp: torch.Tensor) -> dict[tuple[int, ...], float]:
    """Every labeling of (T, V) log-probs with its exact log-probability, summing all paths."""
    T, V = lp.shape
    per_label: dict[tuple[int, ...], list[float]] = {}
    for path in itertools.product(range(V), repeat=T):
        score = float(sum(lp[t, p] for t, p in enumerate(path)))
        label = tuple(p for i, p in enumerate(path) if p != 0 and (i == 0 or path[i - 1] != p))
        per_label.setdefault(label, []).append(score)
    return {k: float(torch.logsumexp(torch.tensor(v, dtype=torch.float64), 0)) for k, v in per_label.items()}


def peaked(B: int, T: int, V: int, seed: int = 0, boost: float = 9.0) -> torch.Tensor:
    """Posteriors like a trained model's: mostly blank, tokens for 1-3 frames."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, T, V, generator=g)
    label = torch.zeros(B, T, dtype=torch.long)
    for b in range(B):
        t = 0
        while t < T:
            t += int(torch.randint(1, 4, (1,), generator=g))
            run = int(torch.randint(1, 4, (1,), generator=g))
            label[b, t : t + run] = int(torch.randint(1, V, (1,), generator=g))
            t += run
    logits.scatter_add_(2, label[..., None], torch.full((B, T, 1), boost))
    return logits.log_softmax(-1)


CHARS = Tokenizer(list(" acdeghot"), kind="char")


def spell(frames: list[dict[str, float]], tok: Tokenizer = CHARS, floor: float = 1e-4) -> torch.Tensor:
    """(T, V) log-probs from per-frame {symbol: prob} dicts ("_" is the blank); the rest share ``floor``."""
    V = len(tok)
    out = torch.full((len(frames), V), floor)
    for t, f in enumerate(frames):
        for sym, p in f.items():
            out[t, 0 if sym == "_" else tok.symbols.index(sym) + 1] = p
    return (out / out.sum(1, keepdim=True)).log()


def word_frames(word: str, **alts: dict[str, float]) -> list[dict[str, float]]:
    """Frames spelling ``word`` (each char then a blank); ``alts[i]`` replaces char i's frame."""
    frames = []
    for i, c in enumerate(word):
        frames.append(alts.get(f"c{i}", {c: 0.97}))
        frames.append({"_": 0.97})
    return frames


def texts(nbest) -> list[str]:
    return [h.text for h in nbest[0]]


# -- exactness ---------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
def test_wide_beam_is_exact_against_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    T, V = 5, 4
    lp = (torch.randn(T, V, generator=g) * 1.5).log_softmax(-1)
    ref = sorted(brute_force(lp).items(), key=lambda kv: -kv[1])
    hyps = ctc_beam_search(lp[None], torch.tensor([T]), beam_size=128, nbest=4)[0]
    assert len(hyps) == 4
    for h, (label, score) in zip(hyps, ref):
        assert tuple(h.tokens) == label
        assert h.score == pytest.approx(score, abs=1e-4)


def test_best_labeling_differs_from_best_path():
    # Best path is all blanks ("" with 0.25), but "a" collects 0.39 over three paths.
    lp = torch.tensor([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]]).log()
    ref = brute_force(lp)
    greedy = ctc_greedy(lp[None], torch.tensor([2]))[0]
    hyp = ctc_beam_search(lp[None], torch.tensor([2]), beam_size=8)[0][0]
    assert greedy.tokens == []
    assert hyp.tokens == [1]
    assert hyp.score == pytest.approx(ref[(1,)], abs=1e-5) and ref[(1,)] > ref[()]


def test_repeated_tokens_need_a_blank():
    lp = spell([{"a": 0.9}, {"_": 0.9}, {"a": 0.9}, {"a": 0.9}])
    hyp = ctc_beam_search(lp[None], torch.tensor([4]), beam_size=8)[0][0]
    assert CHARS.decode(hyp.tokens) == "aa"
    assert [s for s, _ in hyp.spans] == [0, 2] and hyp.spans[1] == (2, 3)


def test_beam_one_equals_greedy_on_peaked_posteriors():
    lp = peaked(4, 60, 6, seed=1)
    lengths = torch.tensor([60, 41, 13, 60])
    greedy = ctc_greedy(lp, lengths)
    beam = ctc_beam_search(lp, lengths, beam_size=1)
    assert [g.tokens for g in greedy] == [b[0].tokens for b in beam]
    dec = Decoder(CHARS, DecodeOptions(beam_size=1))
    out = dec(peaked(2, 30, len(CHARS), seed=2), torch.tensor([30, 20]))
    ref = ctc_greedy(peaked(2, 30, len(CHARS), seed=2), torch.tensor([30, 20]))
    assert [o[0].tokens for o in out] == [r.tokens for r in ref]


def test_padding_changes_nothing():
    lp = peaked(3, 40, 7, seed=3)
    lengths = torch.tensor([40, 25, 9])
    batch = ctc_beam_search(lp, lengths, beam_size=6, nbest=3)
    for b in range(3):
        n = int(lengths[b])
        alone = ctc_beam_search(lp[b : b + 1, :n], torch.tensor([n]), beam_size=6, nbest=3)[0]
        garbage = torch.randn(1, 17, 7).log_softmax(-1)
        padded = ctc_beam_search(torch.cat([lp[b : b + 1, :n], garbage], 1), torch.tensor([n]), beam_size=6, nbest=3)[0]
        for x, y, z in zip(batch[b], alone, padded):
            assert x.tokens == y.tokens == z.tokens
            assert x.spans == y.spans == z.spans
            assert x.score == pytest.approx(y.score, abs=1e-4) and z.score == pytest.approx(y.score, abs=1e-4)


def test_empty_inputs_give_empty_hypotheses():
    out = ctc_beam_search(torch.zeros(2, 0, 5), torch.tensor([0, 0]), beam_size=4)
    assert [[h.tokens for h in hs] for hs in out] == [[[]], [[]]]
    lp = peaked(2, 10, 5)
    out = ctc_beam_search(lp, torch.tensor([10, 0]), beam_size=4, nbest=2)
    assert out[1][0].tokens == [] and out[1][0].score == 0.0 and out[0][0].tokens


def test_pruning_and_blank_skip_keep_peaked_results():
    lp = peaked(5, 80, 12, seed=4, boost=12.0)
    lengths = torch.tensor([80, 77, 50, 33, 80])
    exact = ctc_beam_search(lp, lengths, beam_size=8)
    fast = ctc_beam_search(lp, lengths, beam_size=8, token_prune=4, blank_skip=0.999)
    assert (lp[..., 0].exp() > 0.999).float().mean() > 0.2  # frames really are skipped
    for e, f in zip(exact, fast):
        assert e[0].tokens == f[0].tokens
        assert e[0].score == pytest.approx(f[0].score, abs=0.05)


def test_wide_beam_128_runs_and_nbest_is_distinct_and_sorted():
    lp = (torch.randn(2, 30, 6) * 2).log_softmax(-1)
    hyps = ctc_beam_search(lp, torch.tensor([30, 30]), beam_size=128, nbest=20)
    for h in hyps:
        assert len(h) == 20
        assert len({tuple(x.tokens) for x in h}) == 20
        assert all(a.score >= b.score for a, b in zip(h, h[1:]))


# -- LM fusion, lexicon, hotwords, grammar ------------------------------------------------------
@pytest.fixture
def word_lm(tmp_path):
    text = ["the cat", "a cat", "the dog", "the cat got a dog", "a dog ate the cat"] * 3
    path = tmp_path / "words.arpa"
    with path.open("w") as f:
        write_arpa(build_kneser_ney([t.split() for t in text], order=3), f)
    return str(path)


def the_cet():
    """Acoustics that say 'the cet' a bit more than 'the cat' (but the letters are all in CHARS)."""
    frames = word_frames("the") + [{" ": 0.97}] + word_frames("cat", c1={"e": 0.55, "a": 0.44})
    return spell(frames)


def test_lm_weight_zero_changes_nothing(word_lm):
    lp = peaked(3, 50, len(CHARS), seed=5, boost=4.0)
    lengths = torch.tensor([50, 31, 44])
    plain = Decoder(CHARS, DecodeOptions(beam_size=8, nbest=3))(lp, lengths)
    # lm_unit "token" scores every token: with alpha = beta = 0 nothing may move.
    with_lm = Decoder(CHARS, DecodeOptions(beam_size=8, nbest=3, lm=word_lm, alpha=0.0, beta=0.0, lm_unit="token"))(
        lp, lengths
    )
    for p, q in zip(plain, with_lm):
        assert [h.tokens for h in p] == [h.tokens for h in q]
        assert [h.score for h in p] == pytest.approx([h.score for h in q], abs=1e-5)


def test_word_lm_flips_a_close_call(word_lm):
    lp = the_cet()
    L = torch.tensor([lp.size(0)])
    assert texts(Decoder(CHARS, DecodeOptions(beam_size=8))(lp[None], L)) == ["the cet"]
    dec = Decoder(CHARS, DecodeOptions(beam_size=8, lm=word_lm, alpha=1.0, beta=0.0))
    assert dec.lm_unit == "word"
    out = dec(lp[None], L)[0][0]
    assert out.text == "the cat"
    assert out.score > dec(lp[None], L)[0][0].score - 1e-6  # deterministic


def test_char_lm_is_applied_per_token(tmp_path):
    path = tmp_path / "chars.arpa"
    with path.open("w") as f:
        write_arpa(build_kneser_ney([list("the cat".replace(" ", "_"))] * 5, order=3), f)
    text = path.read_text().replace(" _", " <space>").replace("\t_", "\t<space>")
    path.write_text(text)
    dec = Decoder(CHARS, DecodeOptions(beam_size=8, lm=str(path), alpha=1.0, beta=0.0))
    assert dec.lm_unit == "token"
    lp = the_cet()
    assert dec(lp[None], torch.tensor([lp.size(0)]))[0][0].text == "the cat"


def test_lexicon_restricts_output_to_its_words(tmp_path):
    lex = tmp_path / "words.txt"
    lex.write_text("the\ncat\ndog\n")
    lp = the_cet()
    out = Decoder(CHARS, DecodeOptions(beam_size=8, nbest=2, lexicon=str(lex)))(lp[None], torch.tensor([lp.size(0)]))[0]
    assert out[0].text == "the cat"
    words = {"the", "cat", "dog"}
    for h in out:
        assert set(h.text.split()) <= words
    # Random acoustics still give only lexicon words.
    rnd = peaked(3, 40, len(CHARS), seed=6, boost=2.0)
    for hyps in Decoder(CHARS, DecodeOptions(beam_size=16, nbest=4, lexicon=str(lex)))(rnd, torch.tensor([40, 40, 30])):
        for h in hyps:
            assert set(h.text.split()) <= words and "  " not in h.text and not h.text.startswith(" ")


def test_hotwords_flip_a_close_call(tmp_path):
    lp = the_cet()
    L = torch.tensor([lp.size(0)])
    assert texts(Decoder(CHARS, DecodeOptions(beam_size=8))(lp[None], L)) == ["the cet"]
    assert texts(Decoder(CHARS, DecodeOptions(beam_size=8, hotwords=("cat",), hotword_weight=1.0))(lp[None], L)) == ["the cat"]
    f = tmp_path / "hot.txt"
    f.write_text("dog\ncat\n")
    args = _parse(["--beam", "8", "--hotwords", str(f)])
    assert texts(Decoder(CHARS, options_from_args(args))(lp[None], L)) == ["the cat"]
    # An unfinished hotword earns nothing: "ca" alone is not boosted into the output.
    plain = Decoder(CHARS, DecodeOptions(beam_size=8))(lp[None], L)[0][0]
    partial = Decoder(CHARS, DecodeOptions(beam_size=8, hotwords=("catch",)))(lp[None], L)[0][0]
    assert partial.text == plain.text and partial.score == pytest.approx(plain.score, abs=1e-5)


def test_label_grammar_allows_only_listed_successors(tmp_path):
    labels = Tokenizer(["pour", "stir", "cut", "take"], kind="label")
    g = tmp_path / "grammar.txt"
    g.write_text("<s> take\ntake cut pour\ncut stir </s>\npour stir\nstir </s>\n")
    frames = [{"take": 0.9}, {"_": 0.9}, {"stir": 0.6, "cut": 0.35}, {"_": 0.9}, {"pour": 0.9}]
    lp = spell(frames, labels)
    L = torch.tensor([len(frames)])
    assert texts(Decoder(labels, DecodeOptions(beam_size=8))(lp[None], L)) == ["take stir pour"]
    out = Decoder(labels, DecodeOptions(beam_size=8, nbest=3, grammar=str(g)))(lp[None], L)[0]
    allowed = {("take", "cut"), ("take", "pour"), ("cut", "stir"), ("pour", "stir")}
    for h in out:
        seq = h.text.split()
        assert seq[0] == "take" and seq[-1] in ("cut", "stir")
        assert all(pair in allowed for pair in zip(seq, seq[1:]))
    assert out[0].text.startswith("take cut")  # "stir" was likelier, but may not follow "take"
    g.write_text("take nosuchlabel\n")
    with pytest.raises(ValueError, match="nosuchlabel"):
        Decoder(labels, DecodeOptions(beam_size=4, grammar=str(g)))


def test_label_lm_scores_every_label(tmp_path):
    labels = Tokenizer(["pour", "stir", "cut", "take"], kind="label")
    path = tmp_path / "labels.arpa"
    with path.open("w") as f:
        write_arpa(build_kneser_ney([["take", "cut", "pour"]] * 5 + [["take", "stir"]], order=2), f)
    frames = [{"take": 0.9}, {"_": 0.9}, {"stir": 0.6, "cut": 0.35}, {"_": 0.9}, {"pour": 0.9}]
    lp = spell(frames, labels)
    L = torch.tensor([len(frames)])
    dec = Decoder(labels, DecodeOptions(beam_size=8, lm=str(path), alpha=1.0, beta=0.0))
    assert dec.lm_unit == "token"
    assert texts(dec(lp[None], L)) == ["take cut pour"]
    assert texts(Decoder(labels, DecodeOptions(beam_size=8, lm=str(path), alpha=0.0, beta=0.0))(lp[None], L)) == [
        "take stir pour"
    ]


# -- timestamps, CTM, options ------------------------------------------------------------------
def test_word_timestamps_confidence_and_ctm():
    frames = [{"_": 0.9}] * 3 + word_frames("cat") + [{" ": 0.9}] + word_frames("dog") + [{"_": 0.9}] * 2
    lp = spell(frames)
    hyp = Decoder(CHARS, DecodeOptions(beam_size=4), frame_shift=0.04)(lp[None], torch.tensor([len(frames)]))[0][0]
    assert hyp.text == "cat dog"
    assert [w["word"] for w in hyp.words] == ["cat", "dog"]
    cat, dog = hyp.words
    assert cat["start"] == pytest.approx(3 * 0.04) and cat["end"] == pytest.approx(8 * 0.04)
    assert dog["start"] == pytest.approx(10 * 0.04) and dog["end"] == pytest.approx(15 * 0.04)
    assert 0.9 < cat["confidence"] <= 1.0
    lines = format_ctm("utt1", hyp).splitlines()
    assert len(lines) == 2
    utt, ch, start, dur, word, conf = lines[1].split()
    assert (utt, ch, word) == ("utt1", "1", "dog")
    assert float(start) == pytest.approx(0.4) and float(dur) == pytest.approx(0.2) and 0 < float(conf) <= 1


def _parse(argv):
    p = argparse.ArgumentParser()
    add_decode_args(p)
    return p.parse_args(argv)


def test_options_from_args_and_validation():
    o = options_from_args(_parse(["--beam", "10", "--nbest", "3", "--alpha", "0.7", "--beta", "2",
                                  "--hotwords", "new york, cat", "--token-prune", "8", "--blank-skip", "0.999"]))
    assert o == DecodeOptions(beam_size=10, nbest=3, alpha=0.7, beta=2.0, hotwords=("new york", "cat"),
                              token_prune=8, blank_skip=0.999)
    with pytest.raises(Exception):
        o.beam_size = 3  # frozen
    with pytest.raises(ValueError, match="nbest"):
        Decoder(CHARS, DecodeOptions(beam_size=2, nbest=3))
    with pytest.raises(ValueError, match="missing.arpa"):
        Decoder(CHARS, DecodeOptions(beam_size=2, lm="missing.arpa"))


# -- peers and devices -------------------------------------------------------------------------
@pytest.mark.skipif(importlib.util.find_spec("flashlight") is None, reason="flashlight-text not installed")
def test_agrees_with_torchaudio_flashlight_decoder():
    from torchaudio.models.decoder import ctc_decoder

    V = 8
    tokens = ["-"] + [chr(97 + i) for i in range(V - 1)]
    lp = peaked(8, 60, V, seed=7, boost=6.0)
    lengths = torch.full((8,), 60)
    # The blank doubles as flashlight's silence token, so it inserts no extra symbols.
    ref = ctc_decoder(lexicon=None, tokens=tokens, lm=None, beam_size=16, blank_token="-", sil_token="-",
                      beam_threshold=1000.0, log_add=True)(lp, lengths)
    ours = ctc_beam_search(lp, lengths, beam_size=16)
    for r, o in zip(ref, ours):
        assert o[0].tokens == r[0].tokens.tolist()
        # Prefix search sums blank- and token-ending paths; flashlight's score can only be lower.
        assert o[0].score >= r[0].score - 1e-3


def _scorer_setups(tmp_path, word_lm):
    """(name, tokenizer, options, log-probs, lengths) for every scorer the decoder has, and their mixes."""
    lex = tmp_path / "w.txt"
    lex.write_text("the\ncat\ndog\ngot\na\n")
    char_lm = tmp_path / "chars.arpa"
    with char_lm.open("w") as f:
        write_arpa(build_kneser_ney([list("the cat got a dog".replace(" ", "_"))] * 5, order=3), f)
    char_lm.write_text(char_lm.read_text().replace(" _", " <space>").replace("\t_", "\t<space>"))
    labels = Tokenizer(["pour", "stir", "cut", "take"], kind="label")
    grammar = tmp_path / "grammar.txt"
    grammar.write_text("<s> take\ntake cut pour\ncut stir </s>\npour stir\nstir </s>\n")
    label_lm = tmp_path / "labels.arpa"
    with label_lm.open("w") as f:
        write_arpa(build_kneser_ney([["take", "cut", "pour"]] * 5 + [["take", "stir"]], order=2), f)
    chars = peaked(6, 120, len(CHARS), seed=8, boost=4.0), torch.tensor([120, 100, 80, 120, 7, 64])
    acts = peaked(4, 40, len(labels), seed=9, boost=3.0), torch.tensor([40, 33, 12, 40])
    return [
        ("plain beam 32", CHARS, DecodeOptions(beam_size=32, nbest=4), *chars),
        ("pruned", CHARS, DecodeOptions(beam_size=16, token_prune=4, blank_skip=0.99), *chars),
        ("word LM", CHARS, DecodeOptions(beam_size=16, nbest=2, lm=word_lm, alpha=0.8, beta=0.5), *chars),
        ("char LM", CHARS, DecodeOptions(beam_size=16, lm=str(char_lm), alpha=0.5, beta=0.2), *chars),
        ("lexicon + hotword", CHARS, DecodeOptions(beam_size=16, nbest=2, lexicon=str(lex), hotwords=("dog",)), *chars),
        ("lexicon + word LM", CHARS, DecodeOptions(beam_size=16, lexicon=str(lex), lm=word_lm, alpha=0.5), *chars),
        ("label grammar", labels, DecodeOptions(beam_size=8, nbest=3, grammar=str(grammar)), *acts),
        ("label LM", labels, DecodeOptions(beam_size=8, lm=str(label_lm), alpha=1.0), *acts),
    ]


def test_every_scorer_gives_the_cpu_result_on_the_device(tmp_path, word_lm, device):
    """Beam search with each scorer (LM of words, characters or labels, lexicon, hotwords, grammar,
    pruning) on ``device``, with and without the CUDA-graph frame loop, returns the CPU's n-best lists,
    scores and word timings."""
    for name, tok, opts, lp, lengths in _scorer_setups(tmp_path, word_lm):
        dec = Decoder(tok, opts, frame_shift=0.04)
        graphed = Decoder(tok, dataclasses.replace(opts, cuda_graph=True), frame_shift=0.04)
        cpu = dec(lp, lengths)
        assert any(h.tokens for hyps in cpu for h in hyps), name
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a failed graph capture warns: that fails the test
            on_device = [dec(lp.to(device), lengths.to(device)), graphed(lp.to(device), lengths.to(device))]
        for dev in on_device:
            for a, b in zip(cpu, dev, strict=True):
                assert [h.tokens for h in a] == [h.tokens for h in b], name
                assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-3), name
                assert [(w["word"], w["start"], w["end"]) for w in a[0].words] == \
                    [(w["word"], w["start"], w["end"]) for w in b[0].words], name
    greedy_cpu, greedy_dev = ctc_greedy(lp, lengths), ctc_greedy(lp.to(device), lengths.to(device))
    assert [(h.tokens, h.spans) for h in greedy_cpu] == [(h.tokens, h.spans) for h in greedy_dev]


def test_lexicon_never_returns_nothing_when_every_beam_ends_inside_a_word(tmp_path):
    lex = tmp_path / "words.txt"
    lex.write_text("the\ncatched\n")
    lp = the_cet()  # spells "the cat": with a narrow beam every surviving prefix ends inside "catched"
    out = Decoder(CHARS, DecodeOptions(beam_size=2, lexicon=str(lex)))(lp[None], torch.tensor([lp.size(0)]))[0]
    assert len(out) == 1 and out[0].text.startswith("the ca") and math.isfinite(out[0].score)
    assert "catched".startswith(out[0].text.split()[-1])  # the best prefix as it stands
    # A wide beam still finds a complete labeling when one exists, and then the constraint holds.
    wide = Decoder(CHARS, DecodeOptions(beam_size=64, lexicon=str(lex)))(lp[None], torch.tensor([lp.size(0)]))[0]
    assert set(wide[0].text.split()) <= {"the", "catched"}


@pytest.mark.parametrize("K", [6, 32, 40])  # all-pairs compare up to 32, sort + binary search above
def test_parent_lookup_finds_the_beam_one_token_shorter(K):
    """Each beam's parent hash is found among the beam hashes exactly where a beam holds it."""
    from crnn.decoding.beam import _find_parents

    g = torch.Generator().manual_seed(K)
    hsh = torch.stack([torch.randperm(10 * K, generator=g)[:K] for _ in range(3)])  # unique per row
    parent = torch.where(torch.rand(3, K, generator=g) < 0.5, hsh.gather(1, torch.randint(0, K, (3, K), generator=g)),
                         torch.randint(10 * K, 20 * K, (3, K), generator=g))  # half point at a beam, half nowhere
    found, idx = _find_parents(hsh, parent)
    for b in range(3):
        for j in range(K):
            where = (hsh[b] == parent[b, j]).nonzero().flatten().tolist()
            assert bool(found[b, j]) == bool(where)
            if where:
                assert int(idx[b, j]) == where[0]


def test_nbest_texts_are_distinct_and_as_many_as_asked(tmp_path):
    lex = tmp_path / "words.txt"
    lex.write_text("cat\ncot\ncoat\ndog\nhat\n")
    rnd = peaked(3, 40, len(CHARS), seed=5, boost=4.0)
    for hyps in Decoder(CHARS, DecodeOptions(beam_size=16, nbest=3, lexicon=str(lex)))(rnd, torch.tensor([40, 40, 30])):
        texts_ = [h.text for h in hyps]
        assert len(texts_) == len(set(texts_)) == 3, texts_  # no 'cat' next to 'cat ' (trailing separator)
        assert all(t == " ".join(t.split()) for t in texts_)
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)


def test_hotwords_outside_the_vocabulary_are_dropped_with_a_warning(capsys):
    lp = spell(word_frames("cat"))[None]
    dec = Decoder(CHARS, DecodeOptions(beam_size=4, hotwords=("cat", "zebra", "dog")))
    assert texts(dec(lp, torch.tensor([lp.size(1)]))) == ["cat"]
    err = capsys.readouterr().err
    assert "hotword 'zebra' dropped" in err and "'cat'" not in err and "'dog'" not in err

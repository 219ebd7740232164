"""Throughput of crnn's batched CTC beam search against flashlight-text and pyctcdecode, same run.

    python bench/decode.py                         # 64 x 400 frames x 29 tokens, beams 10 and 32
    python bench/decode.py --modes lm --beams 10   # word 3-gram LM + lexicon only
    PYTHONPATH=/path/to/flashlight-text python bench/decode.py --pyctcdecode-python /venv/bin/python

Posteriors look like a trained character model's: sentences of made-up words from a small Markov
chain, one frame to three per character with blanks between, the right token boosted by a random
margin (some frames are close calls). Modes:

* ``nolm``: lexicon-free search, no LM.
* ``lm``: word 3-gram LM (built by ``crnn lm build``'s Kneser-Ney on 3000 sentences of the same
  chain) plus a lexicon of its words; alpha 0.5, beta 1.0.

Peers, each timed only when available: torchaudio's ``ctc_decoder`` (needs the ``flashlight-text``
package, KenLM inside), and ``pyctcdecode`` (pins numpy<2, so it may live in another environment:
pass its interpreter with ``--pyctcdecode-python``; it needs ``kenlm`` for the LM mode). Timings are
utterances per second over the whole batch, the best of ``--repeats`` runs for every decoder; CER is
against the sentences the posteriors were made from.

On CUDA two more tables: torchaudio's ``cuda_ctc_decoder`` against ours at every beam of
``--cuda-peer-beams`` (each peer run in its own process, since it has crashed with an illegal memory
access at beam 10: a crash is reported, not fatal), and the cost of the search relative to greedy
decoding (argmax, merge, text) at batches 32 and 128 (``--ratio-batches``), the measure NeMo uses for
its batched GPU beam search (FlexCTC: beam 16 about 1.4x greedy at batch 32).
"""
from __future__ import annotations

import argparse
import importlib.util
from dataclasses import replace
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jiwer
import numpy as np
import torch

from crnn.tokenizer import Tokenizer
from crnn.decoding import DecodeOptions, Decoder
from crnn.decoding.lm import write_arpa
from crnn.decoding.lm_build import build_kneser_ney

LETTERS = "abcdefghijklmnopqrstuvwxyz"
TOKENIZER = Tokenizer([" ", "'"] + list(LETTERS), kind="char")  # 29 classes with the blank


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--frames", type=int, default=400)
    p.add_argument("--beams", type=int, nargs="+", default=None, help="default: 10 32, and 128 on CUDA")
    p.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when there is one")
    p.add_argument("--cuda-peer-beams", type=int, nargs="+", default=[4, 10, 16, 32, 64, 128])
    p.add_argument("--ratio-batches", type=int, nargs="+", default=[32, 128])
    p.add_argument("--ratio-beam", type=int, default=16)
    p.add_argument("--modes", nargs="+", default=["nolm", "lm"], choices=["nolm", "lm"])
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1, like the peers)")
    p.add_argument("--repeats", type=int, default=2, help="timed runs per setting; the best is kept")
    p.add_argument("--peer-utts", type=int, default=16, help="utterances timed for pyctcdecode (slow)")
    p.add_argument("--pyctcdecode-python", default=None, help="interpreter of an environment with pyctcdecode")
    p.add_argument("--blank-skip", type=float, default=0.99, help="our fast setting's blank threshold")
    p.add_argument("--token-prune", type=int, default=8, help="our fast setting's top-k tokens per frame")
    return p


# -- data ---------------------------------------------------------------------------------------
def make_language(seed: int = 0, words: int = 300) -> tuple[list[str], np.ndarray]:
    """A vocabulary of made-up words and a sparse word-to-word transition matrix."""
    rng = np.random.default_rng(seed)
    vocab = sorted({"".join(rng.choice(list(LETTERS), size=rng.integers(2, 8))) for _ in range(words)})
    trans = np.zeros((len(vocab), len(vocab)))
    for i in range(len(vocab)):
        succ = rng.choice(len(vocab), size=8, replace=False)
        trans[i, succ] = rng.dirichlet(np.ones(8))
    return vocab, trans


def sentences(vocab: list[str], trans: np.ndarray, n: int, seed: int, max_chars: int) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        w = [int(rng.integers(len(vocab)))]
        while len(" ".join(vocab[i] for i in w)) < max_chars:
            w.append(int(rng.choice(len(vocab), p=trans[w[-1]])))
        out.append(" ".join(vocab[i] for i in w[:-1]))
    return out


def posteriors(texts: list[str], frames: int, seed: int) -> torch.Tensor:
    """(B, T, 29) log-posteriors spelling each text, peaked like a trained model's."""
    g = torch.Generator().manual_seed(seed)
    B, V = len(texts), len(TOKENIZER)
    logits = torch.randn(B, frames, V, generator=g)
    target = torch.zeros(B, frames, dtype=torch.long)
    for b, text in enumerate(texts):
        t = int(torch.randint(2, 6, (1,), generator=g))
        for tok in TOKENIZER.encode(text):
            run = int(torch.randint(1, 4, (1,), generator=g))
            target[b, t : t + run] = tok
            t += run + int(torch.randint(1, 4, (1,), generator=g))
    margin = 5.0 + 9.0 * torch.rand(B, frames, 1, generator=g)  # some frames are close calls
    logits.scatter_add_(2, target[..., None], margin)
    return logits.log_softmax(-1)


def random_texts(B: int, max_chars: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    alphabet = list(LETTERS) + [" "] * 5 + ["'"]
    return [" ".join("".join(rng.choice(alphabet, size=max_chars)).split()) for _ in range(B)]


# -- decoders -----------------------------------------------------------------------------------
def best_time(fn, repeats: int) -> tuple[float, list[str]]:
    best, texts = float("inf"), []
    for _ in range(repeats):
        t0 = time.perf_counter()
        texts = fn()
        best = min(best, time.perf_counter() - t0)
    return best, texts


def time_ours(lp, lengths, options: DecodeOptions, device: str, repeats: int):
    dec = Decoder(TOKENIZER, options)
    x, n = lp.to(device), lengths.to(device)
    dec(x[:2, :50], n[:2].clamp_max(50))  # warm-up (device tables, allocator)

    def run():
        out = dec(x, n)
        return [h[0].text for h in out]

    return best_time(run, repeats)


def flashlight_tokens() -> list[str]:
    return ["-", "|"] + TOKENIZER.symbols[1:]


def time_flashlight(lp, lengths, beam, repeats, lm=None, lexicon=None):
    from torchaudio.models.decoder import ctc_decoder

    dec = ctc_decoder(lexicon=lexicon, tokens=flashlight_tokens(), lm=lm, beam_size=beam, blank_token="-",
                      sil_token="|", lm_weight=0.5, word_score=1.0, log_add=True)

    def run():
        return [" ".join(h[0].words) if lexicon else
                "".join(flashlight_tokens()[t] for t in h[0].tokens.tolist()).replace("|", " ").replace("-", "").strip()
                for h in dec(lp, lengths)]

    return best_time(run, repeats)


PYCTC_SCRIPT = r"""
import json, sys, time, numpy as np
from pyctcdecode import build_ctcdecoder
a = json.loads(sys.argv[1])
lp = np.load(a["npy"])
kw = dict(kenlm_model_path=a["lm"], unigrams=a["unigrams"], alpha=0.5, beta=1.0) if a["lm"] else {}
dec = build_ctcdecoder(a["labels"], **kw)
dec.decode(lp[0][:50], beam_width=a["beam"])
best = float("inf")
for _ in range(a["repeats"]):
    t0 = time.perf_counter()
    texts = [dec.decode(x, beam_width=a["beam"]) for x in lp]
    best = min(best, time.perf_counter() - t0)
print(json.dumps({"seconds": best, "texts": texts}))
"""


def time_pyctcdecode(python, lp, beam, repeats, lm=None, unigrams=None):
    with tempfile.TemporaryDirectory() as d:
        npy = os.path.join(d, "lp.npy")
        np.save(npy, lp.numpy())
        arg = {"npy": npy, "beam": beam, "repeats": repeats, "lm": lm, "unigrams": unigrams,
               "labels": [""] + TOKENIZER.symbols}
        out = subprocess.run([python, "-c", PYCTC_SCRIPT, json.dumps(arg)], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "pyctcdecode failed")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return r["seconds"], r["texts"]


CUDA_PEER_SCRIPT = r"""
import json, sys, time, torch
from torchaudio.models.decoder import cuda_ctc_decoder
a = json.loads(sys.argv[1])
lp = torch.load(a["lp"]).cuda().contiguous()
n = torch.full((lp.size(0),), lp.size(1), dtype=torch.int32, device="cuda")
dec = cuda_ctc_decoder(a["tokens"], nbest=1, beam_size=a["beam"], blank_skip_threshold=a["blank_skip"])
dec(lp[:2], n[:2])
best = float("inf")
for _ in range(a["repeats"]):
    torch.cuda.synchronize(); t0 = time.perf_counter()
    out = dec(lp, n)
    torch.cuda.synchronize(); best = min(best, time.perf_counter() - t0)
print(json.dumps({"seconds": best, "tokens": [h[0].tokens for h in out]}))
"""


def time_cuda_peer(lp: torch.Tensor, beam: int, repeats: int, blank_skip: float) -> tuple[float, list[str]]:
    """torchaudio's ``cuda_ctc_decoder`` in a child process (a crash there must not end the benchmark)."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "lp.pt")
        torch.save(lp, path)
        arg = {"lp": path, "beam": beam, "repeats": repeats, "blank_skip": blank_skip,
               "tokens": ["<blk>"] + TOKENIZER.symbols}
        out = subprocess.run([sys.executable, "-c", CUDA_PEER_SCRIPT, json.dumps(arg)], capture_output=True, text=True)
    if out.returncode != 0:
        lines = out.stderr.strip().splitlines()
        raise RuntimeError(f"exit {out.returncode}: {lines[-1] if lines else 'no message'}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    texts = ["".join(TOKENIZER.symbols[t - 1] for t in toks if t > 0).strip() for toks in r["tokens"]]
    return r["seconds"], [" ".join(t.split()) for t in texts]


def time_greedy(lp: torch.Tensor, lengths: torch.Tensor, device: str, repeats: int) -> tuple[float, list[str]]:
    """Greedy decoding end to end as the CLI does it: argmax, merge, blanks out, text."""
    from crnn.decoding import ctc_greedy

    x, n = lp.to(device), lengths.to(device)
    ctc_greedy(x[:2], n[:2])

    def run():
        return [TOKENIZER.decode(h.tokens) for h in ctc_greedy(x, n)]

    return best_time(run, repeats)


def cuda_tables(args: argparse.Namespace, refs: list[str], lp: torch.Tensor, lengths: torch.Tensor,
                device: str = "cuda") -> None:
    """Ours on CUDA against ``cuda_ctc_decoder`` per beam; beam search cost over greedy per batch size."""
    print("\n# CUDA: crnn against torchaudio's cuda_ctc_decoder (no LM), same posteriors")
    print("| beam | crnn cuda exact utt/s | crnn cuda fast + graph utt/s | cuda_ctc_decoder utt/s | crnn fast + graph, x peer speed | CER ours / peer |")
    print("|---|---|---|---|---|---|")
    B = lp.size(0)
    for beam in args.cuda_peer_beams:
        exact_s, exact_h = time_ours(lp, lengths, DecodeOptions(beam_size=beam), device, args.repeats)
        fast_s, _ = time_ours(lp, lengths, DecodeOptions(beam_size=beam, token_prune=args.token_prune,
                                                         blank_skip=args.blank_skip, cuda_graph=True),
                              device, args.repeats)
        try:
            peer_s, peer_h = time_cuda_peer(lp, beam, args.repeats, blank_skip=0.95)
            peer = f"{B / peer_s:.1f} | {peer_s / fast_s:.2f}x | {cer(refs, exact_h):.3f} / {cer(refs, peer_h):.3f}"
        except RuntimeError as e:
            peer = f"crashed ({e}) | - | {cer(refs, exact_h):.3f} / -"
        print(f"| {beam} | {B / exact_s:.1f} | {B / fast_s:.1f} | {peer} |", flush=True)

    print(f"\n# CUDA: beam search time / greedy time (beam {args.ratio_beam}, no LM; {lp.size(1)} frames)")
    print("| batch | greedy ms | beam exact ms | beam fast ms | fast + graph ms | exact / greedy | fast / greedy "
          "| fast + graph / greedy |")
    print("|---|---|---|---|---|---|---|---|")
    for batch in args.ratio_batches:
        texts = random_texts(batch, lp.size(1) // 5, seed=batch)
        x = posteriors(texts, lp.size(1), seed=batch)
        n = torch.full((batch,), lp.size(1), dtype=torch.int32)
        g, _ = time_greedy(x, n, device, args.repeats)
        e, _ = time_ours(x, n, DecodeOptions(beam_size=args.ratio_beam), device, args.repeats)
        fast = DecodeOptions(beam_size=args.ratio_beam, token_prune=args.token_prune, blank_skip=args.blank_skip)
        f, _ = time_ours(x, n, fast, device, args.repeats)
        fg, _ = time_ours(x, n, replace(fast, cuda_graph=True), device, args.repeats)
        print(f"| {batch} | {g * 1e3:.1f} | {e * 1e3:.1f} | {f * 1e3:.1f} | {fg * 1e3:.1f} | {e / g:.2f} | {f / g:.2f} "
              f"| {fg / g:.2f} |", flush=True)


def cer(refs: list[str], hyps: list[str]) -> float:
    return jiwer.cer(refs, [h if h else "-" for h in hyps])


# -- main ---------------------------------------------------------------------------------------
def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    B, T = args.batch, args.frames
    max_chars = T // 5
    have_fl = importlib.util.find_spec("flashlight") is not None
    pyctc = args.pyctcdecode_python or (sys.executable if importlib.util.find_spec("pyctcdecode") else None)
    devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    beams = args.beams or [10, 32] + ([128] if "cuda" in devices else [])
    print(f"# CTC beam search, B={B} T={T} V={len(TOKENIZER)}; torch {torch.__version__}, "
          f"{platform.processor() or platform.machine()}, {args.threads} thread(s)")
    print("| mode | beam | decoder | utt/s | vs ours (exact) | CER |")
    print("|---|---|---|---|---|---|")
    work = tempfile.mkdtemp()
    for mode in args.modes:
        kw: dict = {}
        if mode == "nolm":
            refs = random_texts(B, max_chars, seed=1)
        else:
            vocab, trans = make_language()
            refs = sentences(vocab, trans, B, seed=2, max_chars=max_chars)
            arpa, lex, fl_lex = (os.path.join(work, n) for n in ("lm.arpa", "words.txt", "fl_lexicon.txt"))
            with open(arpa, "w") as f:
                write_arpa(build_kneser_ney([s.split() for s in sentences(vocab, trans, 3000, 3, max_chars)], 3), f)
            Path(lex).write_text("\n".join(vocab) + "\n")
            Path(fl_lex).write_text("".join(f"{w} {' '.join(w)} |\n" for w in vocab))
            kw = dict(lm=arpa, lexicon=lex, alpha=0.5, beta=1.0)
        lp = posteriors(refs, T, seed=4)
        lengths = torch.full((B,), T, dtype=torch.int32)
        if mode == "nolm" and "cuda" in devices:
            nolm_case = (refs, lp, lengths)
        for beam in beams:
            rows = []
            exact = DecodeOptions(beam_size=beam, **kw)
            fast = DecodeOptions(beam_size=beam, token_prune=args.token_prune, blank_skip=args.blank_skip, **kw)
            for dev in devices:
                settings = [(f"crnn {dev}", exact), (f"crnn {dev} fast", fast)]
                if dev == "cuda":  # the frame loop replayed as a CUDA graph
                    settings += [("crnn cuda graph", replace(exact, cuda_graph=True)),
                                 ("crnn cuda fast graph", replace(fast, cuda_graph=True))]
                for name, opts in settings:
                    sec, hyps = time_ours(lp, lengths, opts, dev, args.repeats)
                    rows.append((name, B / sec, cer(refs, hyps)))
            if have_fl:
                fl_kw = dict(lm=kw["lm"], lexicon=fl_lex) if mode == "lm" else {}
                sec, hyps = time_flashlight(lp, lengths, beam, args.repeats, **fl_kw)
                rows.append(("flashlight-text", B / sec, cer(refs, hyps)))
            if pyctc:
                n = min(args.peer_utts, B)
                try:
                    py_kw = dict(lm=kw["lm"], unigrams=vocab) if mode == "lm" else {}
                    sec, hyps = time_pyctcdecode(pyctc, lp[:n], beam, args.repeats, **py_kw)
                    rows.append(("pyctcdecode", n / sec, cer(refs[:n], hyps)))
                except RuntimeError as e:
                    print(f"<!-- pyctcdecode skipped: {e} -->")
            ours = rows[0][1]
            label = "no LM" if mode == "nolm" else "word 3-gram + lexicon"
            for name, rate, c in rows:
                print(f"| {label} | {beam} | {name} | {rate:.1f} | {rate / ours:.2f}x | {c:.3f} |", flush=True)
    if "cuda" in devices and "nolm" in args.modes:
        cuda_tables(args, *nolm_case)


if __name__ == "__main__":
    main(get_args_parser().parse_args())

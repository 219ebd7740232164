"""Read English sentences with a vocabulary of thousands of words, spoken by espeak-ng voices.

    python datasets/tts_sentences/prepare.py --out data/tts_sentences

The sentences are the example sentences of WordNet 3.0's glosses (Debian package ``wordnet-base``,
licence WordNet 3.0: use, copy, modify and distribute for any purpose, keeping the notice; about
48,000 quoted examples such as "the oceans are teeming with life", some 32,000 distinct words). Kept:
3-14 words, letters and ordinary punctuation only (no digits, symbols or acronyms, whose spoken form
differs from their spelling), each sentence once.

Sentences are split first: dev and test sentences never occur in training (nor in the LM text). Voices
are split too: espeak-ng's English voices and its ~100 variants are cut into disjoint train/dev/test sets
(the spoken-digits recipe's split), so test utterances are unseen sentences read by unseen voices.
Half the utterances carry white/pink/brown noise at 5-25 dB SNR; rate and pitch vary per utterance.

Writes ``<out>/audio/<split>/*.flac``, ``<out>/{train,dev,test}.jsonl`` (rows ``path, text, duration, id,
voice, rate, pitch, snr, sentence``: ``sentence`` as written, ``text`` normalised for training),
``<out>/lm_train.txt`` (every training-split sentence, normalised: the LM's text, including sentences the
corpus did not synthesise), ``<out>/words.txt`` (the training vocabulary, for ``--lexicon``) and
``<out>/speakers.json``.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE.parent / "tts_digits"))  # the synthesizers and the voice split are shared
import prepare as digits  # noqa: E402
import tts_engines as tts  # noqa: E402

from crnn.data.manifest import write_manifest  # noqa: E402
from crnn.tokenizer import normalize_text  # noqa: E402

WORDNET_DIR = Path("/usr/share/wordnet")
SPLITS = ("train", "dev", "test")
_QUOTED = re.compile(r'"([^"]+)"')
_ALLOWED = re.compile(r"^[A-Za-z][A-Za-z ,;:.!?'\-]*$")
_ACRONYM = re.compile(r"\b[A-Z]{2,}\b|\b\w\.\w")  # "DNA", "U.S.": spoken letter by letter


def wordnet_sentences(wordnet_dir: Path, min_words: int, max_words: int) -> list[str]:
    """The usable example sentences of WordNet's glosses, deduplicated, in file order."""
    files = [wordnet_dir / f"data.{pos}" for pos in ("noun", "verb", "adj", "adv")]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise SystemExit(f"WordNet data not found ({', '.join(missing)}): apt-get install wordnet-base")
    seen: set[str] = set()
    sentences = []
    for path in files:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("  ") or " | " not in line:  # the licence header; synsets without a gloss
                continue
            for quoted in _QUOTED.findall(line.split(" | ", 1)[1]):
                s = " ".join(quoted.split())
                if not _ALLOWED.match(s) or _ACRONYM.search(s):
                    continue
                norm = normalize_text(s, "english")
                if not min_words <= len(norm.split()) <= max_words or norm in seen:
                    continue
                seen.add(norm)
                sentences.append(s)
    return sentences


def split_sentences(sentences: list[str], n_dev: int, n_test: int, seed: int) -> dict[str, list[str]]:
    """Shuffle and cut into disjoint test / dev / train pools (train takes the rest)."""
    if n_dev + n_test >= len(sentences):
        raise SystemExit(f"only {len(sentences)} sentences: fewer than --num-dev + --num-test + 1")
    order = list(sentences)
    random.Random(f"{seed}-sentences").shuffle(order)
    return {"test": order[:n_test], "dev": order[n_test : n_test + n_dev], "train": order[n_test + n_dev :]}


def make_jobs(pools: dict[str, list[str]], counts: dict[str, int], speakers: dict, args: argparse.Namespace) -> list[dict]:
    """Utterance parameters, drawn up front with one seeded generator per split."""
    jobs = []
    for split in SPLITS:
        rng = random.Random(f"{args.seed}-{split}")
        pool = pools[split]
        if counts[split] > len(pool):
            raise SystemExit(f"--num-{split} {counts[split]} is more than the {len(pool)} {split} sentences")
        for i, sentence in enumerate(rng.sample(pool, counts[split])):
            jobs.append({"split": split, "id": f"{split}-{i:05d}", "sentence": sentence,
                         "text": normalize_text(sentence, "english"),
                         "voice": rng.choice(speakers["espeak"][split]),
                         "variant": rng.choice(speakers["variants"][split]),
                         "rate": round(rng.uniform(0.8, 1.3), 3), "pitch": rng.randint(20, 80),
                         "gap": rng.randint(0, 4),
                         "snr": round(rng.uniform(5.0, 25.0), 1) if rng.random() < args.noise_prob else None,
                         "seed": rng.getrandbits(31)})
    return jobs


def render(job: dict, exe: str, out: str, sample_rate: int) -> dict:
    """Speak one sentence, resample, maybe add noise, write FLAC; returns its manifest row."""
    speed = int(round(175 / job["rate"]))
    wav, sr = tts.espeak_say(exe, [job["sentence"]], job["voice"], job["variant"], speed, job["pitch"],
                             job["gap"], [False], accent=False)
    path, duration = digits.write_utterance(wav, sr, job, out, sample_rate)
    return {"path": str(path), "text": job["text"], "duration": duration, "id": job["id"],
            "voice": f"{job['voice']}+{job['variant']}", "rate": job["rate"], "pitch": job["pitch"],
            "snr": job["snr"], "sentence": job["sentence"]}


def _render_star(args: tuple) -> dict:
    return render(*args)


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Synthesise a large-vocabulary read-sentence corpus with espeak-ng.")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--num-train", type=int, default=20000, help="training utterances (default: 20000)")
    p.add_argument("--num-dev", type=int, default=300, help="dev utterances: unseen sentences and voices (default: 300)")
    p.add_argument("--num-test", type=int, default=500, help="test utterances: unseen sentences and voices (default: 500)")
    p.add_argument("--min-words", type=int, default=3, help="shortest sentence in words (default: 3)")
    p.add_argument("--max-words", type=int, default=14, help="longest sentence in words (default: 14)")
    p.add_argument("--noise-prob", type=float, default=0.5, help="share of utterances with noise (default: 0.5)")
    p.add_argument("--sample-rate", type=int, default=16000, help="output rate (default: 16000)")
    p.add_argument("--wordnet-dir", default=str(WORDNET_DIR), help=f"WordNet's data files (default: {WORDNET_DIR})")
    p.add_argument("--seed", type=int, default=0, help="seed for the split, voices, rate, noise (default: 0)")
    p.add_argument("--jobs", type=int, default=2, help="worker processes (default: 2)")
    p.add_argument("--nice", type=int, default=10, help="niceness of the workers and espeak-ng (default: 10)")
    return p


def main(args: argparse.Namespace) -> int:
    if not 1 <= args.min_words <= args.max_words:
        raise SystemExit("need 1 <= --min-words <= --max-words")
    sentences = wordnet_sentences(Path(args.wordnet_dir), args.min_words, args.max_words)
    pools = split_sentences(sentences, args.num_dev, args.num_test, args.seed)
    speakers, exes = digits.discover_voices({"espeak"}, festival=False)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "speakers.json").write_text(json.dumps(speakers, indent=1) + "\n")
    lm_lines = [normalize_text(s, "english") for s in pools["train"]]
    (out / "lm_train.txt").write_text("\n".join(lm_lines) + "\n")
    vocab = sorted({w for line in lm_lines for w in line.split()})
    (out / "words.txt").write_text("\n".join(vocab) + "\n")

    counts = {"train": args.num_train, "dev": args.num_dev, "test": args.num_test}
    jobs = make_jobs(pools, counts, speakers, args)
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, args.jobs), initializer=digits._init_worker,
                             initargs=(args.nice, args.sample_rate)) as pool:
        rows = list(pool.map(_render_star, [(job, exes["espeak"], str(out), args.sample_rate) for job in jobs],
                             chunksize=8))
    elapsed = time.perf_counter() - start
    vocab_set = set(vocab)
    for split in SPLITS:
        split_rows = [r for r in rows if r["id"].rsplit("-", 1)[0] == split]
        write_manifest(out / f"{split}.jsonl", split_rows)
        words = [w for r in split_rows for w in r["text"].split()]
        oov = sum(w not in vocab_set for w in words) / max(1, len(words))
        hours = sum(r["duration"] for r in split_rows) / 3600
        print(f"{split}: {len(split_rows)} utterances, {hours:.2f} h, {len(words)} words, "
              f"{len(set(words))} distinct, {100 * oov:.2f} % outside the training vocabulary -> {out / f'{split}.jsonl'}")
    print(f"sentences: {len(sentences)} usable ({len(pools['train'])} in the training pool, all in lm_train.txt); "
          f"training vocabulary {len(vocab)} words")
    print(f"synthesised {len(rows)} utterances in {elapsed:.1f} s ({len(rows) / max(elapsed, 1e-9):.0f}/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))

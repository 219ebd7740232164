"""Where a digits model goes wrong: word error rate per engine and voice, and which digits it confuses.

    crnn eval --checkpoint runs/digits/best.pt data/tts_digits/test_festival.jsonl -o hyps.jsonl
    python datasets/tts_digits/errors.py data/tts_digits/test_festival.jsonl hyps.jsonl

Joins ``crnn eval --out``'s per-utterance rows with the manifest's ``engine`` and ``voice`` fields (by
path), aligns each hypothesis with its reference word by word (Levenshtein), and prints the WER per
engine, per voice and per espeak-ng variant (the worst ``--top``), the most frequent substitutions (``five -> nine``), deletions and insertions, and
the worst utterances (their files, to listen to).
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from anywhere in a checkout

from crnn.data.manifest import read_manifest  # noqa: E402


def align(ref: list[str], hyp: list[str]) -> list[tuple[str | None, str | None]]:
    """Word alignment of minimal edit cost: pairs (ref word, hyp word); None on the other side for a
    deletion (hyp None) or an insertion (ref None)."""
    n, m = len(ref), len(hyp)
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        cost[i][0] = i
    for j in range(m + 1):
        cost[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i][j] = min(cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]), cost[i - 1][j] + 1, cost[i][j - 1] + 1)
    pairs: list[tuple[str | None, str | None]] = []
    i, j = n, m
    while i or j:
        if i and j and cost[i][j] == cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            pairs.append((ref[i - 1], hyp[j - 1]))
            i, j = i - 1, j - 1
        elif i and cost[i][j] == cost[i - 1][j] + 1:
            pairs.append((ref[i - 1], None))
            i -= 1
        else:
            pairs.append((None, hyp[j - 1]))
            j -= 1
    return pairs[::-1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("manifest", help="the manifest that was evaluated (rows with engine and voice)")
    p.add_argument("hyps", help="crnn eval --out JSON lines")
    p.add_argument("--top", type=int, default=10, help="confusions and utterances to list (default: 10)")
    args = p.parse_args(argv)
    rows = {str(Path(r["path"]).resolve()): r for r in read_manifest(args.manifest)}
    errors: dict[str, Counter] = defaultdict(Counter)  # group -> errors, words
    confusions: Counter = Counter()
    worst = []
    for line in Path(args.hyps).read_text().splitlines():
        h = json.loads(line)
        row = rows.get(str(Path(h["path"]).resolve()))
        if row is None:
            raise SystemExit(f"error: {args.hyps}: {h['path']} is not in {args.manifest}")
        ref, hyp = h["reference"].split(), h["hypothesis"].split()
        pairs = align(ref, hyp)
        wrong = [(r, w) for r, w in pairs if r != w]
        voice, _, variant = str(row.get("voice", "?")).partition("+")
        keys = [f"engine {row.get('engine', '?')}", f"voice {voice}"] + ([f"variant {variant}"] if variant else [])
        for key in keys:
            errors[key]["errors"] += len(wrong)
            errors[key]["words"] += len(ref)
        confusions.update(f"{r or '(insert)'} -> {w or '(delete)'}" for r, w in wrong)
        if wrong:
            worst.append((len(wrong) / max(1, len(ref)), h["path"], h["reference"], h["hypothesis"]))
    total = sum(c["words"] for k, c in errors.items() if k.startswith("engine"))
    if not total:
        raise SystemExit(f"error: {args.hyps}: no utterances to score")
    print(f"{'group':<40} {'words':>6} {'WER %':>7}")
    for kind in ("engine", "voice", "variant"):
        keys = sorted((k for k in errors if k.startswith(kind + " ")),
                      key=lambda k: -errors[k]["errors"] / errors[k]["words"])
        for key in keys if kind == "engine" else keys[: args.top]:
            c = errors[key]
            print(f"{key:<40} {c['words']:>6} {100 * c['errors'] / c['words']:>7.2f}")
    print(f"\nmost frequent errors (of {sum(confusions.values())} in {total} words):")
    for what, n in confusions.most_common(args.top):
        print(f"  {n:>4}  {what}")
    print("\nworst utterances:")
    for rate, path, ref, hyp in sorted(worst, reverse=True)[: args.top]:
        print(f"  {100 * rate:5.1f}%  {path}\n         ref: {ref}\n         hyp: {hyp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

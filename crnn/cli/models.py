"""``crnn models``: the models shipped in the package (usable by name, no training, no download).

    crnn models                 # name, modality, size, data, licence and measured figures of each
    crnn models textlines-en    # one model's card: data, licence, the recipe that made it, its tables
"""
from __future__ import annotations

import argparse
import sys


def main(args: argparse.Namespace) -> int:
    from crnn.pretrained import MODELS, list_shipped

    if args.name:
        if args.name not in MODELS:
            print(f"error: {MODELS.unknown(args.name)}", file=sys.stderr)
            return 1
        model = MODELS.get(args.name)
        print(model.card.read_text(encoding="utf-8") if model.card.is_file() else f"{model.name}: no model card")
        return 0
    shipped = list_shipped()
    if not shipped:
        print("no models are shipped in this build")
        return 0
    rows = [("name", "modality", "size", "licence", "measured (greedy)", "trained on")]
    for m in shipped:
        figures = "; ".join(f"{k} {v}" for k, v in m.figures.items())
        rows.append((m.name, m.modality, f"{m.size_bytes / 1e6:.1f} MB", m.licence, figures, m.data))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    print("\nuse one by name: crnn decode --model NAME FILE...; crnn models NAME shows its card")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("models", help="list the shipped models (decode with --model NAME, no training)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?", help="show this model's card")
    p.set_defaults(func=main)

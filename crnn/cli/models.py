"""``crnn models``: the models shipped in the package (usable by name, no training, no download).

    crnn models                 # name, modality, size, data, licence and measured figures of each
    crnn models textlines-en    # one model's card: data, licence, the recipe that made it, its tables
    crnn models chars-en        # a shipped language model's card (use it with --lm chars-en)
"""
from __future__ import annotations

import argparse
import sys


def main(args: argparse.Namespace) -> int:
    from crnn.pretrained import LANGUAGE_MODELS, MODELS, list_language_models, list_shipped

    if args.name:
        if args.name not in MODELS and args.name not in LANGUAGE_MODELS:
            print(f"error: {MODELS.unknown(args.name)}", file=sys.stderr)
            return 1
        model = MODELS.get(args.name) if args.name in MODELS else LANGUAGE_MODELS.get(args.name)
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
    print_table(rows)
    print("\nuse one by name: crnn decode --model NAME FILE...; crnn models NAME shows its card")
    lms = list_language_models()
    if lms:
        rows = [("language model", "unit", "size", "licence", "measured (beam search with it)", "estimated on")]
        for m in lms:
            figures = "; ".join(f"{k} {v}" for k, v in m.figures.items())
            rows.append((m.name, m.unit, f"{m.size_bytes / 1e6:.1f} MB", m.licence, figures, m.data))
        print()
        print_table(rows)
        print("\nuse one by name: crnn decode --model NAME --beam 8 --lm LM FILE...")
    return 0


def print_table(rows: list[tuple[str, ...]]) -> None:
    """Columns padded to their widest cell; the last column runs free."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])


def register(subparsers) -> None:
    p = subparsers.add_parser("models", help="list the shipped models (decode with --model NAME, no training)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?", help="show this model's card")
    p.set_defaults(func=main)

"""``crnn compare``: train several cells on the same data, budget and seed; write a table and a plot."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(args: argparse.Namespace) -> int:
    from crnn.cli.common import load_plugins
    from crnn.cli.train import config_from_args
    from crnn.training.compare import compare_cells, markdown_table, plot_curves

    load_plugins(args.plugin)
    cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    import crnn

    unknown = [c for c in cells if c not in crnn.list_cells()]
    if unknown:
        print(f"error: unknown cell(s) {', '.join(unknown)}; registered: {', '.join(crnn.list_cells())}",
              file=sys.stderr)
        return 2
    base = config_from_args(args)
    results = compare_cells(cells, base, args.out)  # expected failures become `error: ...` in crnn.cli.main
    table = markdown_table(results)
    out = Path(args.out)
    (out / "compare.md").write_text(table)
    plot_curves(results, out / "compare.png")
    print(table)
    print(f"wrote {out / 'compare.md'} and {out / 'compare.png'}", file=sys.stderr)
    return 0


def register(subparsers) -> None:
    from crnn.cli.train import get_args_parser

    p = subparsers.add_parser("compare", help="train several cells side by side and tabulate them",
                              description=__doc__)
    get_args_parser(p)
    p.add_argument("--cells", default="gru,lstm", help="comma-separated cell names (default: gru,lstm)")
    p.set_defaults(func=main, out="runs/compare")

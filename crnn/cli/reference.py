"""The command-line reference (docs/cli.md), generated from the parsers themselves so it cannot drift.

    python -m crnn.cli.reference > docs/cli.md

A test checks that docs/cli.md is what this prints.
"""
from __future__ import annotations

import argparse
import os

WIDTH = 100  # help is wrapped at this width, whatever the terminal


def subparsers(parser: argparse.ArgumentParser) -> tuple[dict[str, argparse.ArgumentParser], dict[str, str]]:
    """The commands' parsers, and the one-line help each was registered with."""
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices), {a.dest: a.help or "" for a in action._choices_actions}


def render_reference() -> str:
    from crnn.cli import COMMANDS, build_parser

    os.environ["COLUMNS"] = str(WIDTH)  # argparse reads the width from here
    parser = build_parser()
    commands, helps = subparsers(parser)
    out = ["# Command-line reference", "",
           "Generated from the argument parsers (`python -m crnn.cli.reference > docs/cli.md`); every command",
           "also prints this with `--help`.", ""]
    out += [f"- [`crnn {name}`](#crnn-{name}): {helps[name]}" for name in COMMANDS if name in commands]
    for name in COMMANDS:
        if name not in commands:
            continue
        out += ["", f"## crnn {name}", "", "```", commands[name].format_help().rstrip(), "```"]
        nested = [a for a in commands[name]._actions if isinstance(a, argparse._SubParsersAction)]
        for action in nested:
            for sub, p in action.choices.items():
                out += ["", f"### crnn {name} {sub}", "", "```", p.format_help().rstrip(), "```"]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(render_reference(), end="")

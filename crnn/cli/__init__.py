"""The ``crnn`` command line: one module per sub-command, each with ``register(subparsers)``.

A sub-command module defines ``register(subparsers)``, which adds its parser and sets
``func=run`` where ``run(args) -> int`` returns the exit status.
"""
from __future__ import annotations

import argparse
import codecs
import importlib
import os
import sys

# What a command may raise on bad input (the library's error types derive from these): reported as one
# `error: ...` line with exit status 1. CRNN_TRACEBACK=1 shows the traceback instead.
EXPECTED_ERRORS = (ValueError, OSError, RuntimeError, KeyError)

# Sub-command modules under crnn.cli, in the order ``crnn --help`` lists them.
COMMANDS = ["demo", "train", "decode", "align", "eval", "models", "synth", "lm", "compare", "average", "export", "serve", "info"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crnn", description="CNN -> RNN -> CTC sequence recognition")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"crnn.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"crnn.cli.{name}":
                continue  # command not shipped in this build
            raise
        module.register(sub)
    return parser


def _path_bytes(error: UnicodeEncodeError):
    """Codec error handler: a file name's undecodable bytes (kept as lone surrogates by Python) are
    written back as the original bytes, as ``ls`` shows them; anything else unencodable as ``\\x..``."""
    bad = error.object[error.start:error.end]
    if all("\udc80" <= c <= "\udcff" for c in bad):
        return bytes(ord(c) - 0xDC00 for c in bad), error.end
    return codecs.backslashreplace_errors(error)


def _printable_paths() -> None:
    """Printing a file name that is not valid UTF-8 must not crash a command."""
    codecs.register_error("crnn-path", _path_bytes)
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="crnn-path")


def main(argv: list[str] | None = None) -> int:
    _printable_paths()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `crnn decode ... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except EXPECTED_ERRORS as e:
        if os.environ.get("CRNN_TRACEBACK"):
            raise
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

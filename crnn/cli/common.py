"""Helpers shared by sub-commands."""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path


def add_plugin_arg(parser) -> None:
    parser.add_argument("--plugin", action="append", default=[], metavar="FILE_OR_MODULE",
                        help="import a Python file or module first (e.g. one that registers a custom cell); repeatable")


def load_plugins(plugins: list[str]) -> None:
    """Import user files/modules so their ``register_cell``/``register_frontend`` calls run."""
    for spec in plugins:
        path = Path(spec)
        if path.suffix == ".py" or path.is_file():
            if not path.is_file():
                raise SystemExit(f"error: plugin {spec}: no such file")
            name = f"crnn_plugin_{path.stem}"
            mod_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(mod_spec)
            sys.modules[name] = module
            mod_spec.loader.exec_module(module)
        else:
            importlib.import_module(spec)


class DeprecatedAlias(__import__("argparse").Action):
    """An old spelling of a flag: stores into the new flag's destination and notes the new name on stderr.

    ``p.add_argument("--out", dest="output", action=DeprecatedAlias, new="-o/--output", help=SUPPRESS)``
    """

    def __init__(self, option_strings, dest, new: str = "", **kwargs):
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"note: {option_string} is deprecated and will be removed in the next release: use {self.new}",
              file=sys.stderr)
        setattr(namespace, self.dest, values)


class OrderedPair(__import__("argparse").Action):
    """``--x MIN MAX`` (nargs=2, a numeric type): refused at parse time (exit 2) unless MIN <= MAX."""

    def __call__(self, parser, namespace, values, option_string=None):
        if values[0] > values[1]:
            parser.error(f"argument {option_string}: MIN must not exceed MAX, got {values[0]:g} {values[1]:g}")
        setattr(namespace, self.dest, values)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (a usage error otherwise, never a traceback or a silent clamp)."""
    return _number(text, int, lambda v: v >= 1, "an integer >= 1")


def non_negative_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 0, "an integer >= 0")


def positive_float(text: str) -> float:
    return _number(text, float, lambda v: v > 0, "a number > 0")


def finite_float(text: str) -> float:
    return _number(text, float, lambda v: True, "a finite number")


def fraction(text: str) -> float:
    return _number(text, float, lambda v: 0 <= v <= 1, "a number between 0 and 1")


def open_fraction(text: str) -> float:
    return _number(text, float, lambda v: 0 < v < 1, "a number strictly between 0 and 1")


def _number(text: str, cast, ok, what: str):
    import argparse
    import math

    try:
        value = cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if (isinstance(value, float) and not math.isfinite(value)) or not ok(value):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def parse_key_values(items: list[str]) -> dict:
    """["n_mels=64", "normalize=global"] -> {"n_mels": 64, "normalize": "global"} (numbers, bools and
    JSON lists such as ``widths=[16,32]`` parsed)."""
    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"error: expected KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        out[key.replace("-", "_")] = _parse_value(value)
    return out


def _parse_value(v: str):
    low = v.lower()
    if v.startswith("[") and v.endswith("]"):  # a list, e.g. widths=[16,32,64]
        import json

        try:
            return json.loads(v)
        except json.JSONDecodeError:
            raise SystemExit(f"error: {v!r} is not a JSON list") from None
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v

"""The `leaktrace` command. Subcommands live in their own modules and only parse and print."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Module name of each subcommand; each exposes `register(subparsers)` that sets `func`.
_SUBCOMMANDS: tuple[str, ...] = ("run", "hunt", "demo", "gate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leaktrace",
        description="Find memory leaks in Python services and tie them to the requests behind them.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _SUBCOMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    result: int = args.func(args, parser)
    return result

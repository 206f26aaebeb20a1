"""The `leaktrace` command. Subcommands live in their own modules and only parse and print."""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import sys
from collections.abc import Sequence

from .. import __version__

# Module name of each subcommand; each exposes `register(subparsers)` that sets `func`.
_SUBCOMMANDS: tuple[str, ...] = ("run", "hunt", "bootstrap", "demo", "gate")


def version() -> str:
    """The installed distribution's version; the package's own when run from a bare source tree."""
    try:
        return importlib.metadata.version("leaktrace")
    except importlib.metadata.PackageNotFoundError:
        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leaktrace",
        description="Find memory leaks in Python services and tie them to the requests behind them.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
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

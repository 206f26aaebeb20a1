"""Composition root of the load generator: ``python -m services.loadgen --target URL``."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from services.loadgen.driver import LoadConfig, Progress, format_progress, run_load


def _number(kind: type, *, minimum: float, allow_equal: bool) -> Callable[[str], Any]:
    def parse(raw: str) -> Any:
        try:
            value = kind(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {raw!r}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {raw!r}")
        if value < minimum or (value == minimum and not allow_equal):
            raise argparse.ArgumentTypeError(
                f"must be {'>=' if allow_equal else '>'} {minimum}, got {raw!r}"
            )
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m services.loadgen", description="Drive a bounded load at one service."
    )
    p.add_argument("--target", required=True, help="base URL, e.g. http://127.0.0.1:8001")
    p.add_argument(
        "--rate",
        type=_number(float, minimum=0, allow_equal=False),
        default=50.0,
        help="requests per second (default 50)",
    )
    p.add_argument(
        "--duration",
        type=_number(float, minimum=0, allow_equal=False),
        default=30.0,
        help="seconds (default 30)",
    )
    p.add_argument(
        "--users",
        type=_number(int, minimum=1, allow_equal=True),
        default=10,
        help="active users (default 10)",
    )
    p.add_argument(
        "--churn",
        type=_number(float, minimum=0, allow_equal=True),
        default=0.5,
        help="new users per second (default 0.5)",
    )
    p.add_argument(
        "--max-requests",
        type=_number(int, minimum=1, allow_equal=True),
        default=None,
        help="request cap (default rate x duration)",
    )
    p.add_argument(
        "--concurrency",
        type=_number(int, minimum=1, allow_equal=True),
        default=64,
        help="max requests in flight",
    )
    p.add_argument(
        "--timeout",
        type=_number(float, minimum=0, allow_equal=False),
        default=5.0,
        help="per-request timeout, s",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--prefix", default="u", help="user id prefix")
    p.add_argument("--json", type=Path, default=None, help="write the report as JSON to this path")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    return p


def progress_printer(stream: TextIO) -> object:
    tty = stream.isatty()

    def show(p: Progress) -> None:
        stream.write(("\r" if tty else "") + format_progress(p) + ("" if tty else "\n"))
        stream.flush()

    return show


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = LoadConfig(
            target=args.target,
            rate=args.rate,
            duration_s=args.duration,
            users=args.users,
            churn=args.churn,
            max_requests=args.max_requests,
            concurrency=args.concurrency,
            timeout_s=args.timeout,
            seed=args.seed,
            prefix=args.prefix,
        )
    except ValueError as exc:
        parser.error(str(exc))
    report = run_load(config, progress=None if args.quiet else progress_printer(sys.stderr))
    if not args.quiet and sys.stderr.isatty():
        sys.stderr.write("\n")
    print(report.summary())
    if args.json is not None:
        args.json.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return 0

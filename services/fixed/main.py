"""Composition root of the fixed service: ``python -m services.fixed --port 8002``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import leaktrace

from services.common.telemetry import HAND_INSTRUMENTED
from services.common.web import add_downstream_arg, add_server_args, serve
from services.fixed.app import FixedConfig, compose, create_app


def _positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {raw!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {raw!r}")
    return value


def _positive_float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {raw!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {raw!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.fixed", description=__doc__)
    add_server_args(parser, default_port=8002)
    add_downstream_arg(parser)
    parser.add_argument("--max-sessions", type=_positive_int, default=256)
    parser.add_argument("--session-ttl", type=_positive_float, default=30.0, help="seconds")
    parser.add_argument("--job-workers", type=_positive_int, default=8)
    parser.add_argument("--job-timeout", type=_positive_float, default=0.25, help="seconds")
    args = parser.parse_args(argv)
    config = FixedConfig(
        downstream_url=args.downstream_url,
        max_sessions=args.max_sessions,
        session_ttl_s=args.session_ttl,
        job_workers=args.job_workers,
        job_timeout_s=args.job_timeout,
    )
    telemetry = leaktrace.init("fixed", serve_metrics=False)
    telemetry.instrument(skip=HAND_INSTRUMENTED)
    container = compose(config, telemetry)
    try:
        serve(create_app(container), args.host, args.port)
    finally:
        container.close()
        telemetry.shutdown()
    return 0

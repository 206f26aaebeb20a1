"""Composition root of the leaky service: ``python -m services.leaky --port 8001``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import leaktrace

from services.common.telemetry import HAND_INSTRUMENTED
from services.common.web import add_downstream_arg, add_server_args, serve
from services.leaky.app import create_app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.leaky", description=__doc__)
    add_server_args(parser, default_port=8001)
    add_downstream_arg(parser)
    args = parser.parse_args(argv)
    telemetry = leaktrace.init("leaky", serve_metrics=False)
    telemetry.instrument(skip=HAND_INSTRUMENTED)
    try:
        serve(
            create_app(downstream_url=args.downstream_url, telemetry=telemetry),
            args.host,
            args.port,
        )
    finally:
        telemetry.shutdown()
    return 0

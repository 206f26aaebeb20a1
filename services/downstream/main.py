"""Composition root of the profile store: ``python -m services.downstream --port 8000``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import leaktrace
from starlette.types import ASGIApp

from services.common.telemetry import HAND_INSTRUMENTED
from services.common.web import add_server_args, serve
from services.downstream.app import create_app


def gunicorn_app() -> ASGIApp:
    """App factory for ``gunicorn 'services.downstream.main:gunicorn_app()'`` (docker-compose.yml).

    Called in each worker after the fork (no --preload), so every worker instruments and
    registers its own collector with its own telemetry: under ``leaktrace run`` init() returns
    the worker's running Telemetry, which serves the worker's own /metrics and /targets.
    """
    telemetry = leaktrace.init("downstream")
    telemetry.instrument(skip=HAND_INSTRUMENTED)
    return create_app(telemetry=telemetry)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.downstream", description=__doc__)
    add_server_args(parser, default_port=8000)
    args = parser.parse_args(argv)
    telemetry = leaktrace.init("downstream", serve_metrics=False)
    telemetry.instrument(skip=HAND_INSTRUMENTED)
    try:
        serve(create_app(telemetry=telemetry), args.host, args.port)
    finally:
        telemetry.shutdown()
    return 0

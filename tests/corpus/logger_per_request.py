"""Leak held by the standard library: every request asks `logging.getLogger` for a logger of
its own (named after the user and request), so `logging.Logger.manager.loggerDict` grows
without bound. Nothing in this module holds the memory."""

from __future__ import annotations

import logging

from _pace import run_paced
from opentelemetry import trace

tracer = trace.get_tracer("leaktrace.corpus")


def request_logger(user: str, session: str) -> logging.Logger:
    return logging.getLogger(f"app.requests.{user}.{session}")  # LEAK-SITE


def handle(i: int, size: int) -> None:
    with tracer.start_as_current_span("GET /orders/{user}"):
        # Named after the request's session token (~1 KB): a Logger, its dict and its name.
        log = request_logger(f"user-{i % 50}", f"{i:08d}-" + "t" * size)
        log.debug("request %d", i)


def main(argv: list[str] | None = None) -> None:
    # ~1.5 KB retained per request at 80 requests/s: about 120 KB/s.
    run_paced(
        handle,
        argv,
        doc=__doc__,
        rate=80_000.0,
        rate_help="bytes of logger name per second",
        rps=80.0,
    )


if __name__ == "__main__":
    main()

"""Leak: an unbounded functools.lru_cache keyed by something unique per request."""

from __future__ import annotations

import functools

from _pace import run_paced
from opentelemetry import trace

tracer = trace.get_tracer("leaktrace.corpus")


@functools.cache
def render_page(page_id: int, size: int) -> bytes:
    return (b"<p>%d</p>" % page_id) * (size // 10)  # LEAK-SITE


def handle(i: int, size: int) -> None:
    with tracer.start_as_current_span("request"):
        render_page(i, size)


def main(argv: list[str] | None = None) -> None:
    run_paced(handle, argv, doc=__doc__, rate=100_000.0, rate_help="bytes leaked per second")


if __name__ == "__main__":
    main()

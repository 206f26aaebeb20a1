"""Leak: an unbounded functools.lru_cache keyed by something unique per request."""

from __future__ import annotations

import argparse
import functools
import time

from opentelemetry import trace

tracer = trace.get_tracer("leaktrace.corpus")


@functools.cache
def render_page(page_id: int, size: int) -> bytes:
    return (b"<p>%d</p>" % page_id) * (size // 10)  # LEAK-SITE


def handle(i: int, size: int) -> None:
    with tracer.start_as_current_span("request"):
        render_page(i, size)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--rate", type=float, default=100_000.0, help="bytes leaked per second")
    p.add_argument("--rps", type=float, default=50.0, help="requests per second")
    a = p.parse_args(argv)
    size = int(a.rate / a.rps)
    start = next_t = time.monotonic()
    i = 0
    while time.monotonic() - start < a.duration:
        handle(i, size)
        i += 1
        next_t += 1.0 / a.rps
        time.sleep(max(0.0, next_t - time.monotonic()))


if __name__ == "__main__":
    main()

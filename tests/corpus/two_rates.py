"""Two leaks at different rates: uploads (~75% of --rate) and an error log (~25%)."""

from __future__ import annotations

import argparse
import time

from opentelemetry import trace

tracer = trace.get_tracer("leaktrace.corpus")
UPLOADS: dict[int, bytes] = {}
ERROR_LOG: list[str] = []


def store_upload(i: int, size: int) -> None:
    UPLOADS[i] = b"u" * size  # LEAK-SITE


def log_error(i: int, size: int) -> None:
    ERROR_LOG.append(f"request {i} failed: " + "e" * size)  # LEAK-SITE-2


def handle(i: int, size: int) -> None:
    with tracer.start_as_current_span("request"):
        store_upload(i, size * 3 // 4)
        log_error(i, size // 4)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--rate", type=float, default=160_000.0, help="bytes leaked per second, both leaks")
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

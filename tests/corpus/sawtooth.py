"""Control (no leak): a write buffer that fills at 200 KB/s and is flushed every ~1.5 s."""

from __future__ import annotations

import argparse
import time

from opentelemetry import trace

tracer = trace.get_tracer("leaktrace.corpus")
FLUSH_EVERY = 75
PENDING: list[bytes] = []
FLUSHED = [0]


def flush() -> None:
    FLUSHED[0] += sum(len(b) for b in PENDING)
    PENDING.clear()


def handle(i: int, size: int) -> None:
    with tracer.start_as_current_span("request"):
        PENDING.append(b"m" * size)  # FILL-SITE
        if len(PENDING) >= FLUSH_EVERY:
            flush()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--rate", type=float, default=200_000.0, help="bytes buffered per second")
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

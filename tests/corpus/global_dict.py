"""Leak: sessions stored in a module-global dict and never pruned."""

from __future__ import annotations

import argparse
import time

from opentelemetry import trace

tracer = trace.get_tracer("leaktrace.corpus")
SESSION_CACHE: dict[str, dict[str, object]] = {}


def make_session(sid: str, size: int) -> dict[str, object]:
    return {"id": sid, "blob": b"s" * size}  # LEAK-SITE


def handle(i: int, size: int) -> None:
    with tracer.start_as_current_span("request"):
        sid = f"session-{i}"
        SESSION_CACHE[sid] = make_session(sid, size)


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

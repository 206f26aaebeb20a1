"""Leak: every request starts a worker thread that holds its buffer and never finishes."""

from __future__ import annotations

import argparse
import threading
import time

from opentelemetry import trace

tracer = trace.get_tracer("leaktrace.corpus")
STOP = threading.Event()


def worker(size: int) -> None:
    scratch = bytearray(size)  # LEAK-SITE
    STOP.wait()  # waits for a reply that never comes
    del scratch


def handle(i: int, size: int) -> None:
    with tracer.start_as_current_span("request"):
        threading.Thread(target=worker, args=(size,), name=f"poller-{i}", daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--rate", type=float, default=100_000.0, help="bytes leaked per second")
    p.add_argument("--rps", type=float, default=5.0, help="requests (threads) per second")
    a = p.parse_args(argv)
    size = int(a.rate / a.rps)
    start = next_t = time.monotonic()
    i = 0
    try:
        while time.monotonic() - start < a.duration:
            handle(i, size)
            i += 1
            next_t += 1.0 / a.rps
            time.sleep(max(0.0, next_t - time.monotonic()))
    finally:
        STOP.set()


if __name__ == "__main__":
    main()

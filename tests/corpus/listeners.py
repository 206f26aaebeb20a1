"""Leak: every request subscribes a listener (a closure over its buffer) and never unsubscribes."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from opentelemetry import trace

tracer = trace.get_tracer("leaktrace.corpus")


class EventBus:
    def __init__(self) -> None:
        self.listeners: list[Callable[[str], int]] = []

    def subscribe(self, fn: Callable[[str], int]) -> None:
        self.listeners.append(fn)

    def publish(self, event: str) -> None:
        for fn in self.listeners[-5:]:
            fn(event)


BUS = EventBus()


def handle(i: int, size: int) -> None:
    with tracer.start_as_current_span("request"):
        buffer = bytearray(size)  # LEAK-SITE

        def on_event(event: str) -> int:
            return len(buffer) + len(event)

        BUS.subscribe(on_event)
        BUS.publish(f"request-{i}")


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

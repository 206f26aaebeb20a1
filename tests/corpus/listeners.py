"""Leak: every request subscribes a listener (a closure over its buffer) and never unsubscribes."""

from __future__ import annotations

from collections.abc import Callable

from _pace import run_paced
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
    run_paced(handle, argv, doc=__doc__, rate=100_000.0, rate_help="bytes leaked per second")


if __name__ == "__main__":
    main()

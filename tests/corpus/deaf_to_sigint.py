"""Leak: sessions kept in a module-global dict for --duration seconds, by a program that then idles
and does not stop on SIGINT (a server stuck in its shutdown), so `leaktrace hunt` must SIGTERM it."""

from __future__ import annotations

import signal
import time

from _pace import run_paced
from opentelemetry import trace

tracer = trace.get_tracer("leaktrace.corpus")
SESSIONS: dict[int, bytes] = {}


def handle(i: int, size: int) -> None:
    with tracer.start_as_current_span("request"):
        SESSIONS[i] = b"s" * size  # LEAK-SITE


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    run_paced(handle, None, doc=__doc__)
    while True:  # idle until SIGTERM
        time.sleep(0.2)


if __name__ == "__main__":
    main()

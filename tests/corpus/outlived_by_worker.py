"""Leak: sessions kept in a module-global dict, in a forked worker that outlives the program.

The parent forks the worker, prints its pid, leaks for --duration seconds itself and exits. The
worker ignores SIGINT and SIGTERM and idles (a worker stuck in a wait that never hears its
stop), so `leaktrace hunt` must end it: the program's exit is not the end of its processes."""

from __future__ import annotations

import os
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
    worker = os.fork()
    if worker == 0:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            time.sleep(0.2)
    print(f"worker pid {worker}", flush=True)
    run_paced(handle, None, doc=__doc__)


if __name__ == "__main__":
    main()

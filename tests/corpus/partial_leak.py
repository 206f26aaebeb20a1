"""Leak in some requests only: every request builds a session payload and holds it while it
is processed (50 ms to 1.3 s, on 4 worker threads); only premium requests (1 in 3) keep it
in a module-global dict. Transient payloads are live at the same site, so only an
age-aware attribution names the right trace ids. `--truth PATH` writes the leaked ids."""

from __future__ import annotations

import argparse
import json
import queue
import random
import threading
import time

from opentelemetry import trace

tracer = trace.get_tracer("leaktrace.corpus")
PREMIUM_SESSIONS: dict[int, dict[str, object]] = {}


def make_payload(size: int, trace_id: str) -> dict[str, object]:
    return {"trace_id": trace_id, "blob": bytearray(size)}  # LEAK-SITE


def handle(i: int, size: int, hold_s: float, premium: bool) -> None:
    with tracer.start_as_current_span("request") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
        payload = make_payload(size, trace_id)
        time.sleep(hold_s)  # processing: the payload is live meanwhile
        if premium:
            PREMIUM_SESSIONS[i] = payload
        del payload


def worker(jobs: queue.Queue[tuple[int, int, float, bool] | None]) -> None:
    while (job := jobs.get()) is not None:
        handle(*job)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--rate", type=float, default=100_000.0, help="bytes leaked per second")
    p.add_argument("--rps", type=float, default=10.0, help="requests per second (4 workers: <= 12)")
    p.add_argument("--truth", help="write the leaked requests' trace ids here (JSON)")
    a = p.parse_args(argv)
    size = int(a.rate / (a.rps / 3))
    rnd = random.Random(5)
    jobs: queue.Queue[tuple[int, int, float, bool] | None] = queue.Queue()
    workers = [threading.Thread(target=worker, args=(jobs,), daemon=True) for _ in range(4)]
    for w in workers:
        w.start()
    start = next_t = time.monotonic()
    i = 0
    try:
        while time.monotonic() - start < a.duration:
            hold = rnd.uniform(1.0, 1.3) if rnd.random() < 0.1 else rnd.uniform(0.05, 0.4)
            jobs.put((i, size, hold, i % 3 == 0))
            i += 1
            next_t += 1.0 / a.rps
            time.sleep(max(0.0, next_t - time.monotonic()))
    finally:  # also when the harness or `leaktrace hunt` interrupts the run
        for _ in workers:
            jobs.put(None)
        if a.truth:
            with open(a.truth, "w", encoding="utf-8") as fh:
                json.dump(
                    {"leaked": [str(s["trace_id"]) for s in list(PREMIUM_SESSIONS.values())]}, fh
                )


if __name__ == "__main__":
    main()

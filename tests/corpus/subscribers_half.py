"""Leak in half the requests, on 4 worker threads: every request builds the same subscription
(a tuple of topics, a dict of options, a list of handler names, a subscriber id string) and
requests for odd users register it in a class-attribute registry for good while the others drop
it. The threads interleave, so one request's freed dicts and tuples go to the next request on any
thread through CPython's freelists. `--truth PATH` writes the keepers' trace ids."""

from __future__ import annotations

import argparse
import json
import queue
import threading
import time

from opentelemetry import trace

tracer = trace.get_tracer("leaktrace.corpus")


class Registry:
    subscriptions: dict[str, dict[str, object]] = {}  # noqa: RUF012 - the leak, on purpose
    lock = threading.Lock()


KEPT: list[str] = []  # ground truth only


def subscribe(user: int, i: int, n: int) -> dict[str, object]:
    return {  # LEAK-SITE
        "id": f"subscriber-{user:05d}-request-{i:08d}-" + "s" * 40,
        "topics": tuple(f"orders.user-{user}.topic-{j}" for j in range(n)),
        "options": {"qos": 1, "retain": False, "handlers": [f"handler-{j}" for j in range(n)]},
    }


def handle(i: int, n: int) -> None:
    with tracer.start_as_current_span("POST /subscribe/{user}") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
        sub = subscribe(i % 97, i, n)
        if i % 2:
            with Registry.lock:
                Registry.subscriptions[str(sub["id"])] = sub
                KEPT.append(trace_id)
        del sub


def worker(jobs: queue.Queue[tuple[int, int] | None]) -> None:
    while (job := jobs.get()) is not None:
        handle(*job)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--rps", type=float, default=100.0)
    p.add_argument("--topics", type=int, default=30)
    p.add_argument("--truth", help="write the keepers' trace ids here (JSON)")
    a = p.parse_args(argv)
    jobs: queue.Queue[tuple[int, int] | None] = queue.Queue()
    workers = [threading.Thread(target=worker, args=(jobs,), daemon=True) for _ in range(4)]
    for w in workers:
        w.start()
    start = next_t = time.monotonic()
    i = 0
    try:
        while time.monotonic() - start < a.duration:
            jobs.put((i, a.topics))
            i += 1
            next_t += 1.0 / a.rps
            time.sleep(max(0.0, next_t - time.monotonic()))
    finally:
        for _ in workers:
            jobs.put(None)
        if a.truth:
            with Registry.lock:
                kept = list(KEPT)
            with open(a.truth, "w", encoding="utf-8") as fh:
                json.dump({"leaked": kept}, fh)


if __name__ == "__main__":
    main()

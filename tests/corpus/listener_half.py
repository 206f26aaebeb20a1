"""Leak in half the requests, freelist-heavy: every request builds the same listener structure
(small dicts, lists and tuples, the objects CPython keeps on its freelists, and a topic name
string per entry) at the same line;
even requests subscribe it to `BUS` for good, odd ones drop it when they end. A dropped
request's objects go back to the freelists and the next request reuses them without calling
the allocator. `--truth PATH` writes the trace ids of the requests that kept theirs."""

from __future__ import annotations

import argparse
import json
import time

from opentelemetry import trace

tracer = trace.get_tracer("leaktrace.corpus")


class Bus:
    def __init__(self) -> None:
        self.listeners: list[dict[str, object]] = []


BUS = Bus()
KEPT: list[str] = []  # ground truth only: the trace ids of the keepers (a str each)


def make_listener(i: int, trace_id: str, n: int) -> dict[str, object]:
    return {"id": i, "trace": trace_id, "topics": [{"topic": f"orders.region-{j % 7}.customer-{i}.topic-{j}.events", "key": (i, j)} for j in range(n)]}  # LEAK-SITE  # fmt: skip


def handle(i: int, n: int, keep: bool) -> None:
    with tracer.start_as_current_span("request") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
        listener = make_listener(i, trace_id, n)
        if keep:
            BUS.listeners.append(listener)
            KEPT.append(trace_id)
        del listener


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument(
        "--rate", type=float, default=200_000.0, help="bytes built per second by keepers (about)"
    )
    p.add_argument("--rps", type=float, default=60.0, help="requests per second (half keep)")
    p.add_argument("--truth", help="write the keepers' trace ids here (JSON)")
    a = p.parse_args(argv)
    # ~430 bytes per topic entry on 3.11-3.13 (a 2-key dict, its keys table, a 2-tuple, a str)
    n = max(1, int(a.rate / (a.rps / 2) / 430))
    start = next_t = time.monotonic()
    i = 0
    try:
        while time.monotonic() - start < a.duration:
            handle(i, n, i % 2 == 0)
            i += 1
            next_t += 1.0 / a.rps
            time.sleep(max(0.0, next_t - time.monotonic()))
    finally:
        if a.truth:
            with open(a.truth, "w", encoding="utf-8") as fh:
                json.dump({"leaked": list(KEPT)}, fh)


if __name__ == "__main__":
    main()

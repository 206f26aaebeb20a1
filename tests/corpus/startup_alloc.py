"""Control (no leak): a large lookup table built once, lazily on the first request after 1 s."""

from __future__ import annotations

import argparse
import time

from opentelemetry import trace

tracer = trace.get_tracer("leaktrace.corpus")
TABLES: dict[str, list[bytes]] = {}


def geo_table() -> list[bytes]:
    table = TABLES.get("geo")
    if table is None:
        table = TABLES["geo"] = [b"g" * 4096 for _ in range(5000)]  # STARTUP-SITE (20 MB)
    return table


def handle(i: int, size: int, started: float) -> None:
    with tracer.start_as_current_span("request"):
        scratch = b"t" * size  # per-request garbage, freed on return
        if time.monotonic() - started > 1.0:
            geo_table()[i % 5000]
        del scratch


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--rate", type=float, default=100_000.0, help="transient bytes per second")
    p.add_argument("--rps", type=float, default=50.0, help="requests per second")
    a = p.parse_args(argv)
    size = int(a.rate / a.rps)
    start = next_t = time.monotonic()
    i = 0
    while time.monotonic() - start < a.duration:
        handle(i, size, start)
        i += 1
        next_t += 1.0 / a.rps
        time.sleep(max(0.0, next_t - time.monotonic()))


if __name__ == "__main__":
    main()

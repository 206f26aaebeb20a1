"""Leak: a cache kept in a class attribute, keyed by a per-request id."""

from __future__ import annotations

import argparse
import time
from typing import ClassVar

from opentelemetry import trace

tracer = trace.get_tracer("leaktrace.corpus")


class Repository:
    _cache: ClassVar[dict[str, list[bytes]]] = {}

    def load(self, key: str, size: int) -> list[bytes]:
        rows = Repository._cache.get(key)
        if rows is None:
            rows = Repository._cache[key] = self._fetch(key, size)
        return rows

    def _fetch(self, key: str, size: int) -> list[bytes]:
        return [key.encode() * (size // (4 * len(key))) for _ in range(4)]  # LEAK-SITE


def handle(i: int, size: int) -> None:
    with tracer.start_as_current_span("request"):
        Repository().load(f"order:{i}", size)


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

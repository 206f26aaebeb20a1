"""Leak: a cache kept in a class attribute, keyed by a per-request id."""

from __future__ import annotations

from typing import ClassVar

from _pace import run_paced
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
    run_paced(handle, argv, doc=__doc__, rate=100_000.0, rate_help="bytes leaked per second")


if __name__ == "__main__":
    main()

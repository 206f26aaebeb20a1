"""Leak: sessions stored in a module-global dict and never pruned."""

from __future__ import annotations

from _pace import run_paced
from opentelemetry import trace

tracer = trace.get_tracer("leaktrace.corpus")
SESSION_CACHE: dict[str, dict[str, object]] = {}


def make_session(sid: str, size: int) -> dict[str, object]:
    return {"id": sid, "blob": b"s" * size}  # LEAK-SITE


def handle(i: int, size: int) -> None:
    with tracer.start_as_current_span("request"):
        sid = f"session-{i}"
        SESSION_CACHE[sid] = make_session(sid, size)


def main(argv: list[str] | None = None) -> None:
    run_paced(handle, argv, doc=__doc__, rate=100_000.0, rate_help="bytes leaked per second")


if __name__ == "__main__":
    main()

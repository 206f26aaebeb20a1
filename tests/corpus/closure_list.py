"""Leak: an audit recorder appends every request to a list captured in its closure."""

from __future__ import annotations

from collections.abc import Callable

from _pace import run_paced
from opentelemetry import trace

tracer = trace.get_tracer("leaktrace.corpus")


def make_recorder() -> Callable[[dict[str, object]], None]:
    history: list[dict[str, object]] = []

    def record(entry: dict[str, object]) -> None:
        history.append(entry)

    return record


record_audit = make_recorder()


def handle(i: int, size: int) -> None:
    with tracer.start_as_current_span("request"):
        body = "x" * size  # LEAK-SITE
        record_audit({"request": i, "body": body})


def main(argv: list[str] | None = None) -> None:
    run_paced(handle, argv, doc=__doc__, rate=100_000.0, rate_help="bytes leaked per second")


if __name__ == "__main__":
    main()

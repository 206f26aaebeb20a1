"""Control (no leak): a write buffer that fills at 200 KB/s and is flushed every ~1.5 s."""

from __future__ import annotations

from _pace import run_paced
from opentelemetry import trace

tracer = trace.get_tracer("leaktrace.corpus")
FLUSH_EVERY = 75
PENDING: list[bytes] = []
FLUSHED = [0]


def flush() -> None:
    FLUSHED[0] += sum(len(b) for b in PENDING)
    PENDING.clear()


def handle(i: int, size: int) -> None:
    with tracer.start_as_current_span("request"):
        PENDING.append(b"m" * size)  # FILL-SITE
        if len(PENDING) >= FLUSH_EVERY:
            flush()


def main(argv: list[str] | None = None) -> None:
    run_paced(handle, argv, doc=__doc__, rate=200_000.0, rate_help="bytes buffered per second")


if __name__ == "__main__":
    main()

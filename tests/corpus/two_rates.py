"""Two leaks at different rates: uploads (~75% of --rate) and an error log (~25%)."""

from __future__ import annotations

from _pace import run_paced
from opentelemetry import trace

tracer = trace.get_tracer("leaktrace.corpus")
UPLOADS: dict[int, bytes] = {}
ERROR_LOG: list[str] = []


def store_upload(i: int, size: int) -> None:
    UPLOADS[i] = b"u" * size  # LEAK-SITE


def log_error(i: int, size: int) -> None:
    ERROR_LOG.append(f"request {i} failed: " + "e" * size)  # LEAK-SITE-2


def handle(i: int, size: int) -> None:
    with tracer.start_as_current_span("request"):
        store_upload(i, size * 3 // 4)
        log_error(i, size // 4)


def main(argv: list[str] | None = None) -> None:
    run_paced(
        handle, argv, doc=__doc__, rate=240_000.0, rate_help="bytes leaked per second, both leaks"
    )


if __name__ == "__main__":
    main()

"""A short program for bench/exit_time.py: one log line, one span, then exit.

Prints `SHORT_PROGRAM_DONE <unix time>` from an atexit hook registered here, after whatever
telemetry the launcher started (so it runs before that telemetry shuts down): the parent takes
the process's exit to last from that instant to its end."""

from __future__ import annotations

import atexit
import logging
import sys
import time

from opentelemetry import trace


def _done() -> None:
    sys.stdout.write(f"SHORT_PROGRAM_DONE {time.time():.6f}\n")
    sys.stdout.flush()


def main() -> None:
    atexit.register(_done)
    with trace.get_tracer("short-program").start_as_current_span("work"):
        logging.getLogger("short-program").warning("one line")


if __name__ == "__main__":
    main()

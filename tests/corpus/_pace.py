"""The request loop every corpus program shares: `handle(i, size)` at a steady rate, bounded in time.

Run as scripts (`python tests/corpus/CASE.py`) or through the harness, this folder is on
sys.path, so the cases import it as `_pace`.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable


def run_paced(
    handle: Callable[[int, int], None],
    argv: list[str] | None,
    *,
    doc: str | None,
    rate: float = 100_000.0,
    rate_help: str = "bytes leaked per second",
    rps: float = 50.0,
) -> None:
    p = argparse.ArgumentParser(description=doc)
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--rate", type=float, default=rate, help=rate_help)
    p.add_argument("--rps", type=float, default=rps, help="requests per second")
    a = p.parse_args(argv)
    size = int(a.rate / a.rps)
    start = next_t = time.monotonic()
    i = 0
    while time.monotonic() - start < a.duration:
        handle(i, size)
        i += 1
        next_t += 1.0 / a.rps
        time.sleep(max(0.0, next_t - time.monotonic()))

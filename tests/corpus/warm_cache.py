"""Control (no leak): a bounded LRU cache that warms up in ~2 s, then churns at a constant size."""

from __future__ import annotations

import argparse
import random
import time
from collections import OrderedDict

from opentelemetry import trace

tracer = trace.get_tracer("leaktrace.corpus")
MAX_ENTRIES = 100
PRODUCTS: OrderedDict[int, bytes] = OrderedDict()


def product_page(pid: int, size: int) -> bytes:
    page = PRODUCTS.get(pid)
    if page is None:
        page = PRODUCTS[pid] = b"p" * size  # WARM-SITE
        if len(PRODUCTS) > MAX_ENTRIES:
            PRODUCTS.popitem(last=False)
    else:
        PRODUCTS.move_to_end(pid)
    return page


def handle(i: int, size: int, rnd: random.Random) -> None:
    with tracer.start_as_current_span("request"):
        # The first MAX_ENTRIES requests fill the cache; later ones mostly hit it.
        pid = i if i < MAX_ENTRIES else rnd.randrange(MAX_ENTRIES + MAX_ENTRIES // 4)
        product_page(pid, size)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--rate", type=float, default=100_000.0, help="bytes per second while warming")
    p.add_argument("--rps", type=float, default=50.0, help="requests per second")
    a = p.parse_args(argv)
    size = int(a.rate / a.rps)
    rnd = random.Random(7)
    start = next_t = time.monotonic()
    i = 0
    while time.monotonic() - start < a.duration:
        handle(i, size, rnd)
        i += 1
        next_t += 1.0 / a.rps
        time.sleep(max(0.0, next_t - time.monotonic()))


if __name__ == "__main__":
    main()

"""Request loop: parse a JSON body, do dict work, serialise a response, one span per request.

    python bench/workloads/request_loop.py [--requests 40000] [--warmup 4000]

The span comes from the OpenTelemetry API only (`trace.get_tracer`), so the same script runs
bare (no-op tracer), under the alternative stack and under `leaktrace run`, which each set the
global tracer provider before the script's code runs.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _timing import emit, measure


def make_bodies(count: int = 64, seed: int = 3) -> list[str]:
    rnd = random.Random(seed)
    bodies = []
    for i in range(count):
        doc = {
            "user": f"user-{rnd.randrange(10_000)}",
            "session": f"{rnd.getrandbits(128):032x}",
            "cart": [
                {
                    "sku": f"sku-{rnd.randrange(500)}",
                    "qty": rnd.randrange(1, 5),
                    "price": round(rnd.uniform(1, 99), 2),
                }
                for _ in range(rnd.randrange(3, 12))
            ],
            "flags": {f"f{j}": bool(rnd.getrandbits(1)) for j in range(8)},
            "note": "x" * rnd.randrange(16, 256),
            "seq": i,
        }
        bodies.append(json.dumps(doc))
    return bodies


def make_work() -> Callable[[int], None]:
    from opentelemetry import trace

    tracer = trace.get_tracer("bench.request_loop")
    bodies = make_bodies()
    totals: dict[str, float] = {}

    def handle(body: str) -> str:
        with tracer.start_as_current_span("handle_request") as span:
            req = json.loads(body)
            span.set_attribute("app.user", req["user"])
            lines = sorted(req["cart"], key=lambda item: item["price"] * item["qty"], reverse=True)
            total = sum(item["price"] * item["qty"] for item in lines)
            by_sku = {item["sku"]: item["qty"] for item in lines}
            enabled = [k for k, v in req["flags"].items() if v]
            totals[req["user"]] = totals.get(req["user"], 0.0) + total
            if len(totals) > 1000:
                totals.clear()
            span.set_attribute("app.items", len(lines))
            return json.dumps(
                {"user": req["user"], "total": round(total, 2), "skus": by_sku, "flags": enabled}
            )

    def work(n: int) -> None:
        nb = len(bodies)
        for i in range(n):
            handle(bodies[i % nb])

    return work


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--requests", type=int, default=40_000)
    p.add_argument("--warmup", type=int, default=4_000)
    a = p.parse_args(argv)
    emit(measure(make_work(), units=a.requests, warmup=a.warmup, label="request_loop"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
